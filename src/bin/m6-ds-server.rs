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
//! ```
//!
//! - The donor runs on the contact node (its mip6d holds the DSA's home registration):
//!   for each client it waits for the request (777 bytes, left unread: it travels with
//!   the connection), writes the first half, and hands off with `mip6d::dsnode::donor`.
//! - The acceptor (the DSA on its `lo`) takes each handoff with
//!   `mip6d::dsnode::acceptor`, writes the second half, reads the request and the
//!   client's upload, and closes (which releases the client's binding).
//! - The client downloads, checks the bytes, uploads, and reports the pause it saw
//!   around the middle (last byte of the first half → first byte after it) and the
//!   longest pause between two reads.
//!
//! Byte `i` of a download is a fixed function of `i` and the run number, so every
//! party can check what it got. Root (raw sockets, netfilter queues, TCP_REPAIR).

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use mip6d::config::model::HandoffDrain;
use mip6d::crypto::auth::SharedKey;
use mip6d::ds::handoff::Timeouts;
use mip6d::ds::phases::Spans;
use mip6d::dsnode::acceptor::{accept_one, Accepted, AcceptorConfig, Sequences};
use mip6d::dsnode::donor::{hand_off, prepare, Contact, DonorConfig};
use mip6d::sys::netlock::NetLock;
use mip6d::sys::tcp_repair;
use serde_json::json;

const REQUEST_LEN: usize = 777;
const UPLOAD_LEN: usize = 100_000;

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
                return Err(format!("rolled back: {:?}", r.outcome));
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
    // daemon would), not still tearing the last data path down — which is also why each
    // takes its own pair of netfilter queues.
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
            queue: queue + 2 * (run % 16) as u16,
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
        let mut got = vec![0; size];
        let start = Instant::now();
        let (mut off, mut last) = (0, start);
        // (end offset, µs since the request) of every read up to the one that crosses
        // the middle: the pause the client saw lies at the byte where the donor stopped
        // transmitting, which only the donor knows (`unsent` in its report).
        let mut reads: Vec<(usize, u64)> = Vec::new();
        let (mut longest, mut middle) = (Duration::ZERO, None);
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
                    longest = longest.max(now - last);
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
        if error.is_none() {
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
                "longest_pause_us": longest.as_micros() as u64,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.role {
        r @ Role::Donor { .. } => donor(r),
        r @ Role::Acceptor { .. } => acceptor(r),
        r @ Role::Client { .. } => client(r),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m6-ds-server: {e}");
            ExitCode::FAILURE
        }
    }
}
