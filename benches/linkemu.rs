//! Frames per second through the link emulator's scheduling core (`mip6d::linkemu::Link`),
//! one enqueue and one release per frame, against a baseline measured in the same run:
//! copying the 1514-byte frame, which the emulator's I/O shell does once per frame anyway.
//! The core should cost a fraction of the copy; the TAP system calls cost far more than
//! both (see testbed/README.md for the emulator's measured ceiling).
//!
//!     cargo bench --bench linkemu

use std::hint::black_box;
use std::time::Instant;

use mip6d::linkemu::{Link, Params};

fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Median nanoseconds per frame over several rounds of `frames` frames.
fn measure(frames: u32, mut round: impl FnMut(u32)) -> f64 {
    let rounds_wanted = if benching() { 9 } else { 1 };
    let mut rounds: Vec<f64> = (0..rounds_wanted)
        .map(|_| {
            let t = Instant::now();
            round(frames);
            t.elapsed().as_nanos() as f64 / f64::from(frames)
        })
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    rounds[rounds.len() / 2]
}

fn params(words: &str) -> Params {
    let mut p = Params::default();
    p.apply(words.split_whitespace()).expect("bench parameters");
    p
}

/// Steady state: one frame arrives every `gap_ns` and every frame due by then leaves.
/// Frames are recycled, so the numbers are the model's, not the allocator's.
fn steady(words: &str, gap_ns: u64) -> impl FnMut(u32) {
    let mut link: Link<Vec<u8>> = Link::new(params(words), 1);
    let mut pool: Vec<Vec<u8>> = (0..4096).map(|_| vec![0u8; 1514]).collect();
    let mut now = 0u64;
    move |frames| {
        for _ in 0..frames {
            now += gap_ns;
            let f = pool.pop().unwrap_or_else(|| vec![0u8; 1514]);
            black_box(link.enqueue(f, now));
            while let Some(f) = link.poll_release(now) {
                pool.push(black_box(f));
            }
            black_box(link.poll_timeout());
        }
    }
}

fn main() {
    let frames = if benching() { 2_000_000 } else { 2_000 };
    let frame = vec![0x5au8; 1514];
    let copy = measure(frames, |n| {
        for _ in 0..n {
            black_box(black_box(&frame).to_vec());
        }
    });
    println!("linkemu: baseline copy of a 1514-byte frame: {copy:.1} ns");
    // 1 µs apart: 12 Gbit/s of full frames, far above what the TAP shell can carry.
    let cases: [(&str, &str, u64); 4] = [
        ("transparent", "", 1_000),
        ("delay 25ms (25 000 frames in flight)", "delay=25ms", 1_000),
        (
            "delay 25ms jitter 5ms loss 1%",
            "delay=25ms jitter=5ms loss=1%",
            1_000,
        ),
        (
            "rate 10 gbit + delay 1ms + loss 1%",
            "rate=10gbit delay=1ms loss=1%",
            1_000,
        ),
    ];
    for (name, words, gap) in cases {
        let ns = measure(frames, steady(words, gap));
        println!(
            "linkemu: {name:<40} {ns:7.1} ns/frame  {:6.2} Mframes/s  {:5.2}x copy",
            1e3 / ns,
            ns / copy
        );
    }
}
