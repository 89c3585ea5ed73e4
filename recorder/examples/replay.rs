//! Replays synthetic ring-buffer events of a dnsperf-against-dnsmasq exchange
//! (client query sent, resolver receives it, resolver answers, client receives)
//! through the real pipeline and store, for load-independent CPU measurements
//! (`valgrind --tool=callgrind`, user CPU of one process). Not part of the
//! recorder.
//!
//! usage: replay DB QUERIES [thread] [sent-only]
//!
//! With `thread`, the store runs on its own thread (as in the recorder on more
//! than two CPUs; without it, on the pipeline's, as on two or fewer) and the
//! pipeline thread's own CPU is shown apart. With `sent-only`, every message goes
//! through the whole pipeline but only the sending socket's copy of each packet
//! is stored: what storing one row per loopback packet instead of one per socket
//! would save at most (such a row would also carry the receiving end).

use std::{path::PathBuf, time::Instant};

use dnsq_common::{OwnerHook, PacketHeader, SockOwner, direction, family, proto};
use dnsq_recorder::{
    attribution::{Attributor, OwnerMap},
    event::WallClock,
    pipeline::Pipeline,
    procinfo::ProcInfo,
    record::Direction,
    store,
};

/// The recorder's allocator, so the measured costs are the recorder's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoMap;
impl OwnerMap for NoMap {
    fn get(&self, _cookie: u64) -> Option<SockOwner> {
        None
    }
    fn insert(&mut self, _cookie: u64, _owner: SockOwner) {}
}

fn owner(pid: u32, comm: &str, hook: OwnerHook) -> SockOwner {
    let mut c = [0u8; 16];
    c[..comm.len()].copy_from_slice(comm.as_bytes());
    SockOwner {
        pid,
        tid: pid,
        uid: 0,
        gid: 0,
        cgroup_id: 0,
        seen_boot_ns: 0,
        comm: c,
        process_comm: c,
        netns: 0,
        _pad: 0,
        hook: hook as u32,
        first_hook: hook as u32,
    }
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        1,
    ];
    m.extend(name_bytes(name));
    m.extend([(qtype >> 8) as u8, qtype as u8, 0, 1]);
    // EDNS OPT, as dnsperf sends it.
    m.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn response(id: u16, name: &str, qtype: u16, nx: bool, i: u32) -> Vec<u8> {
    let answers: u16 = if nx { 0 } else { 1 };
    let rcode = if nx { 3 } else { 0 };
    let mut m = vec![
        (id >> 8) as u8,
        id as u8,
        0x85,
        0x80 | rcode,
        0,
        1,
        0,
        answers as u8,
        0,
        0,
        0,
        1,
    ];
    m.extend(name_bytes(name));
    m.extend([(qtype >> 8) as u8, qtype as u8, 0, 1]);
    if !nx {
        m.extend([
            0xc0,
            0x0c,
            (qtype >> 8) as u8,
            qtype as u8,
            0,
            1,
            0,
            0,
            0,
            0,
        ]);
        if qtype == 28 {
            m.extend([
                0, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0, i as u8,
            ]);
        } else {
            m.extend([0, 4, 198, 18, 0, (i % 200) as u8 + 10]);
        }
    }
    m.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn event(
    boot_ns: u64,
    cookie: u64,
    who: &SockOwner,
    sent: bool,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let h = PacketHeader {
        boot_ns,
        sock_cookie: cookie,
        sock_cgroup_id: 1,
        owner: *who,
        saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        daddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ifindex: 1,
        tcp_seq: 0,
        payload_len: payload.len() as u32,
        captured_len: payload.len() as u32,
        sport,
        dport,
        family: family::INET,
        proto: proto::UDP,
        direction: if sent {
            direction::SENT
        } else {
            direction::RECEIVED
        },
        tcp_flags: 0,
        owner_found: 1,
        _pad: 0,
    };
    // SAFETY: reading the header's own bytes.
    let raw = unsafe {
        std::slice::from_raw_parts(
            (&h as *const PacketHeader).cast::<u8>(),
            size_of::<PacketHeader>(),
        )
    };
    [raw, payload].concat()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = PathBuf::from(args.next().expect("DB"));
    let queries: u32 = args.next().expect("QUERIES").parse()?;
    let options: Vec<String> = args.collect();
    let threaded = options.iter().any(|o| o == "thread");
    let sent_only = options.iter().any(|o| o == "sent-only");
    let me = std::process::id();
    let client = owner(me, "dnsperf", OwnerHook::Connect);
    let server = owner(me, "dnsmasq", OwnerHook::PostBind);
    let mut store = store::open_for_writing(&db)?;
    store.start_run("{}")?;
    let sink = Sink {
        store: if threaded {
            Store::Background(Box::new(store::Background::spawn(store)?))
        } else {
            Store::Direct(Box::new(store))
        },
        sent_only,
    };
    let mut pipeline = Pipeline::new(
        Attributor::new(NoMap, PathBuf::from("/sys/fs/cgroup")),
        ProcInfo::new(PathBuf::from("/sys/fs/cgroup")),
        sink,
    );
    let zone = "r1234abcd.dnsq-bench.test.";
    let t0 = WallClock::boot_now_ns();
    let started = Instant::now();
    let cpu0 = cpu();
    for i in 0..queries {
        let n = i % 700;
        let (name, qtype, nx) = match n {
            0..200 => (
                format!("h{n}.{zone}"),
                if i % 7 < 4 { 1 } else { 28 },
                false,
            ),
            200..500 => (format!("h{}.{zone}", n - 200), 1, false),
            500..550 => (format!("t{}.{zone}", n % 40), 1, false),
            _ => (
                format!("nx{}.{zone}", n - 550),
                if i % 2 == 0 { 1 } else { 28 },
                true,
            ),
        };
        let id = (i % 65_536) as u16;
        let sport = 10_000 + (i % 4) as u16;
        let cookie = 1_000 + u64::from(i % 4);
        let t = t0 + u64::from(i) * 50_000;
        let q = query(id, &name, qtype);
        let r = response(id, &name, qtype, nx, n);
        pipeline.handle_event(&event(t, cookie, &client, true, sport, 53, &q))?;
        pipeline.handle_event(&event(t + 10_000, 7, &server, false, sport, 53, &q))?;
        pipeline.handle_event(&event(t + 20_000, 7, &server, true, 53, sport, &r))?;
        pipeline.handle_event(&event(t + 30_000, cookie, &client, false, 53, sport, &r))?;
        if i % 64 == 0 {
            pipeline.tick()?;
        }
    }
    pipeline.finish()?;
    let own = cpu_of(libc::RUSAGE_THREAD);
    let stats = pipeline.stats();
    let stored = match &mut pipeline.sink_mut().store {
        Store::Direct(store) => {
            store.commit_all();
            store.finish("replay")?
        }
        Store::Background(store) => {
            store.commit_all();
            store.finish("replay")?
        }
    };
    let cpu1 = cpu();
    let per = |seconds: f64| 1e6 * seconds / stats.messages as f64;
    eprintln!(
        "messages {} committed {} in {:.2} s, user {:.2} µs/message, sys {:.2} µs/message \
         (pipeline thread until its last record: user {:.2}, sys {:.2}), maxrss {} KiB",
        stats.messages,
        stored.committed,
        started.elapsed().as_secs_f64(),
        per(cpu1.0 - cpu0.0),
        per(cpu1.1 - cpu0.1),
        per(own.0 - cpu0.0),
        per(own.1 - cpu0.1),
        cpu1.2
    );
    Ok(())
}

/// The recorder's two ways of storing.
enum Store {
    Direct(Box<store::Store>),
    Background(Box<store::Background>),
}

struct Sink {
    store: Store,
    /// Received copies are not stored.
    sent_only: bool,
}

impl dnsq_recorder::pipeline::Sink for Sink {
    fn write(&mut self, record: dnsq_recorder::record::MessageRecord) -> anyhow::Result<()> {
        if self.sent_only && record.direction == Direction::Received {
            return Ok(());
        }
        match &mut self.store {
            Store::Direct(store) => store.write(record),
            Store::Background(store) => store.write(record),
        }
    }

    fn write_lookup(&mut self, record: dnsq_recorder::record::LookupRecord) -> anyhow::Result<()> {
        match &mut self.store {
            Store::Direct(store) => store.write_lookup(record),
            Store::Background(store) => store.write_lookup(record),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.store {
            Store::Direct(store) => store.flush(),
            Store::Background(store) => store.flush(),
        }
    }
}

fn cpu() -> (f64, f64, i64) {
    cpu_of(libc::RUSAGE_SELF)
}

/// (user s, system s, max RSS KiB) of the process or the calling thread.
fn cpu_of(who: libc::c_int) -> (f64, f64, i64) {
    // SAFETY: getrusage fills the struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime), usage.ru_maxrss)
}
