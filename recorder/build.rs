//! Builds the eBPF programs (`probes/ebpf`) with the nightly toolchain and
//! bpf-linker, and leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! The probes are not a Cargo dependency: they build for another target with
//! `-Z build-std=core`, which Cargo cannot express for a dependency today
//! (aya-build's docs list the artifact-dependency issues). `make setup` installs
//! what this needs (rust-src for nightly, bpf-linker).

fn main() -> anyhow::Result<()> {
    // Fuzz builds (recorder/fuzz) exercise the decoders only; they build with
    // sanitizer flags that must not reach the BPF target, so they skip the probes
    // and embed an empty object (loading it would fail, clearly).
    println!("cargo:rerun-if-env-changed=DNSQ_SKIP_EBPF_BUILD");
    if std::env::var_os("DNSQ_SKIP_EBPF_BUILD").is_some() {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
        std::fs::write(out.join("dnsq-probes"), [])?;
        return Ok(());
    }
    // aya-build watches the eBPF crate; the shared types live beside it.
    println!(
        "cargo:rerun-if-changed={}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../probes/common/src")
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "dnsq-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../probes/ebpf"),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
