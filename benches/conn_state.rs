//! Encode and decode rate of a connection state (what a donor sends per handoff), drained
//! (about 100 bytes) and with a 64 kB send queue, against a baseline measured in the same
//! run: copying the same bytes, the least work any decoder does. Ratios to the baseline
//! survive noisy machines; absolute numbers are printed too.
//!
//!     cargo bench --bench conn_state

use std::hint::black_box;

use mip6d::ds::conn_state::{ConnState, Limits, RepairWindow, TcpOptions};
use mip6d::ds::phases::{Phase, PhaseTime, Phases};

#[path = "support/mod.rs"]
mod support;
use support::Case;

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

    support::run_table("op", cases);
    println!(
        "(drained state: {} bytes; with the queue: {} bytes)",
        small_bytes.len(),
        big_bytes.len()
    );
}
