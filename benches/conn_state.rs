//! Encode and decode rate of a connection state (what a donor sends per handoff), drained
//! (about 100 bytes) and with a 64 kB send queue, against a baseline measured in the same
//! run: copying the same bytes, the least work any decoder does. Ratios to the baseline
//! survive noisy machines; absolute numbers are printed too.
//!
//!     cargo bench --bench conn_state

use std::hint::black_box;
use std::time::{Duration, Instant};

use mip6d::ds::conn_state::{ConnState, Limits, RepairWindow, TcpOptions};
use mip6d::ds::phases::{Phase, PhaseTime, Phases};

/// `cargo bench` passes --bench; under `cargo test --all-targets` one short round per case
/// shows the benchmark still runs without spending the test suite's time.
fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Median nanoseconds per call of `f` over several rounds of `iters` calls.
fn measure(iters: u32, mut f: impl FnMut()) -> f64 {
    let rounds_wanted = if benching() { 9 } else { 1 };
    let mut rounds: Vec<f64> = (0..rounds_wanted)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    rounds[rounds.len() / 2]
}

/// Enough iterations for a round to last about 50 ms.
fn calibrate(mut f: impl FnMut()) -> u32 {
    if !benching() {
        return 100;
    }
    let mut n = 1u32;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        if t.elapsed() > Duration::from_millis(50) || n >= 1 << 28 {
            return n;
        }
        n *= 2;
    }
}

/// One measured operation: a name and the closure that performs it once.
type Case<'a> = Box<dyn FnMut() + 'a>;

fn drained() -> ConnState {
    let mut phases = Phases::default();
    phases.set(Phase::SocketExtraction, PhaseTime::Took(780));
    ConnState {
        local: "[fd00:5e::1]:8000".parse().unwrap(),
        peer: "[fd00:c::1]:41234".parse().unwrap(),
        write_seq: 0x9a3c_0001,
        rcv_nxt: 0x1200_0310,
        unsent: 0,
        mss_clamp: 1428,
        options: TcpOptions {
            sack: true,
            timestamps: true,
            wscale: Some((7, 7)),
        },
        timestamp: 0x0abc_def1,
        window: RepairWindow {
            snd_wl1: 0x1200_0310,
            snd_wnd: 64768,
            max_window: 65536,
            rcv_wnd: 65483,
            rcv_wup: 0x1200_0310,
        },
        sndbuf: 87040,
        rcvbuf: 131072,
        bu_sequence: Some(7),
        home_keygen: None,
        phases,
        send_queue: vec![],
        recv_queue: vec![],
    }
}

fn main() {
    let small = drained();
    let mut big = drained();
    big.send_queue = vec![0x5a; 64 * 1024];
    big.unsent = 16 * 1024;
    let small_bytes = small.encode();
    let big_bytes = big.encode();
    let limits = Limits::default();

    let cases: Vec<(&str, Case)> = vec![
        (
            "baseline: copy drained bytes",
            Box::new(|| {
                black_box(black_box(&small_bytes).to_vec());
            }),
        ),
        (
            "encode drained",
            Box::new(|| {
                black_box(black_box(&small).encode());
            }),
        ),
        (
            "decode drained",
            Box::new(|| {
                black_box(ConnState::decode(black_box(&small_bytes), &limits).ok());
            }),
        ),
        (
            "copy 64 kB-queue bytes",
            Box::new(|| {
                black_box(black_box(&big_bytes).to_vec());
            }),
        ),
        (
            "encode 64 kB queue",
            Box::new(|| {
                black_box(black_box(&big).encode());
            }),
        ),
        (
            "decode 64 kB queue",
            Box::new(|| {
                black_box(ConnState::decode(black_box(&big_bytes), &limits).ok());
            }),
        ),
    ];

    println!(
        "{:<30} {:>10} {:>12} {:>10}",
        "operation", "ns/op", "Mop/s", "x baseline"
    );
    let mut baseline = None;
    for (name, mut f) in cases {
        let iters = calibrate(&mut f);
        let ns = measure(iters, &mut f);
        let base = *baseline.get_or_insert(ns);
        println!(
            "{:<30} {:>10.1} {:>12.3} {:>10.2}",
            name,
            ns,
            1e3 / ns,
            ns / base
        );
    }
    println!(
        "(drained state: {} bytes; with the queue: {} bytes)",
        small_bytes.len(),
        big_bytes.len()
    );
}
