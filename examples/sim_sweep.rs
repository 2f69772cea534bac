//! Runs the Mobile IPv6 network simulation of `tests/sim` over many seeds:
//! `cargo run --release --example sim_sweep -- 10000 [first-seed] [--quick]`.
//! Prints the count and every failing seed (replay one with
//! `SIM_SEED=n SIM_FULL=1 cargo test --test sim_mip6 replay`).

#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::{run_seed, Params, Profile};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let count = nums.first().copied().unwrap_or(10_000);
    let first = nums.get(1).copied().unwrap_or(0);
    let profile = if quick { Profile::Quick } else { Profile::Full };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = Arc::new(AtomicU64::new(first));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let totals = Arc::new(Mutex::new((0u64, 0u64, 0u64, 0u64)));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (next, failures, totals) = (next.clone(), failures.clone(), totals.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    break;
                }
                let r = run_seed(Params::new(seed, profile));
                {
                    let mut t = totals.lock().unwrap();
                    t.0 += r.stats.packets;
                    t.1 += r.stats.quiet_checks;
                    t.2 += r.stats.heal_checks;
                    t.3 += r.stats.virtual_secs;
                }
                if !r.violations.is_empty() {
                    eprintln!("seed {seed} FAILED:");
                    for v in &r.violations {
                        eprintln!("  {v}");
                    }
                    failures.lock().unwrap().push(seed);
                }
            })
        })
        .collect();
    // Panics inside a run are caught by run_seed; a thread can only die on a bug here.
    let mut dead = 0;
    for h in handles {
        if h.join().is_err() {
            dead += 1;
        }
    }
    let mut failed = failures.lock().unwrap().clone();
    failed.sort_unstable();
    let t = *totals.lock().unwrap();
    println!(
        "{count} seeds ({profile:?}, from {first}) in {:.1?}: {} packets, {} simulated hours, {} agreement checks, {} back-off bound checks",
        t0.elapsed(),
        t.0,
        t.3 / 3600,
        t.1,
        t.2
    );
    println!("{} failing seeds: {failed:?}", failed.len());
    if !failed.is_empty() || dead > 0 {
        std::process::exit(1);
    }
}
