//! Parse and emit rate of a Binding Update with options (the message a home agent and a
//! correspondent handle most), against a baseline measured in the same run: verifying the
//! Internet checksum of the same bytes, the least work any receiver does per message.
//! Ratios to the baseline survive noisy machines; absolute numbers are printed too.
//!
//!     cargo bench --bench wire

use std::hint::black_box;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6d::wire::checksum;
use mip6d::wire::mh::{BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use mip6d::wire::packet;
use mip6d::wire::proto;

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

fn main() {
    let src: Ipv6Addr = "2001:db8:1::1234".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
    let bu = MhRepr {
        message: Message::BindingUpdate {
            sequence: 0x1234,
            flags: BuFlags {
                a: true,
                ..BuFlags::default()
            },
            lifetime_units: 105,
        },
        options: vec![
            MobilityOption::AlternateCareOf("2001:db8:2::abcd".parse().unwrap()),
            MobilityOption::NonceIndices {
                home: 1,
                care_of: 2,
            },
            MobilityOption::BindingAuthData([0xf3; 12]),
        ],
    };
    let bytes = bu.to_bytes(&src, &dst);
    let mut buf = vec![0u8; bu.buffer_len()];

    let mut full = vec![0u8; 40];
    packet::Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: bytes.len() as u16,
        next_header: proto::MOBILITY,
        hop_limit: 64,
        src,
        dst,
    }
    .emit(&mut full);
    full.extend_from_slice(&bytes);

    let cases: Vec<(&str, Case)> = vec![
        (
            "baseline: checksum verify",
            Box::new(|| {
                black_box(checksum::verify(
                    black_box(&src),
                    &dst,
                    proto::MOBILITY,
                    black_box(&bytes),
                ));
            }),
        ),
        (
            "BU parse (structure)",
            Box::new(|| {
                black_box(MhRepr::parse(black_box(&bytes)).ok());
            }),
        ),
        (
            "BU parse + checksum",
            Box::new(|| {
                black_box(MhRepr::parse_checked(black_box(&bytes), &src, &dst).ok());
            }),
        ),
        (
            "BU emit + checksum",
            Box::new(|| {
                black_box(&bu).emit(black_box(&mut buf), &src, &dst);
            }),
        ),
        (
            "whole packet walk",
            Box::new(|| {
                black_box(packet::parse(black_box(&full)).ok());
            }),
        ),
    ];

    println!(
        "{:<28} {:>10} {:>12} {:>10}",
        "operation", "ns/op", "Mmsg/s", "x baseline"
    );
    let mut baseline = None;
    for (name, mut f) in cases {
        let iters = calibrate(&mut f);
        let ns = measure(iters, &mut f);
        let base = *baseline.get_or_insert(ns);
        println!(
            "{:<28} {:>10.1} {:>12.2} {:>10.2}",
            name,
            ns,
            1e3 / ns,
            ns / base
        );
    }
    println!(
        "(BU: {} bytes with Alternate CoA, Nonce Indices, BAD)",
        bytes.len()
    );
}
