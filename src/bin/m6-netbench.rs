//! m6-netbench: the measuring tool of `testbed/run bench-datapath`.
//!
//! One binary for every number the benchmark prints, so each path is measured the same
//! way: UDP echo round trips (one datagram in flight, so each sample is one round trip
//! and nothing queues behind it), TCP bulk throughput (one connection, as fast as the
//! path takes it), and a home agent's Binding Update → Binding Acknowledgement rate with
//! many mobile nodes. Every client prints one JSON object on stdout.
//!
//! ```text
//! m6-netbench udp-echo-server --bind ADDR[,ADDR...] --port P [--idle-secs S]
//! m6-netbench udp-echo-client --to ADDR --port P --count N --size BYTES
//! m6-netbench tcp-sink --port P [--idle-secs S]
//! m6-netbench tcp-source --to ADDR --port P --seconds S
//! m6-netbench bu-flood --ha ADDR --home-prefix P --coa-prefix P --mns N --refreshes R
//! ```
//!
//! Servers stop by themselves after `--idle-secs` without traffic, so a benchmark that
//! dies halfway leaves nothing running.

use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use mip6d::sys::raw::{RawSocket, IPPROTO_RAW};
use mip6d::wire::mh::{BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use mip6d::wire::packet::{PacketBuilder, Payload};

#[derive(Parser)]
#[command(
    name = "m6-netbench",
    version,
    about = "Latency, throughput and BU-rate measurements for testbed/run bench-datapath"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo UDP datagrams back to their sender, one socket (and thread) per address so
    /// every reply leaves from the address the request came to.
    UdpEchoServer {
        #[arg(long, value_delimiter = ',', required = true)]
        bind: Vec<Ipv6Addr>,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 120)]
        idle_secs: u64,
    },
    /// Send COUNT datagrams of SIZE bytes one at a time, each after the previous reply;
    /// print the round-trip percentiles in µs as JSON.
    UdpEchoClient {
        #[arg(long)]
        to: Ipv6Addr,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 5000)]
        count: usize,
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Round trips sent first and not counted (caches, neighbour entries, bindings).
        #[arg(long, default_value_t = 50)]
        warmup: usize,
    },
    /// Accept TCP connections on [::]:PORT and read each to its end.
    TcpSink {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 120)]
        idle_secs: u64,
    },
    /// Write to [TO]:PORT as fast as possible for SECONDS; print the goodput as JSON.
    TcpSource {
        #[arg(long)]
        to: Ipv6Addr,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Register MNS mobile nodes with a home agent (home address HOME_PREFIX + 0x10000 + i,
    /// care-of address COA_PREFIX + 0x10000 + i), then refresh them REFRESHES times, then
    /// deregister them; print BAs per second for each phase as JSON. The care-of prefix
    /// must be local here (`ip -6 route add local PREFIX dev lo`): the BAs arrive with a
    /// Type 2 Routing Header and are read from a raw socket for that header.
    BuFlood {
        #[arg(long)]
        ha: Ipv6Addr,
        #[arg(long)]
        home_prefix: Ipv6Addr,
        #[arg(long)]
        coa_prefix: Ipv6Addr,
        #[arg(long, default_value_t = 1000)]
        mns: u32,
        #[arg(long, default_value_t = 3)]
        refreshes: u32,
        /// Binding Updates in flight at most.
        #[arg(long, default_value_t = 64)]
        window: u64,
        /// The home agent's pid, to report its CPU time per Binding Update.
        #[arg(long)]
        pid: Option<u32>,
    },
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::UdpEchoServer {
            bind,
            port,
            idle_secs,
        } => udp_echo_server(&bind, port, Duration::from_secs(idle_secs)),
        Cmd::UdpEchoClient {
            to,
            port,
            count,
            size,
            warmup,
        } => udp_echo_client(to, port, count, size, warmup),
        Cmd::TcpSink { port, idle_secs } => tcp_sink(port, Duration::from_secs(idle_secs)),
        Cmd::TcpSource { to, port, seconds } => tcp_source(to, port, seconds),
        Cmd::BuFlood {
            ha,
            home_prefix,
            coa_prefix,
            mns,
            refreshes,
            window,
            pid,
        } => bu_flood(&Flood {
            ha,
            home_prefix,
            coa_prefix,
            mns,
            refreshes,
            window,
            pid,
        }),
    };
    match r {
        Ok(Some(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m6-netbench: {e}");
            ExitCode::FAILURE
        }
    }
}

// --- statistics ---------------------------------------------------------------------------------

/// Round-trip summary in microseconds. Percentiles are nearest-rank (the smallest
/// sample with at least p % of the samples at or below it), so every number printed is a
/// sample that was really measured.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    samples: usize,
    min: f64,
    median: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summarise(mut us: Vec<f64>) -> Option<Summary> {
    if us.is_empty() {
        return None;
    }
    us.sort_by(f64::total_cmp);
    Some(Summary {
        samples: us.len(),
        min: us[0],
        median: percentile(&us, 50.0),
        p99: percentile(&us, 99.0),
        max: us[us.len() - 1],
        mean: us.iter().sum::<f64>() / us.len() as f64,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn summary_json(s: &Summary, lost: usize) -> Value {
    json!({
        "samples": s.samples,
        "lost": lost,
        "min_us": round1(s.min),
        "median_us": round1(s.median),
        "p99_us": round1(s.p99),
        "max_us": round1(s.max),
        "mean_us": round1(s.mean),
    })
}

// --- UDP echo -----------------------------------------------------------------------------------

fn udp_echo_server(binds: &[Ipv6Addr], port: u16, idle: Duration) -> io::Result<Option<Value>> {
    let mut threads = Vec::new();
    for &a in binds {
        let sock = UdpSocket::bind(SocketAddr::from((a, port)))?;
        sock.set_read_timeout(Some(idle))?;
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            // Ends when nothing arrives for `idle` (or on any other error).
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(None)
}

fn udp_echo_client(
    to: Ipv6Addr,
    port: u16,
    count: usize,
    size: usize,
    warmup: usize,
) -> io::Result<Option<Value>> {
    let sock = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
    sock.connect(SocketAddr::from((to, port)))?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut msg = vec![0x5au8; size.max(8)];
    let mut buf = vec![0u8; msg.len() + 64];
    let mut samples = Vec::with_capacity(count);
    let mut lost = 0;
    for i in 0..(warmup + count) as u64 {
        msg[..8].copy_from_slice(&i.to_be_bytes());
        let t0 = Instant::now();
        sock.send(&msg)?;
        // Wait for this datagram's echo; a late echo of an earlier (lost) one is skipped.
        let got = loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 && buf[..8] == msg[..8] => break true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break false
                }
                Err(e) => return Err(e),
            }
        };
        let rtt = t0.elapsed();
        if i < warmup as u64 {
            continue;
        }
        if got {
            samples.push(rtt.as_secs_f64() * 1e6);
        } else {
            lost += 1;
        }
    }
    let s = summarise(samples).ok_or_else(|| io::Error::other("no echo came back"))?;
    Ok(Some(summary_json(&s, lost)))
}

// --- TCP throughput -----------------------------------------------------------------------------

const TCP_CHUNK: usize = 128 * 1024;

fn tcp_sink(port: u16, idle: Duration) -> io::Result<Option<Value>> {
    let l = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
    l.set_nonblocking(true)?;
    let mut last = Instant::now();
    let mut buf = vec![0u8; TCP_CHUNK];
    while last.elapsed() < idle {
        match l.accept() {
            Ok((mut c, _)) => {
                c.set_nonblocking(false)?;
                c.set_read_timeout(Some(idle))?;
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                last = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn tcp_source(to: Ipv6Addr, port: u16, seconds: f64) -> io::Result<Option<Value>> {
    let mut c = TcpStream::connect_timeout(&SocketAddr::from((to, port)), Duration::from_secs(5))?;
    c.set_write_timeout(Some(Duration::from_secs(5)))?;
    let chunk = vec![0xa5u8; TCP_CHUNK];
    let start = Instant::now();
    let until = Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    while start.elapsed() < until {
        c.write_all(&chunk)?;
        sent += chunk.len() as u64;
    }
    // The goodput counts what the receiver has: wait until it has read everything and
    // closed its end.
    c.shutdown(std::net::Shutdown::Write)?;
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    let _ = c.read(&mut [0u8; 1]);
    let secs = start.elapsed().as_secs_f64();
    Ok(Some(json!({
        "bytes": sent,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "mbit_per_s": round1(sent as f64 * 8.0 / secs / 1e6),
    })))
}

// --- Binding Update flood -----------------------------------------------------------------------

struct Flood {
    ha: Ipv6Addr,
    home_prefix: Ipv6Addr,
    coa_prefix: Ipv6Addr,
    mns: u32,
    refreshes: u32,
    window: u64,
    pid: Option<u32>,
}

/// `prefix` with `i` (offset past the low addresses the testbed uses) in its last 32 bits.
fn nth_address(prefix: Ipv6Addr, i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(prefix) | u128::from(0x1_0000 + i))
}

/// `utime + stime` of `pid` in seconds (fields 14 and 15 of /proc/PID/stat, after the
/// parenthesised command name, which may itself contain spaces).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// From what a raw socket for the Routing Header receives (the Type 2 Routing Header on,
/// RFC 3542 §3: no IPv6 header): the Binding Acknowledgement's status and sequence.
fn parse_ba(data: &[u8]) -> Option<(u8, u16)> {
    // RH2: next header, length 2 (24 bytes), type 2.
    if data.len() < 24 || data[1] != 2 || data[2] != 2 || data[0] != 135 {
        return None;
    }
    let repr = MhRepr::parse(&data[24..]).ok()?;
    match repr.message {
        Message::BindingAck {
            status, sequence, ..
        } => Some((status, sequence)),
        _ => None,
    }
}

fn binding_update(f: &Flood, i: u32, sequence: u16, lifetime_units: u16) -> Vec<u8> {
    let (hoa, coa) = (nth_address(f.home_prefix, i), nth_address(f.coa_prefix, i));
    let repr = MhRepr {
        message: Message::BindingUpdate {
            sequence,
            flags: BuFlags {
                a: true,
                h: true,
                ..BuFlags::default()
            },
            lifetime_units,
        },
        options: vec![MobilityOption::AlternateCareOf(coa)],
    };
    let mut b = PacketBuilder::new(coa, f.ha);
    b.home_address_option = Some(hoa);
    b.build(Payload::Mobility(&repr))
}

/// One phase: every MN sends one BU with `sequence`; BAs are counted until all came back
/// or none came for two seconds.
fn flood_phase(f: &Flood, name: &str, sequence: u16, lifetime_units: u16) -> io::Result<Value> {
    let tx = RawSocket::new(IPPROTO_RAW)?;
    let rx = RawSocket::new(IPPROTO_ROUTING)?;
    rx.set_read_timeout(Some(Duration::from_millis(100)))?;
    let packets: Vec<Vec<u8>> = (0..f.mns)
        .map(|i| binding_update(f, i, sequence, lifetime_units))
        .collect();
    let received = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let cpu0 = f.pid.and_then(cpu_seconds);
    let start = Instant::now();
    let reader = {
        let (received, accepted) = (received.clone(), accepted.clone());
        let total = u64::from(f.mns);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            let mut last = Instant::now();
            let mut last_ba = start;
            while received.load(Ordering::Relaxed) < total
                && last.elapsed() < Duration::from_secs(2)
            {
                // A timeout (Err) falls through: the loop condition decides.
                let Ok((n, _)) = rx.recv_from(&mut buf) else {
                    continue;
                };
                let Some((status, seq)) = parse_ba(&buf[..n]) else {
                    continue;
                };
                if seq == sequence {
                    received.fetch_add(1, Ordering::Relaxed);
                    if status < 128 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    last = Instant::now();
                    last_ba = last;
                }
            }
            last_ba
        })
    };
    for (i, p) in packets.iter().enumerate() {
        while (i as u64).saturating_sub(received.load(Ordering::Relaxed)) >= f.window {
            if reader.is_finished() {
                break;
            }
            std::hint::spin_loop();
        }
        tx.send_to(p, f.ha)?;
    }
    let last_ba = reader
        .join()
        .map_err(|_| io::Error::other("reader thread panicked"))?;
    let secs = last_ba.duration_since(start).as_secs_f64().max(1e-9);
    let cpu = match (cpu0, f.pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let got = received.load(Ordering::Relaxed);
    let ok = accepted.load(Ordering::Relaxed);
    Ok(json!({
        "phase": name,
        "sent": f.mns,
        "acks": got,
        "accepted": ok,
        "seconds": (secs * 1e4).round() / 1e4,
        "acks_per_s": (got as f64 / secs).round(),
        "daemon_cpu_s": cpu,
        "daemon_cpu_us_per_bu": cpu.map(|c| round1(c * 1e6 / f64::from(f.mns))),
    }))
}

/// `IPPROTO_ROUTING`: a raw socket for it sees packets with a Routing Header as the
/// kernel reaches that header, before it rejects a Type 2 one it does not support.
const IPPROTO_ROUTING: i32 = 43;

fn bu_flood(f: &Flood) -> io::Result<Option<Value>> {
    // Lifetime in 4-second units: long enough that nothing expires during the run.
    let mut phases = vec![flood_phase(f, "first registration", 1, 150)?];
    for r in 0..f.refreshes {
        phases.push(flood_phase(f, "refresh", 2 + r as u16, 150)?);
    }
    phases.push(flood_phase(f, "deregistration", 2 + f.refreshes as u16, 0)?);
    Ok(Some(
        json!({ "mns": f.mns, "window": f.window, "phases": phases }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarise(v).unwrap();
        assert_eq!((s.min, s.median, s.p99, s.max), (1.0, 50.0, 99.0, 100.0));
        assert_eq!(s.mean, 50.5);
        // Order of the input does not matter, and p99 of few samples is the largest.
        let s = summarise(vec![30.0, 10.0, 20.0]).unwrap();
        assert_eq!((s.median, s.p99), (20.0, 30.0));
        assert_eq!(summarise(vec![]), None);
        assert_eq!(percentile(&[7.0], 0.0), 7.0);
    }

    #[test]
    fn summary_json_has_the_fields_the_testbed_reads() {
        let s = summarise(vec![10.04, 20.06, 30.0]).unwrap();
        let v = summary_json(&s, 2);
        assert_eq!(v["median_us"], 20.1);
        assert_eq!(v["p99_us"], 30.0);
        assert_eq!(v["lost"], 2);
        assert_eq!(v["samples"], 3);
        let back: Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn cpu_time_from_proc_stat() {
        let pid = std::process::id();
        let c = cpu_seconds(pid).expect("our own /proc/PID/stat");
        assert!(c >= 0.0);
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn binding_update_is_a_home_registration_with_a_hao_and_the_ba_parser_reads_its_answer() {
        let f = Flood {
            ha: "2001:db8:1::1".parse().unwrap(),
            home_prefix: "2001:db8:1::".parse().unwrap(),
            coa_prefix: "2001:db8:f0::".parse().unwrap(),
            mns: 1,
            refreshes: 0,
            window: 1,
            pid: None,
        };
        let bu = binding_update(&f, 5, 9, 150);
        let p = mip6d::wire::packet::parse(&bu).unwrap();
        assert_eq!(p.ip.src, "2001:db8:f0::1:5".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            p.final_src(),
            "2001:db8:1::1:5".parse::<Ipv6Addr>().unwrap()
        );
        assert!(matches!(
            p.mobility().map(|r| &r.message),
            Some(Message::BindingUpdate { sequence: 9, flags, .. }) if flags.h && flags.a
        ));
        // A BA from the HA to the CoA with RH2, as the raw socket hands it over.
        let ba = MhRepr {
            message: Message::BindingAck {
                status: 0,
                flags: Default::default(),
                sequence: 9,
                lifetime_units: 150,
            },
            options: vec![],
        };
        let mut b = PacketBuilder::new(f.ha, "2001:db8:f0::1:5".parse().unwrap());
        b.type2_routing = Some("2001:db8:1::1:5".parse().unwrap());
        let pkt = b.build(Payload::Mobility(&ba));
        assert_eq!(parse_ba(&pkt[40..]), Some((0, 9)));
        assert_eq!(parse_ba(&pkt[..]), None);
        assert_eq!(parse_ba(&pkt[40..50]), None);
    }
}
