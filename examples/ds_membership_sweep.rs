//! Runs the membership simulation of `tests/ds_sim` over many seeds:
//! `cargo run --release --example ds_membership_sweep -- 10000 [first-seed]`.
//! Each seed runs twice: the long chaos profile (crashes, restarts, partitions, loss,
//! duplication, an attacker, then healing) and the failover profile (a quiet LAN where the
//! acting contact is killed once). Prints the count, every failing seed (replay one with
//! `SIM_SEED=n SIM_FULL=1 cargo test --test ds_membership_sim -- --exact replay`, or
//! `SIM_FAILOVER=1`),
//! and the distribution of failover times in simulated time.

#[path = "../tests/ds_sim/mod.rs"]
mod ds_sim;

use ds_sim::{heal_bound, run_seed, Params, Profile, FAILURE_TIMEOUT, HEARTBEAT};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Totals {
    frames: u64,
    commits: u64,
    crashes: u64,
    partitions: u64,
    attacks_rejected: u64,
    attacks: u64,
    virtual_ms: u64,
    overlap: Duration,
    overlapping_runs: u64,
    failover: Vec<Duration>,
    heal: Vec<Duration>,
}

fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() {
    let nums: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let count = nums.first().copied().unwrap_or(10_000);
    let first = nums.get(1).copied().unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = Arc::new(AtomicU64::new(first));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (next, failures, totals) = (next.clone(), failures.clone(), totals.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    break;
                }
                for profile in [Profile::Full, Profile::Failover] {
                    let r = run_seed(Params::new(seed, profile));
                    {
                        let mut t = totals.lock().unwrap();
                        t.frames += r.stats.frames;
                        t.commits += r.stats.commits;
                        t.crashes += r.stats.crashes;
                        t.partitions += r.stats.partitions;
                        t.attacks += r.stats.attacks;
                        t.attacks_rejected += r.stats.attacks_rejected;
                        t.virtual_ms += r.stats.virtual_ms;
                        if profile == Profile::Full {
                            t.overlap += r.stats.overlap;
                            t.overlapping_runs += u64::from(!r.stats.overlap.is_zero());
                        }
                        t.failover.extend(r.stats.failover);
                        t.heal.extend(r.stats.heal_to_contact);
                    }
                    if !r.violations.is_empty() {
                        eprintln!("seed {seed} ({profile:?}) FAILED:");
                        for v in &r.violations {
                            eprintln!("  {v}");
                        }
                        failures.lock().unwrap().push((seed, profile));
                    }
                }
            })
        })
        .collect();
    let mut dead = 0;
    for h in handles {
        if h.join().is_err() {
            dead += 1;
        }
    }
    let mut failed = failures.lock().unwrap().clone();
    failed.sort_unstable_by_key(|(s, _)| *s);
    let mut t = totals.lock().unwrap();
    t.failover.sort_unstable();
    t.heal.sort_unstable();
    println!(
        "{count} seeds (from {first}), chaos + failover profiles, in {:.1?}: {} frames, {} commits, {} crashes, {} partitions, {}/{} attacker frames rejected, {} simulated minutes",
        t0.elapsed(),
        t.frames,
        t.commits,
        t.crashes,
        t.partitions,
        t.attacks_rejected,
        t.attacks,
        t.virtual_ms / 60_000
    );
    println!(
        "failover (heartbeat {HEARTBEAT:?}, failure timeout {FAILURE_TIMEOUT:?}; contact killed → new contact acting and registering the DSA), {} runs: min {:.1?}, median {:.1?}, p99 {:.1?}, max {:.1?}",
        t.failover.len(),
        pct(&t.failover, 0.0),
        pct(&t.failover, 0.5),
        pct(&t.failover, 0.99),
        pct(&t.failover, 1.0)
    );
    println!(
        "healing → the newest view's contact acting, {} runs: median {:.1?}, p99 {:.1?}, max {:.1?} (bound {:?})",
        t.heal.len(),
        pct(&t.heal, 0.5),
        pct(&t.heal, 0.99),
        pct(&t.heal, 1.0),
        heal_bound()
    );
    println!(
        "two contacts acting at once (different epochs: a deposed one not yet told): {} of {count} chaos runs, {:.1?} in total",
        t.overlapping_runs, t.overlap
    );
    println!("{} failing seeds: {failed:?}", failed.len());
    if !failed.is_empty() || dead > 0 {
        std::process::exit(1);
    }
}
