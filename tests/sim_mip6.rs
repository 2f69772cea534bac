//! Mobile node, home agents and correspondents together in a deterministic simulated
//! network (see `tests/sim/mod.rs`), over many seeds.
//!
//! `SIM_SEED=n cargo test --test sim_mip6 replay` reruns one seed (add `SIM_TRACE=1`
//! for a trace); `SIM_SEEDS=n` changes how many seeds the sweep runs.

mod sim;

use sim::{run_seed, Params, Plant, Profile};
use std::time::Instant;

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn sweep(range: std::ops::Range<u64>) {
    let t0 = Instant::now();
    let mut failures = vec![];
    let mut quiet = 0;
    let mut heal = 0;
    let mut packets = 0;
    for seed in range.clone() {
        let r = run_seed(Params::new(seed, Profile::Quick));
        quiet += r.stats.quiet_checks;
        heal += r.stats.heal_checks;
        packets += r.stats.packets;
        if !r.violations.is_empty() {
            failures.push((seed, r.violations));
        }
    }
    eprintln!(
        "{} seeds in {:?}: {packets} packets, {quiet} agreement checks, {heal} back-off bound checks, {} failing",
        range.end - range.start,
        t0.elapsed(),
        failures.len()
    );
    for (seed, v) in failures.iter().take(5) {
        eprintln!(
            "seed {seed} failed (replay: SIM_SEED={seed} cargo test --test sim_mip6 replay):"
        );
        for line in v {
            eprintln!("  {line}");
        }
    }
    assert!(failures.is_empty(), "{} seeds failed", failures.len());
}

// Two halves, so the two test threads share the work.
#[test]
fn seeds_first_half() {
    let n = seeds();
    sweep(0..n / 2);
}

#[test]
fn seeds_second_half() {
    let n = seeds();
    sweep(n / 2..n);
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let profile = if std::env::var_os("SIM_FULL").is_some() {
        Profile::Full
    } else {
        Profile::Quick
    };
    let r = run_seed(Params::new(seed, profile));
    eprintln!("seed {seed}: {:?}", r.stats);
    assert!(r.violations.is_empty(), "seed {seed}: {:#?}", r.violations);
}

#[test]
fn a_seed_replays_identically() {
    for seed in [3, 17, 99] {
        let a = run_seed(Params::new(seed, Profile::Quick));
        let b = run_seed(Params::new(seed, Profile::Quick));
        assert_eq!(
            format!("{:?}", a.stats),
            format!("{:?}", b.stats),
            "seed {seed}"
        );
    }
}

fn planted(plant: Plant, what: &str) {
    let mut caught = 0;
    for seed in 0..10 {
        let mut p = Params::new(seed, Profile::Quick);
        p.plant = plant;
        let r = run_seed(p);
        if r.violations.iter().any(|v| v.contains(what)) {
            caught += 1;
        }
    }
    assert!(caught > 0, "the checker never noticed {plant:?}");
}

#[test]
fn checker_catches_a_home_agent_accepting_an_old_sequence_number() {
    planted(Plant::SeqRecordAhead, "not newer than the last accepted");
}

#[test]
fn checker_catches_expired_nonce_acceptance() {
    planted(Plant::StaleNonceRecord, "expired");
}

#[test]
fn checker_catches_binding_cache_disagreement() {
    planted(Plant::SilentHaAmnesia, "HA0 has None");
}
