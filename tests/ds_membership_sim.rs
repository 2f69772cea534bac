//! The Distributed Servers membership protocol under a deterministic simulation of
//! crashes, restarts, partitions, loss, delay, duplication and an attacker (see
//! `tests/ds_sim/mod.rs` for the model and the invariants), over many seeds.
//!
//! `SIM_SEED=n cargo test --test ds_membership_sim -- --exact replay` reruns one seed (add
//! `SIM_TRACE=1` for a trace, `SIM_FULL=1` for the sweep's longer profile);
//! `SIM_SEEDS=n` changes how many seeds the test runs.

mod ds_sim;

use ds_sim::{run_seed, Params, Plant, Profile};
use std::time::{Duration, Instant};

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn sweep(range: std::ops::Range<u64>, profile: Profile) -> Vec<Duration> {
    let t0 = Instant::now();
    let mut failures = vec![];
    let mut frames = 0;
    let mut attacks = 0;
    let mut failovers = vec![];
    let (mut commits, mut removed, mut joined) = (0, 0, 0);
    for seed in range.clone() {
        let r = run_seed(Params::new(seed, profile));
        frames += r.stats.frames;
        commits += r.stats.commits;
        removed += r.stats.removed;
        joined += r.stats.joined;
        attacks += r.stats.attacks_rejected;
        failovers.extend(r.stats.failover);
        if !r.violations.is_empty() {
            failures.push((seed, r.violations));
        }
    }
    eprintln!(
        "{} seeds ({profile:?}) in {:?}: {frames} frames, {commits} commits, {removed} removals, {joined} rejoins, {attacks} attacks rejected, {} failing",
        range.end - range.start,
        t0.elapsed(),
        failures.len()
    );
    for (seed, v) in failures.iter().take(5) {
        eprintln!(
            "seed {seed} failed (replay: SIM_SEED={seed} cargo test --test ds_membership_sim -- --exact replay):"
        );
        for line in v {
            eprintln!("  {line}");
        }
    }
    assert!(failures.is_empty(), "{} seeds failed", failures.len());
    if profile == Profile::Quick {
        // The scenarios must reach the paths they claim to test.
        assert!(commits > 0 && removed > 0 && joined > 0 && attacks > 0);
    }
    failovers
}

// Two halves, so the two test threads share the work.
#[test]
fn chaos_seeds_first_half() {
    let n = seeds();
    sweep(0..n / 2, Profile::Quick);
}

#[test]
fn chaos_seeds_second_half() {
    let n = seeds();
    sweep(n / 2..n, Profile::Quick);
}

#[test]
fn contact_failover_within_the_target() {
    let mut f = sweep(0..seeds() / 4, Profile::Failover);
    assert!(!f.is_empty());
    f.sort();
    let median = f[f.len() / 2];
    let max = *f.last().expect("not empty");
    eprintln!(
        "failover: median {median:?}, max {max:?} over {} runs",
        f.len()
    );
    // Detection takes between failure_timeout − heartbeat and failure_timeout after the
    // crash, so the median must sit inside that window (plus the commit's round trips).
    assert!(median >= Duration::from_millis(200) && median <= Duration::from_millis(320));
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let profile = if std::env::var_os("SIM_FULL").is_some() {
        Profile::Full
    } else if std::env::var_os("SIM_FAILOVER").is_some() {
        Profile::Failover
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
    for seed in 0..30 {
        let mut p = Params::new(seed, Profile::Quick);
        p.plant = plant;
        let r = run_seed(p);
        if std::env::var_os("SIM_SHOW").is_some() {
            eprintln!("{seed}: {:?}", r.violations);
        }
        if r.violations.iter().any(|v| v.contains(what)) {
            caught += 1;
        }
    }
    eprintln!("{plant:?}: caught in {caught} of 30 seeds");
    assert!(caught > 0, "the checker never noticed {plant:?}");
}

#[test]
fn checker_catches_a_contact_that_never_stops() {
    planted(Plant::NeverStops, "after learning of epoch");
    planted(Plant::NeverStops, "two contacts in epoch");
}

#[test]
fn checker_catches_nodes_that_forget_their_promises() {
    // Restarting from the genesis view instead of the persisted state (the operator
    // deleted the state file) breaks the protocol's assumptions; the checker must see it.
    planted(Plant::Amnesia, "not newer than seq");
}

/// Two backups that cannot reach each other (the contact reaches both) keep removing each
/// other: each is the other's predecessor once it rejoins at the end of the line. The
/// rejoin back-off bounds that churn: without it the pair commits about five views a
/// second; with it the delays double up to the cap, so the epochs committed during the
/// split stay far below that — and there is never a second contact.
#[test]
fn split_backups_churn_epochs_at_a_bounded_rate() {
    let seeds = 20;
    let mut worst = 0;
    for seed in 0..seeds {
        let o = ds_sim::run_seed(ds_sim::Params::new(seed, Profile::BackupSplit));
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
        worst = worst.max(o.stats.split_commits);
        assert!(o.stats.removed > 0, "seed {seed}: the split removed nobody");
    }
    let secs = ds_sim::SPLIT.as_secs();
    eprintln!("backup split: at most {worst} views in {secs} s over {seeds} seeds");
    // Without the back-off: about 5 a second (100 in 20 s).
    assert!(worst <= 2 * secs, "{worst} views in {secs} s");
}
