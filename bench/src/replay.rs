//! `dnsq-bench replay`: DNS traffic at a set rate, sent and answered by one
//! process, for the loss figure at a rate dnsperf cannot reach here.
//!
//! On this machine's 2 cores dnsperf and dnsmasq together top out near 30k
//! queries a second, so `make bench` could not put the 50k q/s of the loss goal
//! on the wire. This sends the same query list at the asked rate from a few
//! client sockets to a server socket of its own, which answers each query with
//! the answer the real server (dnsmasq) gave to the same question once at
//! start-up, under the query's ID. Both ends are real loopback UDP sockets:
//! the recorder sees four messages a query, as with dnsperf, at a fraction of
//! the CPU (a hash lookup and a copy instead of dnsperf's and dnsmasq's work).

use std::{
    collections::HashMap,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    path::Path,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};
use serde_json::json;

/// What `replay` was asked to do.
pub struct Args<'a> {
    pub queries: &'a Path,
    /// The real server asked once for each question's answer.
    pub upstream: SocketAddr,
    /// Where this process's own server listens (port 53, or the probes do not
    /// see the traffic).
    pub listen: SocketAddr,
    pub qps: u64,
    pub seconds: u64,
    pub sockets: usize,
}

/// Room for a client's answers or the server's queries that arrive while their
/// reader is not running (2 cores, several busy processes): well above what
/// 50k q/s puts in a socket in a scheduling slice, so the kernel drops none.
const SOCKET_BUFFER: libc::c_int = 16 << 20;
/// How long after the last query is sent its answers are waited for.
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the traffic and prints what was sent and received at each end (JSON).
pub fn run(args: &Args) -> anyhow::Result<()> {
    let questions = read_queries(args.queries)?;
    let (answers, upstream) = ask_upstream(&questions, args.upstream)?;
    let udp_before = udp_counters()?;

    let server = UdpSocket::bind(args.listen)
        .with_context(|| format!("binding the replay server to {}", args.listen))?;
    grow_receive_buffer(&server)?;
    let stop_server = Arc::new(AtomicBool::new(false));
    let served = {
        let stop = Arc::clone(&stop_server);
        thread::spawn(move || serve(&server, &answers, &stop))
    };

    let clients = (0..args.sockets.max(1))
        .map(|_| {
            let socket = UdpSocket::bind(any_port_for(args.listen))?;
            grow_receive_buffer(&socket)?;
            Ok(socket)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let (sent, completed) = client(&clients, &questions, args);
    let send_seconds = started.elapsed().as_secs_f64();
    stop_server.store(true, Ordering::Relaxed);
    let (server_received, server_sent, unknown) = served.join().expect("the server panicked");
    let udp_after = udp_counters()?;

    println!(
        "{}",
        json!({
            "sent": sent.ok,
            "send_errors": sent.failed,
            "completed": completed,
            "server_received": server_received,
            "server_sent": server_sent,
            "unknown_questions": unknown,
            // The questions asked of the real server once at start-up: these
            // messages are on loopback too (a query and its answer, each seen
            // at both ends).
            "upstream_sent": upstream.sent,
            "upstream_answered": upstream.answered,
            // This process's CPU (user + system, all threads): what the traffic
            // itself costs, the loopback stack's work included.
            "cpu_s": own_cpu_seconds(),
            "seconds": send_seconds,
            "qps": sent.ok as f64 / send_seconds,
            // Datagrams the kernel dropped for a full receive buffer: the
            // recorder's ingress program saw them, the sockets did not.
            "rcvbuf_errors": udp_after.rcvbuf_errors - udp_before.rcvbuf_errors,
            "in_errors": udp_after.in_errors - udp_before.in_errors,
        })
    );
    Ok(())
}

/// One line of the query list (`NAME TYPE`, dnsperf's format) as a query
/// message with ID 0 and recursion desired.
struct Question {
    wire: Vec<u8>,
}

fn read_queries(path: &Path) -> anyhow::Result<Vec<Question>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut questions = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(qtype)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = Name::from_ascii(name)
            .with_context(|| format!("line {}: bad name {name:?}", number + 1))?;
        let qtype = RecordType::from_str(qtype)
            .with_context(|| format!("line {}: bad type {qtype:?}", number + 1))?;
        let mut message = Message::new();
        message.set_recursion_desired(true);
        message.add_query(Query::query(name, qtype));
        questions.push(Question {
            wire: message.to_vec().context("encoding a query")?,
        });
    }
    if questions.is_empty() {
        bail!("{} holds no queries", path.display());
    }
    Ok(questions)
}

/// Each question's stored answer, by the query's question section.
type Answers = HashMap<Vec<u8>, Vec<u8>>;

/// Any address and port of `peer`'s family: where a socket that talks to it binds.
fn any_port_for(peer: SocketAddr) -> SocketAddr {
    let any = if peer.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(any, 0)
}

/// Queries sent to the real server and answers read from it.
#[derive(Default)]
struct Upstream {
    sent: u64,
    answered: u64,
}

/// Each distinct question's answer from `upstream`, keyed by the question
/// section (everything after the 12-byte header of a query without EDNS).
fn ask_upstream(
    questions: &[Question],
    upstream: SocketAddr,
) -> anyhow::Result<(Answers, Upstream)> {
    let socket = UdpSocket::bind(any_port_for(upstream))?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut answers = HashMap::new();
    let mut counted = Upstream::default();
    let mut buf = [0u8; 65_535];
    for question in questions {
        let key = &question.wire[12..];
        if answers.contains_key(key) {
            continue;
        }
        let answer = (0..3)
            .find_map(|_| {
                socket.send(&question.wire).ok()?;
                counted.sent += 1;
                let n = socket.recv(&mut buf).ok()?;
                counted.answered += 1;
                (n >= 12 && buf[..2] == question.wire[..2]).then(|| buf[..n].to_vec())
            })
            .with_context(|| format!("{upstream} did not answer a query three times"))?;
        answers.insert(key.to_vec(), answer);
    }
    Ok((answers, counted))
}

/// User and system CPU seconds of this process so far.
fn own_cpu_seconds() -> f64 {
    // SAFETY: all-zero bytes are a valid rusage, which getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Datagrams a `sendmmsg` or `recvmmsg` call moves at most.
const BATCH: usize = 64;
/// Largest datagram handled (the stored answers are smaller: dnsmasq's over UDP
/// without EDNS are at most 512 bytes).
const DATAGRAM: usize = 1_232;
/// How long the client and the server sleep once their sockets are empty: the
/// pace of the sends, and a batch of datagrams a wakeup rather than one.
const TICK: Duration = Duration::from_micros(250);

/// Up to [`BATCH`] datagrams with their addresses, for one `sendmmsg` or
/// `recvmmsg`: a call per batch instead of a call and often a wakeup per
/// datagram, which on this VM cost more CPU than the loopback stack itself.
struct Datagrams {
    data: Vec<[u8; DATAGRAM]>,
    lens: [usize; BATCH],
    addrs: [libc::sockaddr_storage; BATCH],
    addr_lens: [libc::socklen_t; BATCH],
    count: usize,
}

impl Datagrams {
    fn new() -> Box<Self> {
        Box::new(Self {
            data: vec![[0; DATAGRAM]; BATCH],
            lens: [0; BATCH],
            // SAFETY: all-zero bytes are a valid (unspecified) sockaddr_storage.
            addrs: unsafe { std::mem::zeroed() },
            addr_lens: [0; BATCH],
            count: 0,
        })
    }

    /// Adds a datagram to `to`; false when the batch is full.
    fn push(&mut self, bytes: &[u8], to: &libc::sockaddr_storage, to_len: libc::socklen_t) -> bool {
        if self.count == BATCH {
            return false;
        }
        let i = self.count;
        self.data[i][..bytes.len()].copy_from_slice(bytes);
        self.lens[i] = bytes.len();
        self.addrs[i] = *to;
        self.addr_lens[i] = to_len;
        self.count += 1;
        true
    }

    /// Puts `id` in the last datagram pushed, where a DNS message's ID is.
    fn set_last_id(&mut self, id: [u8; 2]) {
        self.data[self.count - 1][..2].copy_from_slice(&id);
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.data[i][..self.lens[i]]
    }

    /// The `mmsghdr`s of the first `n` slots, each pointing at its buffer (through
    /// `iovs`, filled here) and its address: to receive into (whole buffers, room
    /// for any address) or to send from (the datagrams and addresses pushed).
    fn headers(
        &mut self,
        iovs: &mut [libc::iovec; BATCH],
        n: usize,
        receiving: bool,
    ) -> [libc::mmsghdr; BATCH] {
        // SAFETY: all-zero bytes are a valid mmsghdr.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let slots = headers
            .iter_mut()
            .zip(iovs.iter_mut())
            .zip(self.data.iter_mut().zip(self.addrs.iter_mut()))
            .enumerate()
            .take(n);
        for (i, ((header, iov), (data, addr))) in slots {
            *iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: if receiving { DATAGRAM } else { self.lens[i] },
            };
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = if receiving {
                size_of::<libc::sockaddr_storage>() as libc::socklen_t
            } else {
                self.addr_lens[i]
            };
        }
        headers
    }

    /// `sendmmsg` of the batch on `socket`; the datagrams sent. Blocks if the
    /// socket's send buffer is full, as a blocking `send_to` would.
    fn send(&mut self, socket: &UdpSocket) -> usize {
        let mut iovs = [EMPTY_IOV; BATCH];
        let mut headers = self.headers(&mut iovs, self.count, false);
        let mut done = 0;
        while done < self.count {
            // SAFETY: `count - done` valid headers from `done` on, pointing at
            // `iovs` and `self`, which outlive the call.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[done..].as_mut_ptr(),
                    (self.count - done) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                break; // an error: the rest of the batch is counted as not sent
            }
            done += n as usize;
        }
        self.count = 0;
        done
    }

    /// `recvmmsg` of what is queued on `socket` now (up to [`BATCH`]), without
    /// waiting; how many datagrams arrived.
    fn receive(&mut self, socket: &UdpSocket) -> usize {
        let mut iovs = [EMPTY_IOV; BATCH];
        let mut headers = self.headers(&mut iovs, BATCH, true);
        // SAFETY: BATCH valid headers, pointing at `iovs` and `self`, which
        // outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.count = n.max(0) as usize;
        for (i, header) in headers.iter().enumerate().take(self.count) {
            self.lens[i] = header.msg_len as usize;
            self.addr_lens[i] = header.msg_hdr.msg_namelen;
        }
        self.count
    }
}

const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// Answers each query with the stored answer to its question until `stop`;
/// returns the queries received, the answers sent and the questions it had no
/// answer for.
fn serve(socket: &UdpSocket, answers: &Answers, stop: &AtomicBool) -> (u64, u64, u64) {
    let (mut received, mut sent, mut unknown) = (0u64, 0u64, 0u64);
    let mut queries = Datagrams::new();
    let mut replies = Datagrams::new();
    while !stop.load(Ordering::Relaxed) {
        let n = queries.receive(socket);
        if n == 0 {
            thread::sleep(TICK);
            continue;
        }
        received += n as u64;
        for i in 0..n {
            let query = queries.get(i);
            let Some(stored) = (query.len() >= 12)
                .then(|| answers.get(&query[12..]))
                .flatten()
            else {
                unknown += 1;
                continue;
            };
            // At most BATCH queries came in, so there is room for each answer.
            replies.push(stored, &queries.addrs[i], queries.addr_lens[i]);
            replies.set_last_id([query[0], query[1]]);
        }
        sent += replies.send(socket) as u64;
    }
    (received, sent, unknown)
}

/// Queries sent, and sends that failed.
struct Sent {
    ok: u64,
    failed: u64,
}

impl Sent {
    /// Sends `batch` on `socket`, counting what went and what did not.
    fn flush(&mut self, batch: &mut Datagrams, socket: &UdpSocket) {
        let queued = batch.count as u64;
        let ok = batch.send(socket) as u64;
        self.ok += ok;
        self.failed += queued - ok;
    }
}

/// The client: sends the questions in order, round after round, spread over
/// the client sockets, at `args.qps` for `args.seconds` (every [`TICK`], as
/// many as are due), and reads the answers, until every query is answered or
/// [`DRAIN`] after the last one. Returns what was sent and the answers read.
fn client(clients: &[UdpSocket], questions: &[Question], args: &Args) -> (Sent, u64) {
    let total = args.qps * args.seconds;
    let (server, server_len) = sockaddr(args.listen);
    let mut sent = Sent { ok: 0, failed: 0 };
    let mut answered = 0u64;
    let mut batches: Vec<_> = clients.iter().map(|_| Datagrams::new()).collect();
    let mut answers = Datagrams::new();
    let mut next = 0u64;
    let started = Instant::now();
    let mut last_sent = None;
    loop {
        let due = ((started.elapsed().as_secs_f64() * args.qps as f64) as u64).min(total);
        while next < due {
            let question = &questions[(next % questions.len() as u64) as usize];
            let which = (next % clients.len() as u64) as usize;
            let batch = &mut batches[which];
            if !batch.push(&question.wire, &server, server_len) {
                sent.flush(batch, &clients[which]);
                batch.push(&question.wire, &server, server_len);
            }
            // IDs as dnsperf gives them: a counter, so that no two queries in
            // flight on a socket share one.
            batch.set_last_id((next as u16).to_be_bytes());
            next += 1;
        }
        for (batch, socket) in batches.iter_mut().zip(clients) {
            sent.flush(batch, socket);
        }
        for socket in clients {
            while answers.receive(socket) > 0 {
                answered += answers.count as u64;
            }
        }
        if next == total {
            let at = *last_sent.get_or_insert_with(Instant::now);
            if answered >= sent.ok || at.elapsed() >= DRAIN {
                break;
            }
        }
        thread::sleep(TICK);
    }
    (sent, answered)
}

/// `addr` as the C socket address `sendmmsg` takes.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: a sockaddr_in fits in a sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: a sockaddr_in6 fits in a sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// As big a receive buffer as [`SOCKET_BUFFER`]: past `net.core.rmem_max` when
/// root (SO_RCVBUFFORCE), else as far as that allows.
fn grow_receive_buffer(socket: &UdpSocket) -> anyhow::Result<()> {
    let size = SOCKET_BUFFER;
    let set = |option| {
        // SAFETY: an int option of the socket's own descriptor.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 && set(libc::SO_RCVBUF) != 0 {
        return Err(std::io::Error::last_os_error()).context("setting SO_RCVBUF");
    }
    Ok(())
}

/// The namespace's UDP counters that say the kernel dropped datagrams.
struct UdpCounters {
    in_errors: u64,
    rcvbuf_errors: u64,
}

/// `Udp:` of /proc/net/snmp (this process's network namespace).
fn udp_counters() -> anyhow::Result<UdpCounters> {
    let text = fs::read_to_string("/proc/net/snmp").context("reading /proc/net/snmp")?;
    let mut udp = text.lines().filter(|line| line.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        bail!("/proc/net/snmp has no Udp lines");
    };
    let field = |wanted: &str| -> anyhow::Result<u64> {
        let at = names
            .split_whitespace()
            .position(|name| name == wanted)
            .with_context(|| format!("/proc/net/snmp has no Udp {wanted}"))?;
        values
            .split_whitespace()
            .nth(at)
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("/proc/net/snmp: a bad Udp {wanted}"))
    };
    Ok(UdpCounters {
        in_errors: field("InErrors")?,
        rcvbuf_errors: field("RcvbufErrors")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
        let mut message = Message::new();
        message.set_id(id);
        message.set_recursion_desired(true);
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        message.to_vec().unwrap()
    }

    /// The server answers a known question with the stored answer under the
    /// query's ID, sends nothing for an unknown one, and counts both; the
    /// client's batches carry each datagram to its address and back.
    #[test]
    fn the_server_answers_a_known_question_under_the_query_id() {
        let known = query("h1.example.", RecordType::A, 0);
        let mut stored = known.clone();
        stored[2] |= 0x80; // QR: an answer
        stored.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 1]);
        let answers = HashMap::from([(known[12..].to_vec(), stored.clone())]);

        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || serve(&server, &answers, &stop))
        };

        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to, to_len) = sockaddr(server_addr);
        let mut out = Datagrams::new();
        assert!(out.push(&query("h1.example.", RecordType::A, 0x1234), &to, to_len));
        assert!(out.push(&query("nx.example.", RecordType::A, 0x4321), &to, to_len));
        assert_eq!(out.send(&client), 2);

        let mut replies = Datagrams::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while replies.receive(&client) == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(replies.count, 1);
        let mut expected = stored;
        expected[..2].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(replies.get(0), &expected[..]);

        // Give the unknown question time to arrive before stopping.
        thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(served.join().unwrap(), (2, 1, 1));
    }

    #[test]
    fn a_query_list_line_becomes_a_query_with_one_question() {
        let dir = std::env::temp_dir().join(format!("dnsq-replay-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("queries.txt");
        fs::write(&path, "h1.example. AAAA\n\nm1.example. MX\n").unwrap();
        let questions = read_queries(&path).unwrap();
        assert_eq!(questions.len(), 2);
        assert_eq!(questions[0].wire, query("h1.example.", RecordType::AAAA, 0));
        assert_eq!(questions[1].wire, query("m1.example.", RecordType::MX, 0));
        fs::write(&path, "h1.example. NOTATYPE\n").unwrap();
        assert!(read_queries(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
