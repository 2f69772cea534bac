//! The seed's experiment as an application: a server on the DSA that serves SIZE bytes
//! and hands the connection to another server node after half, and the client that
//! downloads them. `testbed/run handoff` runs the three roles; each prints one JSON
//! object per connection on standard output.
//!
//! ```text
//! m6-ds-server donor    --dsa A --home-agent A --care-of A --to ADDR:PORT --port P
//!                       [--count N] [--size BYTES] [--drain off|on|auto] [--wait MS]
//!                       [--accept-timeout MS] --key-file F
//! m6-ds-server acceptor --dsa A --care-of A --listen ADDR:PORT --port P
//!                       [--count N] [--size BYTES] [--sequence-after CLIENT=SEQ]
//!                       --key-file F
//! m6-ds-server client   --dsa A --port P [--count N] [--size BYTES] [--first RUN]
//!                       [--upload-during]
//! m6-ds-server app      --socket PATH --dsa A --port P [--listen] [--route NODE,...]
//!                       [--count N] [--size BYTES] [--first RUN]
//! ```
//!
//! `app` is the same server through the local mip6d (`mip6d::dsapp`): one process per
//! server node, registered for (DSA, P). With `--listen` (on the contact node) it accepts
//! COUNT clients and hands each along `--route` (e.g. `2` or `2,1` for A→B→A), writing
//! an equal share before each handoff; a node that receives a connection writes its share
//! and hands it on, or, at the end of the route, writes the rest, checks the request and
//! upload and ends the connection. It runs until mip6d closes the application socket or
//! it is killed; the donor and acceptor roles above drive the engine without mip6d.
//!
//! - The donor runs on the contact node (its mip6d holds the DSA's home registration):
//!   for each client it waits for the request (777 bytes, left unread: it travels with
//!   the connection), writes the first half, and hands off with `mip6d::dsnode::donor`.
//! - The acceptor (the DSA on its `lo`) takes each handoff with
//!   `mip6d::dsnode::acceptor`, writes the second half, reads the request and the
//!   client's upload, and closes (which releases the client's binding).
//! - The client downloads, checks the bytes, uploads, and reports the pause it saw
//!   around the middle (last byte of the first half → first byte after it), the
//!   longest pause between two reads once data flows, and every read's offset and time.
//!
//! Byte `i` of a download is a fixed function of `i` and the run number, so every
//! party can check what it got. Root (raw sockets, netfilter queues, TCP_REPAIR).

use std::io::{Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use mip6d::config::model::HandoffDrain;
use mip6d::crypto::auth::SharedKey;
use mip6d::ds::handoff::Timeouts;
use mip6d::ds::phases::Spans;
use mip6d::dsapp::DsApp;
use mip6d::dsnode::acceptor::{accept_one, Accepted, AcceptorConfig, Sequences};
use mip6d::dsnode::conn_path::{ConnPaths, PathBackend};
use mip6d::dsnode::donor::{hand_off, prepare, Contact, DonorConfig};
use mip6d::sys::netlock::NetLock;
use mip6d::sys::tcp_repair;
use serde_json::{json, Value};

const REQUEST_LEN: usize = 777;
const UPLOAD_LEN: usize = 100_000;
/// Where `client --upload-during` stops if the download never ends.
const UPLOAD_MAX: usize = 4_000_000;

#[derive(Parser)]
#[command(about = "Distributed Servers handoff experiment: donor, acceptor or client")]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    Donor {
        #[arg(long)]
        dsa: Ipv6Addr,
        #[arg(long)]
        home_agent: Ipv6Addr,
        #[arg(long)]
        care_of: Ipv6Addr,
        /// The acceptor's control address and port.
        #[arg(long)]
        to: SocketAddrV6,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1_000_000)]
        size: usize,
        #[arg(long, default_value = "off")]
        drain: String,
        /// Milliseconds to wait between the last write and the handoff (the seed's
        /// §3.2.3 experiment: the socket's buffers empty meanwhile).
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// Milliseconds from the Offer to the Accept before rolling back (default the
        /// protocol's); a large state over a slow link needs longer.
        #[arg(long)]
        accept_timeout: Option<u64>,
        #[arg(long)]
        key_file: PathBuf,
        /// TCP_NOTSENT_LOWAT on each served connection (0: not set): the kernel then holds
        /// at most about this much unsent, so a handoff ships little more than what is
        /// in flight.
        #[arg(long, default_value_t = 0)]
        notsent_lowat: usize,
    },
    Acceptor {
        #[arg(long)]
        dsa: Ipv6Addr,
        #[arg(long)]
        care_of: Ipv6Addr,
        #[arg(long)]
        listen: SocketAddrV6,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1_000_000)]
        size: usize,
        #[arg(long)]
        key_file: PathBuf,
        /// First of the two netfilter queues of the per-connection binding.
        #[arg(long, default_value_t = 7700)]
        queue: u16,
        /// CLIENT=SEQ: the client's binding for the DSA was last updated with SEQ (by an
        /// earlier acceptor); this one's Binding Updates must be newer. A client keeps a
        /// deleted binding's number for a while (RFC 6275 §5.2.8).
        #[arg(long)]
        sequence_after: Vec<String>,
    },
    Client {
        #[arg(long)]
        dsa: Ipv6Addr,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1_000_000)]
        size: usize,
        /// Number of the first run (the servers count from 0; it picks the bytes).
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// Upload while downloading (1 kB a millisecond) rather than after: the client's
        /// data is in flight and queued during the handoffs.
        #[arg(long)]
        upload_during: bool,
    },
    App {
        /// mip6d's application socket of the `DistributedServer` block.
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        dsa: Ipv6Addr,
        #[arg(long)]
        port: u16,
        /// Accept clients on the DSA (the contact node).
        #[arg(long)]
        listen: bool,
        /// The nodes each connection is handed to in turn (node ids or addresses).
        #[arg(long, value_delimiter = ',')]
        route: Vec<String>,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1_000_000)]
        size: usize,
        /// Number of the first client's run (it picks the bytes).
        #[arg(long, default_value_t = 0)]
        first: usize,
    },
}

fn byte(i: usize, salt: usize) -> u8 {
    ((i ^ salt).wrapping_mul(2_654_435_761) >> 11) as u8
}

fn bytes(range: std::ops::Range<usize>, salt: usize) -> Vec<u8> {
    range.map(|i| byte(i, salt)).collect()
}

/// Spans as `[[name, µs], ...]`, in their order.
fn spans_json(s: &Spans) -> serde_json::Value {
    s.0.iter()
        .map(|(n, d)| json!([n, d.as_micros() as u64]))
        .collect()
}

fn key(path: &std::path::Path) -> Result<SharedKey, String> {
    SharedKey::load(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn donor(r: Role) -> Result<(), String> {
    let Role::Donor {
        dsa,
        home_agent,
        care_of,
        to,
        port,
        count,
        size,
        drain,
        wait,
        accept_timeout,
        key_file,
        notsent_lowat,
    } = r
    else {
        unreachable!()
    };
    let wait = Duration::from_millis(wait);
    let drain = match drain.as_str() {
        "off" => HandoffDrain::Off,
        "on" => HandoffDrain::On,
        "auto" => HandoffDrain::Auto,
        d => return Err(format!("--drain {d}: off, on or auto")),
    };
    let cfg = DonorConfig {
        contact: Contact {
            dsa,
            home_agent,
            care_of,
        },
        node_id: 1,
        key: key(&key_file)?,
        drain,
        drain_bound: Duration::from_secs(2),
        timeouts: Timeouts {
            accept: accept_timeout.map_or(Timeouts::default().accept, Duration::from_millis),
            ..Timeouts::default()
        },
    };
    let mut lock = NetLock::install("ds_server").map_err(|e| format!("network lock: {e}"))?;
    let listener = TcpListener::bind(SocketAddrV6::new(dsa, port, 0, 0))
        .map_err(|e| format!("listen on [{dsa}]:{port}: {e}"))?;
    // Ready: the client may connect.
    eprintln!("donor: listening on [{dsa}]:{port}");
    let mut result = Ok(());
    for run in 0..count {
        let mut one = || -> Result<serde_json::Value, String> {
            let (mut s, peer) = listener.accept().map_err(|e| e.to_string())?;
            if notsent_lowat > 0 {
                mip6d::sys::sockbuf::set_notsent_lowat(s.as_fd(), notsent_lowat)
                    .map_err(|e| format!("TCP_NOTSENT_LOWAT: {e}"))?;
            }
            let std::net::IpAddr::V6(client) = peer.ip() else {
                return Err(format!("{peer}: not IPv6"));
            };
            // The home test now, while the connection serves: off the client's pause.
            let prepared = prepare(&cfg, client).map_err(|e| format!("home test: {e}"))?;
            let t = Instant::now();
            while tcp_repair::unread_bytes(s.as_fd()).map_err(|e| e.to_string())?
                < REQUEST_LEN as u32
            {
                if t.elapsed() > Duration::from_secs(5) {
                    return Err("the request never arrived".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            s.write_all(&bytes(0..size / 2, run))
                .map_err(|e| e.to_string())?;
            std::thread::sleep(wait);
            let app = ((size / 2) as u64).to_be_bytes().to_vec();
            let (r, back) = hand_off(s, to, run as u64 + 1, app, &cfg, &mut lock, Some(prepared))
                .map_err(|e| format!("handoff: {e}"))?;
            if back.is_some() {
                return Err(format!(
                    "rolled back: {:?}; spans (us) {}",
                    r.outcome,
                    spans_json(&r.spans)
                ));
            }
            let phases: Vec<serde_json::Value> = r
                .phases
                .0
                .iter()
                .map(|t| t.micros().map_or(serde_json::Value::Null, |us| json!(us)))
                .collect();
            Ok(json!({
                "run": run,
                "wait_ms": wait.as_millis() as u64,
                "outcome": format!("{:?}", r.outcome),
                "state_bytes": r.state_bytes,
                "send_queue": r.send_queue,
                "unsent": r.unsent,
                "spans_us": spans_json(&r.spans),
                "recv_queue": r.recv_queue,
                "home_test_us": r.home_test.as_micros() as u64,
                "phases_us": phases,
            }))
        };
        match one() {
            Ok(v) => println!("{v}"),
            Err(e) => {
                println!("{}", json!({"run": run, "error": e}));
                result = Err(e);
                break;
            }
        }
    }
    let _ = lock.remove();
    result
}

fn acceptor(r: Role) -> Result<(), String> {
    let Role::Acceptor {
        dsa,
        care_of,
        listen,
        port,
        count,
        size,
        key_file,
        queue,
        sequence_after,
    } = r
    else {
        unreachable!()
    };
    let mut seeded = Sequences::default();
    for a in &sequence_after {
        let (client, seq) = a
            .split_once('=')
            .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)))
            .ok_or_else(|| format!("--sequence-after {a}: CLIENT=SEQ"))?;
        seeded.record(client, seq);
    }
    let control = TcpListener::bind(listen).map_err(|e| format!("listen on {listen}: {e}"))?;
    eprintln!("acceptor: listening on {listen}");
    // Each connection is served on its own thread, and the next is taken as soon as the
    // client's binding is released: the next handoff finds this node listening (as a
    // daemon would). The per-connection data path stays open throughout (one pair of
    // netfilter queues for every connection): taking a connection on is then a few
    // netlink messages, not `ip6tables` processes.
    let _paths = ConnPaths::open(queue).map_err(|e| format!("data path: {e}"))?;
    let control = Arc::new(control);
    let sequences = Arc::new(Mutex::new(seeded));
    let mut served = Vec::new();
    for run in 0..count {
        let known = sequences.lock().map_err(|_| "poisoned")?.clone();
        let cfg = AcceptorConfig {
            dsa,
            care_of,
            node_id: 2,
            key: key(&key_file)?,
            timeouts: Timeouts::default(),
            path: PathBackend::Queue(queue),
            ports: vec![port],
            contact: false,
        };
        let (control, sequences) = (control.clone(), sequences.clone());
        let (released_tx, released_rx) = mpsc::channel();
        served.push(std::thread::spawn(move || {
            let a = accept_one(&control, &cfg, &known).map_err(|e| format!("accept: {e}"))?;
            serve(a, run, size, &sequences, released_tx)
        }));
        // The next client's binding must be newer than this one's deletion.
        if released_rx.recv().is_err() {
            break;
        }
    }
    let mut result = Ok(());
    for t in served {
        match t
            .join()
            .map_err(|_| "a serving thread panicked".to_string())?
        {
            Ok(v) => println!("{v}"),
            Err(e) => result = Err(e),
        }
    }
    result
}

/// Serves the second half of a connection taken over, reads the rest, closes.
fn serve(
    mut a: Accepted,
    run: usize,
    size: usize,
    sequences: &Mutex<Sequences>,
    released: mpsc::Sender<()>,
) -> Result<serde_json::Value, String> {
    let half = a
        .app
        .as_slice()
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| "application data: not a u64 offset")? as usize;
    a.stream
        .write_all(&bytes(half..size, run))
        .map_err(|e| e.to_string())?;
    let mut request = vec![0; REQUEST_LEN];
    a.stream
        .read_exact(&mut request)
        .map_err(|e| format!("request: {e}"))?;
    let mut upload = Vec::new();
    a.stream
        .read_to_end(&mut upload)
        .map_err(|e| format!("upload: {e}"))?;
    let intact = request == bytes(0..REQUEST_LEN, 1) && upload == bytes(0..UPLOAD_LEN, 2);
    let (seq, rewritten, state_bytes) = (a.sequence, a.rewritten(), a.state_bytes);
    let spans = spans_json(&a.spans);
    let client = a.stream.peer_addr().map_err(|e| e.to_string())?.ip();
    a.finish_with(|held| {
        if let (std::net::IpAddr::V6(c), Ok(mut s)) = (client, sequences.lock()) {
            s.record(c, held);
        }
        let _ = released.send(());
    });
    Ok(json!({
        "run": run,
        "bu_sequence": seq,
        "state_bytes": state_bytes,
        "spans_us": spans,
        "rewritten_in": rewritten.0,
        "rewritten_out": rewritten.1,
        "request_and_upload_intact": intact,
    }))
}

fn client(r: Role) -> Result<(), String> {
    let Role::Client {
        dsa,
        port,
        count,
        size,
        first,
        upload_during,
    } = r
    else {
        unreachable!()
    };
    let mut ok = true;
    for run in first..first + count {
        let mut s = TcpStream::connect(SocketAddrV6::new(dsa, port, 0, 0))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        s.write_all(&bytes(0..REQUEST_LEN, 1))
            .map_err(|e| e.to_string())?;
        let done = Arc::new(AtomicBool::new(false));
        let uploader = if upload_during {
            let w = s.try_clone().map_err(|e| e.to_string())?;
            Some(spawn_uploader(w, done.clone()))
        } else {
            None
        };
        let mut got = vec![0; size];
        let start = Instant::now();
        let (mut off, mut last) = (0, start);
        // (end offset, µs since the request) of every read up to the one that crosses
        // the middle: the pause the client saw lies at the byte where the donor stopped
        // transmitting, which only the donor knows (`unsent` in its report).
        let mut reads: Vec<(usize, u64)> = Vec::new();
        let mut middle = None;
        // The longest pause once data flows: the wait for the first byte (the donor's
        // home test) is not the handoff's, and when the donor hands off a full send queue
        // the acceptor resends bytes before the middle, so the pause is not at the middle.
        let mut stall = Duration::ZERO;
        let mut error = None;
        while off < size {
            match s.read(&mut got[off..]) {
                Ok(0) => {
                    error = Some(format!("end of stream after {off} bytes"));
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    // The read that brings the first byte past the middle ends the pause
                    // the handoff caused.
                    if off >= size / 2 && middle.is_none() {
                        middle = Some(now - last);
                    }
                    if off <= size / 2 {
                        reads.push((off + n, (now - start).as_micros() as u64));
                    }
                    if off > 0 {
                        stall = stall.max(now - last);
                    }
                    off += n;
                    last = now;
                }
                Err(e) => {
                    error = Some(format!("after {off} bytes: {e}"));
                    break;
                }
            }
        }
        let intact = error.is_none() && got == bytes(0..size, run);
        done.store(true, Ordering::Relaxed);
        let mut uploaded = None;
        if let Some(u) = uploader {
            match u.join() {
                Ok(Ok(n)) => uploaded = Some(n),
                Ok(Err(e)) => error = error.or(Some(format!("upload: {e}"))),
                Err(_) => error = error.or(Some("upload: the writer panicked".into())),
            }
            if error.is_none() {
                if let Err(e) = s.read_to_end(&mut Vec::new()) {
                    error = Some(format!("end of stream: {e}"));
                }
            }
        } else if error.is_none() {
            let up = s
                .write_all(&bytes(0..UPLOAD_LEN, 2))
                .and_then(|()| s.shutdown(std::net::Shutdown::Write))
                .and_then(|()| s.read_to_end(&mut Vec::new()));
            if let Err(e) = up {
                error = Some(format!("upload: {e}"));
            }
        }
        ok &= intact && error.is_none();
        println!(
            "{}",
            json!({
                "run": run,
                "intact": intact,
                "error": error,
                "gap_us": middle.map(|d| d.as_micros() as u64),
                "uploaded": uploaded,
                "reads": reads,
                "stall_us": stall.as_micros() as u64,
            })
        );
    }
    if ok {
        Ok(())
    } else {
        Err("a download was not intact".into())
    }
}

/// Writes the upload stream at 1 kB a millisecond until `done`, then ends our direction;
/// returns how many bytes went.
fn spawn_uploader(
    mut w: TcpStream,
    done: Arc<AtomicBool>,
) -> thread::JoinHandle<std::io::Result<usize>> {
    thread::spawn(move || {
        let mut sent = 0;
        while !done.load(Ordering::Relaxed) && sent < UPLOAD_MAX {
            w.write_all(&bytes(sent..sent + 1000, 2))?;
            sent += 1000;
            thread::sleep(Duration::from_millis(1));
        }
        w.shutdown(Shutdown::Write)?;
        Ok(sent)
    })
}

/// Where a connection of the `app` role stands; it travels with every handoff as the
/// application data (JSON).
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    run: usize,
    size: usize,
    /// Handoffs planned in all, and done so far.
    hops: usize,
    done: usize,
    /// The next byte to write.
    offset: usize,
    /// The nodes still to hand to.
    route: Vec<String>,
}

impl Plan {
    fn encode(&self) -> Vec<u8> {
        json!({
            "run": self.run, "size": self.size, "hops": self.hops, "done": self.done,
            "offset": self.offset, "route": self.route,
        })
        .to_string()
        .into_bytes()
    }

    fn decode(b: &[u8]) -> Result<Plan, String> {
        let v: Value = serde_json::from_slice(b).map_err(|e| format!("application data: {e}"))?;
        let n = |k: &str| {
            v[k].as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("application data: no \"{k}\""))
        };
        let route = v["route"]
            .as_array()
            .ok_or("application data: no \"route\"")?
            .iter()
            .map(|r| {
                r.as_str()
                    .map(str::to_string)
                    .ok_or("application data: route")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let plan = Plan {
            run: n("run")?,
            size: n("size")?,
            hops: n("hops")?,
            done: n("done")?,
            offset: n("offset")?,
            route,
        };
        if plan.offset > plan.size || plan.done > plan.hops {
            return Err(format!("application data out of range: {plan:?}"));
        }
        Ok(plan)
    }

    /// Where this node's share ends: equal shares between the handoffs, the rest at the
    /// end of the route.
    fn stop(&self) -> usize {
        if self.route.is_empty() {
            self.size
        } else {
            (self.size * (self.done + 1) / (self.hops + 1)).max(self.offset)
        }
    }
}

/// Serves `s` from `plan.offset`: this node's share, then the next handoff, or the end.
fn serve_app(socket: &Path, mut s: TcpStream, mut plan: Plan) -> Result<(), String> {
    // Connected before the share is written: mip6d takes application connections at its
    // own pace, which should not add to the client's pause.
    let mut app = if plan.route.is_empty() {
        None
    } else {
        Some(DsApp::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?)
    };
    loop {
        let stop = plan.stop();
        s.write_all(&bytes(plan.offset..stop, plan.run))
            .map_err(|e| format!("writing: {e}"))?;
        plan.offset = stop;
        if plan.route.is_empty() {
            return finish(s, &plan);
        }
        let to = plan.route.remove(0);
        plan.done += 1;
        let app = app.as_mut().ok_or("no application socket")?;
        let t = Instant::now();
        let r = app
            .hand_off(s, &to, &plan.encode())
            .map_err(|e| format!("handoff to {to}: {e}"))?;
        println!(
            "{}",
            json!({"run": plan.run, "hop": plan.done, "to": to, "id": r.id,
                   "completed": r.completed, "outcome": r.outcome,
                   "took_us": t.elapsed().as_micros() as u64})
        );
        match r.back {
            // Rolled back: the rest is served here.
            Some(back) => {
                s = back;
                plan.route.clear();
            }
            None if r.completed => return Ok(()),
            None => return Err(format!("handoff {} to {to}: {}", r.id, r.outcome)),
        }
    }
}

/// The end of the route: the request and upload must have come along intact.
fn finish(mut s: TcpStream, plan: &Plan) -> Result<(), String> {
    let mut request = vec![0; REQUEST_LEN];
    s.read_exact(&mut request)
        .map_err(|e| format!("request: {e}"))?;
    let mut upload = Vec::new();
    s.read_to_end(&mut upload)
        .map_err(|e| format!("upload: {e}"))?;
    let intact = request == bytes(0..REQUEST_LEN, 1) && upload == bytes(0..upload.len(), 2);
    // Our end: mip6d, which keeps a copy, releases the client's binding after it.
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    println!(
        "{}",
        json!({"run": plan.run, "last": true, "hops": plan.hops, "handoffs_done": plan.done,
               "uploaded": upload.len(), "request_and_upload_intact": intact})
    );
    Ok(())
}

fn report(run: usize, r: Result<(), String>) -> bool {
    if let Err(e) = &r {
        println!("{}", json!({"run": run, "error": e}));
    }
    r.is_ok()
}

fn app(r: Role) -> Result<(), String> {
    let Role::App {
        socket,
        dsa,
        port,
        listen,
        route,
        count,
        size,
        first,
    } = r
    else {
        unreachable!()
    };
    let mut app = DsApp::connect(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    app.register(port).map_err(|e| format!("register: {e}"))?;
    let listener = if listen {
        let l = TcpListener::bind(SocketAddrV6::new(dsa, port, 0, 0))
            .map_err(|e| format!("listen on [{dsa}]:{port}: {e}"))?;
        eprintln!("app: listening on [{dsa}]:{port}");
        Some(l)
    } else {
        None
    };
    // Ready (scripts wait for this line): registered, and listening if asked.
    eprintln!("app: registered for port {port} with {}", socket.display());
    if let Some(listener) = listener {
        let socket = socket.clone();
        thread::spawn(move || {
            for run in first..first + count {
                let r = listener
                    .accept()
                    .map_err(|e| e.to_string())
                    .and_then(|(s, _)| {
                        // The request stays unread: it travels with the connection.
                        let t = Instant::now();
                        while tcp_repair::unread_bytes(s.as_fd()).map_err(|e| e.to_string())?
                            < REQUEST_LEN as u32
                        {
                            if t.elapsed() > Duration::from_secs(5) {
                                return Err("the request never arrived".to_string());
                            }
                            thread::sleep(Duration::from_millis(1));
                        }
                        let plan = Plan {
                            run,
                            size,
                            hops: route.len(),
                            done: 0,
                            offset: 0,
                            route: route.clone(),
                        };
                        serve_app(&socket, s, plan)
                    });
                report(run, r);
            }
        });
    }
    // Connections handed here, each on its own thread: it may block reading the upload.
    loop {
        let h = match app.accept() {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("accept: {e}")),
        };
        let socket = socket.clone();
        thread::spawn(move || {
            let plan = Plan::decode(&h.app);
            let run = plan.as_ref().map_or(usize::MAX, |p| p.run);
            report(run, plan.and_then(|p| serve_app(&socket, h.stream, p)));
        });
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The engine's warnings (a control channel that failed, a binding deletion that
    // could not be sent) go to stderr next to the errors; RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let r = match cli.role {
        r @ Role::Donor { .. } => donor(r),
        r @ Role::Acceptor { .. } => acceptor(r),
        r @ Role::Client { .. } => client(r),
        r @ Role::App { .. } => app(r),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m6-ds-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_travels_and_splits_the_download_in_equal_shares() {
        let mut p = Plan {
            run: 3,
            size: 900,
            hops: 2,
            done: 0,
            offset: 0,
            route: vec!["2".into(), "1".into()],
        };
        assert_eq!(Plan::decode(&p.encode()), Ok(p.clone()));
        assert_eq!(p.stop(), 300);
        p.offset = 300;
        p.done = 1;
        p.route.remove(0);
        assert_eq!(p.stop(), 600);
        p.route.clear();
        assert_eq!(p.stop(), 900);
        assert!(Plan::decode(b"{\"run\":1}").is_err());
        let mut bad = p.clone();
        bad.offset = 901;
        assert!(Plan::decode(&bad.encode()).is_err());
    }
}
