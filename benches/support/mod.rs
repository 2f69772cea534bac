//! The micro-benchmark harness the `benches/` share: calibrated rounds, the median of
//! several, and a table whose last column is the ratio to the first case (the baseline
//! measured in the same run, so the ratios survive a noisy machine).
//!
//! Included with `#[path = "support/mod.rs"] mod support;`. `cargo bench` passes
//! `--bench`; under `cargo test --all-targets` every case runs one short round, which shows
//! the benchmark still works without spending the suite's time.
#![allow(dead_code)]

use std::time::{Duration, Instant};

pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Median nanoseconds per call of `f` over several rounds of `iters` calls.
pub fn measure(iters: u32, mut f: impl FnMut()) -> f64 {
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
pub fn calibrate(mut f: impl FnMut()) -> u32 {
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
pub type Case<'a> = Box<dyn FnMut() + 'a>;

/// Measures every case and prints `operation, ns/op, M<unit>/s, x baseline`; the first
/// case is the baseline.
pub fn run_table(unit: &str, cases: Vec<(&str, Case)>) {
    let width = cases.iter().map(|(n, _)| n.len()).max().unwrap_or(9).max(9) + 2;
    println!(
        "{:<width$} {:>10} {:>12} {:>10}",
        "operation",
        "ns/op",
        format!("M{unit}/s"),
        "x baseline"
    );
    let mut baseline = None;
    for (name, mut f) in cases {
        let iters = calibrate(&mut f);
        let ns = measure(iters, &mut f);
        let base = *baseline.get_or_insert(ns);
        println!(
            "{:<width$} {:>10.1} {:>12.3} {:>10.2}",
            name,
            ns,
            1e3 / ns,
            ns / base
        );
    }
}
