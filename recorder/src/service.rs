//! Who owns a cgroup: the systemd unit (`nginx.service`, `session-3.scope`) and
//! the container (Docker, containerd, Podman, CRI-O, a Kubernetes pod, LXC) that
//! a cgroup v2 path names, read from the path alone.
//!
//! Only what the path says is used: the naming conventions of systemd
//! (`*.service`, `*.scope`, `*.slice`), of container runtimes with the systemd
//! cgroup driver (`docker-<id>.scope`, `libpod-<id>.scope`,
//! `cri-containerd-<id>.scope`, `crio-<id>.scope`, the `<slice>:<prefix>:<id>`
//! form) and with the cgroupfs driver (`/docker/<id>`, `/kubepods/<qos>/pod<uid>/<id>`),
//! and of LXC (`/lxc.payload.<name>`). Nothing is looked up, so a name that only
//! looks like a container is reported as one; the raw path stays available
//! beside the owner.
//!
//! Paths are untrusted (container and unit names are chosen by whoever creates
//! them): parsing never panics and keeps every character as it is, control
//! characters included. Escaping is the display's job.

use std::fmt;

use serde::Serialize;

/// The unit and container a cgroup path names; both `None` when it names
/// neither (`/`, or a layout this does not know).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CgroupOwner {
    /// The innermost systemd service or scope that is not a container's own
    /// scope: `nginx.service`, `session-3.scope`, `app-firefox-1234.scope`,
    /// `user@1000.service` (rootless containers), `containerd.service` (a
    /// container inside it).
    pub unit: Option<String>,
    /// The innermost container.
    pub container: Option<Container>,
}

impl CgroupOwner {
    pub fn is_empty(&self) -> bool {
        self.unit.is_none() && self.container.is_none()
    }
}

/// A container named by a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Container {
    /// `docker`, `containerd`, `podman`, `cri-o`, `lxc`, or `kubernetes` (a pod
    /// whose runtime the path does not say, or a pod's own cgroup).
    pub runtime: &'static str,
    /// The full container id (64 hex digits for the OCI runtimes), the LXC
    /// container's name, or for a pod's own cgroup the pod UID.
    pub id: String,
    /// The Kubernetes pod UID (with dashes) when the container is in a pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// Hex digits of a shortened container id (as `docker ps` shows).
const SHORT_ID: usize = 12;
/// Characters of a shortened pod UID (its first group).
const SHORT_UID: usize = 8;

impl Container {
    /// The id as `docker ps` shows it: the first 12 hex digits (names and pod
    /// UIDs are returned whole).
    pub fn short(&self) -> &str {
        if self.id.len() > SHORT_ID && is_hex(&self.id) {
            &self.id[..SHORT_ID]
        } else {
            &self.id
        }
    }

    /// The pod UID's first group (`1234abcd` of `1234abcd-56ef-…`), when in a
    /// pod.
    pub fn short_pod_uid(&self) -> Option<&str> {
        let uid = self.pod_uid.as_deref()?;
        // UIDs are ASCII (checked when parsed); `get` keeps any other string whole.
        Some(uid.get(..SHORT_UID).unwrap_or(uid))
    }

    /// A pod's own cgroup (no container id of its own).
    pub fn is_pod(&self) -> bool {
        self.pod_uid.as_deref() == Some(self.id.as_str())
    }

    /// The container with its full ids: `docker:<64 hex>`,
    /// `k8s pod <uid> containerd:<64 hex>`, `k8s pod <uid>` (a pod's own
    /// cgroup).
    pub fn full(&self) -> String {
        self.text(self.pod_uid.as_deref(), &self.id)
    }

    fn text(&self, uid: Option<&str>, id: &str) -> String {
        match uid {
            Some(uid) if self.is_pod() => format!("k8s pod {uid}"),
            Some(uid) if self.runtime == "kubernetes" => format!("k8s pod {uid} {id}"),
            Some(uid) => format!("k8s pod {uid} {}:{id}", self.runtime),
            None => format!("{}:{id}", self.runtime),
        }
    }

    /// Whether `wanted` names this container: a prefix of its id (at least one
    /// character; hex ids in any case), `runtime:prefix` (as displayed), or its
    /// pod's UID (dashes or underscores, or a prefix of it).
    pub fn matches(&self, wanted: &str) -> bool {
        let wanted = wanted.trim();
        if wanted.is_empty() {
            return false;
        }
        let prefix_of = |id: &str, wanted: &str| {
            id.len() >= wanted.len()
                && id.is_char_boundary(wanted.len())
                && id[..wanted.len()].eq_ignore_ascii_case(wanted)
        };
        let bare = match wanted.split_once(':') {
            Some((runtime, rest)) if runtime.eq_ignore_ascii_case(self.runtime) => rest,
            Some((runtime, rest))
                if self.pod_uid.is_some() && matches!(runtime, "k8s" | "pod" | "kubernetes") =>
            {
                rest
            }
            _ => wanted,
        };
        if bare.is_empty() {
            return false;
        }
        if prefix_of(&self.id, bare) {
            return true;
        }
        match &self.pod_uid {
            Some(uid) => prefix_of(uid, &bare.replace('_', "-")),
            None => false,
        }
    }
}

/// Short ids, as tables show them: `docker:3f2a1b4c5d6e`, `lxc:web`,
/// `k8s pod 1234abcd containerd:3f2a1b4c5d6e`, `k8s pod 1234abcd` (a pod's own
/// cgroup). [`Container::full`] has the whole ids.
impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = if self.is_pod() {
            self.short_pod_uid().unwrap_or(&self.id)
        } else {
            self.short()
        };
        f.write_str(&self.text(self.short_pod_uid(), id))
    }
}

/// The unit and container `path` (a cgroup v2 path, as in `/proc/PID/cgroup`)
/// names. See the module documentation.
pub fn owner_of_cgroup(path: &str) -> CgroupOwner {
    let mut unit: Option<&str> = None;
    let mut container: Option<Container> = None;
    // The pod UID of the innermost pod cgroup seen so far.
    let mut pod: Option<String> = None;
    let mut in_kubepods = false;
    let mut parent: &str = "";
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if component.contains("kubepods") {
            in_kubepods = true;
        }
        if let Some(uid) = in_kubepods.then(|| pod_uid(component)).flatten() {
            container = Some(Container {
                runtime: "kubernetes",
                id: uid.clone(),
                pod_uid: Some(uid.clone()),
            });
            pod = Some(uid);
        } else if let Some((runtime, id, colon_pod)) = container_of(component, parent, in_kubepods)
        {
            if let Some(uid) = colon_pod {
                pod = Some(uid);
            }
            container = Some(Container {
                runtime,
                id: id.to_owned(),
                pod_uid: pod.clone(),
            });
        } else if is_unit(component) {
            unit = Some(component);
        }
        parent = component;
    }
    CgroupOwner {
        unit: unit.map(str::to_owned),
        container,
    }
}

/// `*.service` or `*.scope` with something before the suffix.
fn is_unit(component: &str) -> bool {
    [".service", ".scope"].iter().any(|suffix| {
        component
            .strip_suffix(suffix)
            .is_some_and(|stem| !stem.is_empty())
    })
}

/// Scope (or directory) name prefixes of container runtimes: `<prefix><id>` or
/// `<prefix><id>.scope`. Longer prefixes first.
const PREFIXES: &[(&str, &str)] = &[
    ("docker-", "docker"),
    ("libpod-conmon-", "podman"),
    ("libpod-", "podman"),
    ("cri-containerd-", "containerd"),
    ("crio-conmon-", "cri-o"),
    ("crio-", "cri-o"),
    ("nerdctl-", "containerd"),
];

/// The middle part of the systemd cgroup driver's `<slice>:<prefix>:<id>` form.
const COLON_PREFIXES: &[(&str, &str)] = &[
    ("docker", "docker"),
    ("cri-containerd", "containerd"),
    ("crio", "cri-o"),
    ("libpod", "podman"),
    ("nerdctl", "containerd"),
];

/// The directories that hold bare container ids under the cgroupfs driver.
const PARENTS: &[(&str, &str)] = &[
    ("docker", "docker"),
    ("moby", "docker"),
    ("libpod_parent", "podman"),
    ("k8s.io", "containerd"),
    ("containerd.service", "containerd"),
];

/// Shortest id accepted after a runtime's prefix.
const MIN_ID: usize = 12;
/// The length of an OCI container id.
const OCI_ID: usize = 64;

/// `(runtime, id, pod UID of the colon form)` when `component` is a container's
/// cgroup.
fn container_of<'a>(
    component: &'a str,
    parent: &str,
    in_kubepods: bool,
) -> Option<(&'static str, &'a str, Option<String>)> {
    let stem = component.strip_suffix(".scope").unwrap_or(component);
    for &(prefix, runtime) in PREFIXES {
        if let Some(id) = stem.strip_prefix(prefix)
            && id.len() >= MIN_ID
            && is_hex(id)
        {
            return Some((runtime, id, None));
        }
    }
    // `kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`.
    let mut parts = component.splitn(3, ':');
    if let (Some(slice), Some(prefix), Some(id)) = (parts.next(), parts.next(), parts.next())
        && id.len() >= MIN_ID
        && is_hex(id)
        && let Some(&(_, runtime)) = COLON_PREFIXES.iter().find(|(p, _)| *p == prefix)
    {
        let pod = (in_kubepods || slice.contains("kubepods"))
            .then(|| pod_uid(slice))
            .flatten();
        return Some((runtime, id, pod));
    }
    // LXC 4 and later (and LXD, Incus): `lxc.payload.<name>`, its monitor
    // `lxc.monitor.<name>`; older LXC: `/lxc/<name>`.
    for prefix in ["lxc.payload.", "lxc.monitor."] {
        if let Some(name) = component.strip_prefix(prefix)
            && !name.is_empty()
        {
            return Some(("lxc", name, None));
        }
    }
    if parent == "lxc" {
        return Some(("lxc", component, None));
    }
    if component.len() == OCI_ID && is_hex(component) {
        if let Some(&(_, runtime)) = PARENTS.iter().find(|(p, _)| *p == parent) {
            return Some((runtime, component, None));
        }
        if in_kubepods {
            return Some(("kubernetes", component, None));
        }
    }
    None
}

/// The pod UID (with dashes) of a pod's cgroup: `pod<uid>` (cgroupfs driver) or
/// `kubepods[-<qos>]-pod<uid with _ for ->.slice` (systemd driver).
fn pod_uid(component: &str) -> Option<String> {
    let raw = if let Some(slice) = component.strip_suffix(".slice") {
        let at = slice.rfind("-pod")?;
        &slice[at + "-pod".len()..]
    } else {
        component.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    is_pod_uid(&uid).then_some(uid)
}

/// A UUID (`8-4-4-4-12` hex digits) or, for static pods, 32 hex digits.
fn is_pod_uid(uid: &str) -> bool {
    let bytes = uid.as_bytes();
    match bytes.len() {
        32 => is_hex(uid),
        36 => bytes.iter().enumerate().all(|(index, &b)| {
            if matches!(index, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        }),
        _ => false,
    }
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
    const UID: &str = "1234abcd-56ef-7890-abcd-ef1234567890";

    fn owner(path: &str) -> (Option<String>, Option<Container>) {
        let owner = owner_of_cgroup(path);
        (owner.unit, owner.container)
    }

    fn unit(path: &str) -> Option<String> {
        owner(path).0
    }

    fn container(runtime: &'static str, id: &str, pod_uid: Option<&str>) -> Option<Container> {
        Some(Container {
            runtime,
            id: id.into(),
            pod_uid: pod_uid.map(Into::into),
        })
    }

    #[test]
    fn systemd_units() {
        assert_eq!(
            owner("/system.slice/nginx.service"),
            (Some("nginx.service".into()), None)
        );
        assert_eq!(
            owner("/user.slice/user-1000.slice/session-3.scope"),
            (Some("session-3.scope".into()), None)
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope"),
            Some("app-firefox-1234.scope".into())
        );
        assert_eq!(
            unit("/user.slice/user-1000.slice/user@1000.service/init.scope"),
            Some("init.scope".into())
        );
        assert_eq!(unit("/init.scope"), Some("init.scope".into()));
        // A service's own sub-cgroups belong to it.
        assert_eq!(
            unit("/system.slice/nginx.service/workers"),
            Some("nginx.service".into())
        );
        // Slices are not units; a bare suffix is not a name.
        assert_eq!(owner("/system.slice"), (None, None));
        assert_eq!(owner("/user.slice/user-1000.slice"), (None, None));
        assert_eq!(owner("/.service/.scope"), (None, None));
        assert_eq!(owner("/"), (None, None));
        assert_eq!(owner(""), (None, None));
        assert!(owner_of_cgroup("/").is_empty());
    }

    #[test]
    fn docker() {
        let docker = container("docker", ID, None);
        assert_eq!(
            owner(&format!("/system.slice/docker-{ID}.scope")),
            (None, docker.clone())
        );
        // cgroupfs driver.
        assert_eq!(owner(&format!("/docker/{ID}")), (None, docker.clone()));
        // The daemon itself.
        assert_eq!(
            owner("/system.slice/docker.service"),
            (Some("docker.service".into()), None)
        );
        // Docker in Docker: the innermost.
        let inner = ID.replace('3', "9");
        assert_eq!(
            owner(&format!("/docker/{ID}/docker/{inner}")),
            (None, container("docker", &inner, None))
        );
        // systemd inside a container: its service, and the container.
        assert_eq!(
            owner(&format!(
                "/system.slice/docker-{ID}.scope/system.slice/nginx.service"
            )),
            (Some("nginx.service".into()), docker)
        );
        // A bare id with no known parent is not guessed at.
        assert_eq!(owner(&format!("/somewhere/{ID}")), (None, None));
    }

    #[test]
    fn containerd_and_kubernetes() {
        assert_eq!(
            owner("/system.slice/containerd.service"),
            (Some("containerd.service".into()), None)
        );
        // A container inside the service: both.
        let underscored = UID.replace('-', "_");
        assert_eq!(
            owner(&format!(
                "/system.slice/containerd.service/kubepods-burstable-pod{underscored}.slice:cri-containerd:{ID}"
            )),
            (
                Some("containerd.service".into()),
                container("containerd", ID, Some(UID))
            )
        );
        assert_eq!(
            owner(&format!("/system.slice/containerd.service/{ID}")),
            (
                Some("containerd.service".into()),
                container("containerd", ID, None)
            )
        );
        // systemd driver.
        let pod_slice = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice"
        );
        assert_eq!(
            owner(&format!("{pod_slice}/cri-containerd-{ID}.scope")),
            (None, container("containerd", ID, Some(UID)))
        );
        assert_eq!(
            owner(&format!("{pod_slice}/crio-{ID}.scope")),
            (None, container("cri-o", ID, Some(UID)))
        );
        assert_eq!(
            owner(&format!("{pod_slice}/crio-conmon-{ID}.scope")),
            (None, container("cri-o", ID, Some(UID)))
        );
        assert_eq!(
            owner(&format!("{pod_slice}/docker-{ID}.scope")),
            (None, container("docker", ID, Some(UID)))
        );
        // The pod's own cgroup (guaranteed QoS has no class slice).
        assert_eq!(
            owner(&pod_slice),
            (None, container("kubernetes", UID, Some(UID)))
        );
        assert_eq!(
            owner(&format!("/kubepods.slice/kubepods-pod{underscored}.slice")),
            (None, container("kubernetes", UID, Some(UID)))
        );
        // kind and k3s nest it under the kubelet.
        assert_eq!(
            owner(&format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
                 kubelet-kubepods-besteffort-pod{underscored}.slice/cri-containerd-{ID}.scope"
            )),
            (None, container("containerd", ID, Some(UID)))
        );
        // cgroupfs driver.
        assert_eq!(
            owner(&format!("/kubepods/besteffort/pod{UID}/{ID}")),
            (None, container("kubernetes", ID, Some(UID)))
        );
        assert_eq!(
            owner(&format!("/kubepods/pod{UID}/{ID}")),
            (None, container("kubernetes", ID, Some(UID)))
        );
        assert_eq!(
            owner(&format!("/kubepods/burstable/pod{UID}")),
            (None, container("kubernetes", UID, Some(UID)))
        );
        // Static pods: the UID is a 32-digit hash.
        let hash = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            owner(&format!("/kubepods/burstable/pod{hash}/{ID}")),
            (None, container("kubernetes", ID, Some(hash)))
        );
        // "pod…" outside kubepods is not a pod.
        assert_eq!(owner(&format!("/pod{UID}")), (None, None));
    }

    #[test]
    fn podman_and_lxc() {
        assert_eq!(
            owner(&format!("/machine.slice/libpod-{ID}.scope")),
            (None, container("podman", ID, None))
        );
        assert_eq!(
            owner(&format!("/machine.slice/libpod-{ID}.scope/container")),
            (None, container("podman", ID, None))
        );
        assert_eq!(
            owner(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            (None, container("podman", ID, None))
        );
        // Rootless: the user's manager is the unit.
        assert_eq!(
            owner(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            )),
            (
                Some("user@1000.service".into()),
                container("podman", ID, None)
            )
        );
        assert_eq!(
            owner(&format!("/libpod_parent/libpod-{ID}")),
            (None, container("podman", ID, None))
        );
        assert_eq!(
            owner("/lxc.payload.web"),
            (None, container("lxc", "web", None))
        );
        assert_eq!(
            owner("/lxc.payload.web/system.slice/nginx.service"),
            (Some("nginx.service".into()), container("lxc", "web", None))
        );
        assert_eq!(
            owner("/lxc.monitor.web"),
            (None, container("lxc", "web", None))
        );
        assert_eq!(owner("/lxc/db"), (None, container("lxc", "db", None)));
        assert_eq!(owner("/lxc.payload."), (None, None));
    }

    #[test]
    fn display_short_and_matching() {
        let docker = Container {
            runtime: "docker",
            id: ID.into(),
            pod_uid: None,
        };
        assert_eq!(docker.short(), "3f2a1b4c5d6e");
        assert_eq!(docker.to_string(), "docker:3f2a1b4c5d6e");
        assert_eq!(docker.full(), format!("docker:{ID}"));
        assert!(docker.matches("3f2a"));
        assert!(docker.matches("3F2A1B"));
        assert!(docker.matches("docker:3f2a1b4c5d6e"));
        assert!(docker.matches(ID));
        assert!(!docker.matches("podman:3f2a"));
        assert!(!docker.matches("3f2b"));
        assert!(!docker.matches(""));
        assert!(!docker.matches("docker:"));
        assert!(!docker.matches(&format!("{ID}0")));

        let pod = Container {
            runtime: "containerd",
            id: ID.into(),
            pod_uid: Some(UID.into()),
        };
        assert_eq!(pod.to_string(), "k8s pod 1234abcd containerd:3f2a1b4c5d6e");
        assert_eq!(pod.full(), format!("k8s pod {UID} containerd:{ID}"));
        assert_eq!(pod.short_pod_uid(), Some("1234abcd"));
        assert!(pod.matches(UID));
        assert!(pod.matches("1234abcd"));
        assert!(pod.matches(&UID.replace('-', "_")));
        assert!(pod.matches("k8s:1234abcd"));
        let own = Container {
            runtime: "kubernetes",
            id: UID.into(),
            pod_uid: Some(UID.into()),
        };
        assert!(own.is_pod());
        assert_eq!(own.to_string(), "k8s pod 1234abcd");
        assert_eq!(own.full(), format!("k8s pod {UID}"));
        assert_eq!(own.short(), UID);
        let lxc = Container {
            runtime: "lxc",
            id: "a-very-long-container-name".into(),
            pod_uid: None,
        };
        assert_eq!(lxc.to_string(), "lxc:a-very-long-container-name");
        let cgroupfs = Container {
            runtime: "kubernetes",
            id: ID.into(),
            pod_uid: Some(UID.into()),
        };
        assert_eq!(cgroupfs.to_string(), "k8s pod 1234abcd 3f2a1b4c5d6e");
        assert_eq!(cgroupfs.full(), format!("k8s pod {UID} {ID}"));
        assert!(lxc.matches("a-very"));
        // Multi-byte names: no prefix cut inside a character.
        let odd = Container {
            runtime: "lxc",
            id: "é".into(),
            pod_uid: None,
        };
        assert!(!odd.matches("\u{c3}"));
        assert!(odd.matches("é"));
        assert!(!odd.matches("éé"));
    }

    #[test]
    fn hostile_paths_are_kept_as_they_are() {
        assert_eq!(
            unit("/system.slice/evil\x1b[31m.service"),
            Some("evil\x1b[31m.service".into())
        );
        assert_eq!(
            owner("/lxc.payload.a\nb\u{202e}"),
            (None, container("lxc", "a\nb\u{202e}", None))
        );
        // Not quite ids: not containers.
        let short = &ID[..11];
        assert_eq!(
            owner(&format!("/system.slice/docker-{short}.scope")),
            (Some(format!("docker-{short}.scope")), None)
        );
        assert_eq!(
            owner("/system.slice/docker-zzzzzzzzzzzzzzzz.scope"),
            (Some("docker-zzzzzzzzzzzzzzzz.scope".into()), None)
        );
        assert_eq!(
            owner(&format!("/kubepods/pod{}/x", &UID[..35])),
            (None, None)
        );
        assert_eq!(owner("/kubepods.slice/kubepods-pod.slice"), (None, None));
        assert_eq!(owner("/kubepods.slice/kubepods-podé.slice"), (None, None));
        assert_eq!(owner("::::"), (None, None));
        assert_eq!(
            owner(&format!("/a:docker:{ID}")),
            (None, container("docker", ID, None))
        );
    }

    #[test]
    fn nothing_panics() {
        // Every prefix of tricky paths, and pseudo-random strings.
        let samples = [
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
                UID.replace('-', "_")
            ),
            format!("/system.slice/containerd.service/kubepods-pod{UID}.slice:crio:{ID}"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
            "/lxc.payload.é\u{202e}\x00/é.scope/ü.service".to_owned(),
        ];
        for sample in &samples {
            for end in (0..=sample.len()).filter(|&end| sample.is_char_boundary(end)) {
                let _ = owner_of_cgroup(&sample[..end]);
                let _ = owner_of_cgroup(&sample[end..]);
            }
        }
        let alphabet: Vec<char> =
            "/-_.:@podkubepsliceservicscope0123456789abcdefé\u{0}\x1b\u{202e}"
                .chars()
                .collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut path = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 120) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                path.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let owner = owner_of_cgroup(&path);
            if let Some(container) = owner.container {
                let _ = (container.to_string(), container.full(), container.short());
                let _ = container.matches(&path);
            }
        }
    }
}
