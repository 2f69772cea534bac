//! Binding cache at scale: loads 1 M bindings through the correspondent node and reports
//! the Binding Update processing rate (one core, in process) and memory per binding,
//! next to baselines measured in the same run.
//!
//! `cargo bench --bench binding_cache` (set `BINDINGS=n` for another size).
//! Memory is measured with a counting global allocator: bytes live after minus before.

#[path = "support/mod.rs"]
mod support;

use mip6d::crypto::rr;
use mip6d::proto::binding_cache::{BindingCache, BindingKey};
use mip6d::proto::cn::{Cn, CnConfig};
use mip6d::proto::event::{Action, Event, Inbound};
use mip6d::proto::ratelimit::RateLimit;
use mip6d::wire::mh::{BuFlags, Message, MhRepr};
use mip6d::wire::mh_option::MobilityOption;
use ring::rand::SystemRandom;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: `p` came from `System.alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Relaxed);
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
}

const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);

fn hoa(i: u32) -> Ipv6Addr {
    Ipv6Addr::from((0x2001_0db8_0001u128 << 80) | u128::from(i) | 1 << 40)
}

fn coa(i: u32) -> Ipv6Addr {
    Ipv6Addr::from((0x2001_0db8_0002u128 << 80) | u128::from(i) | 1 << 40)
}

struct Row {
    what: &'static str,
    ops: usize,
    took: Duration,
    bytes: Option<usize>,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and then a small load is enough to show the benchmark still works.
    let benching = support::benching();
    let n: usize = std::env::var("BINDINGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 1_000 });
    let n32 = u32::try_from(n).expect("fits");
    let t0 = Instant::now();
    let mut rows = Vec::new();

    // Baseline 1: the bare HashMap insert of the same key (no value to speak of).
    {
        let before = live();
        let start = Instant::now();
        let mut m: HashMap<BindingKey, u64> = HashMap::new();
        for i in 0..n32 {
            m.insert(BindingKey::new(CN, hoa(i)), u64::from(i));
        }
        let took = start.elapsed();
        rows.push(Row {
            what: "baseline: HashMap<BindingKey,u64>::insert",
            ops: n,
            took,
            bytes: Some(live() - before),
        });
        black_box(&m);
    }
    // Baseline 2: the cache structure alone (map + deadline heap), with a CN-sized value.
    {
        let before = live();
        let start = Instant::now();
        let mut c: BindingCache<[u8; 64]> = BindingCache::new();
        for i in 0..n32 {
            let d = t0 + Duration::from_millis(u64::from(i % 420_000));
            c.insert(BindingKey::new(CN, hoa(i)), [0; 64], Some(d));
        }
        let took = start.elapsed();
        rows.push(Row {
            what: "BindingCache<[u8;64]>::insert (+deadline)",
            ops: n,
            took,
            bytes: Some(live() - before),
        });
        let start = Instant::now();
        let mut popped = 0;
        while c.pop_due(t0 + Duration::from_secs(1000)).is_some() {
            popped += 1;
        }
        rows.push(Row {
            what: "BindingCache::pop_due (all expire)",
            ops: popped,
            took: start.elapsed(),
            bytes: None,
        });
    }

    // The real thing: RR for every mobile node, then one BU each through the CN.
    let config = CnConfig {
        rr_global: RateLimit::UNLIMITED,
        rr_per_source: RateLimit::UNLIMITED,
        ..CnConfig::default()
    };
    let mut cn = Cn::new(config, Arc::new(SystemRandom::new()), t0).unwrap();
    let mut tokens = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n32 {
        let mut get = |message: Message, src: Ipv6Addr| {
            let repr = MhRepr {
                message,
                options: vec![],
            };
            let raw = repr.to_bytes(&src, &CN);
            cn.handle(
                Event::Mh(Inbound {
                    src,
                    dst: CN,
                    hao: None,
                    repr: &repr,
                    raw: &raw,
                }),
                t0,
            );
            match cn.poll_action() {
                Some(Action::Send(t)) => match t.repr.message {
                    Message::HomeTest {
                        nonce_index,
                        keygen_token,
                        ..
                    }
                    | Message::CareOfTest {
                        nonce_index,
                        keygen_token,
                        ..
                    } => (nonce_index, keygen_token),
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            }
        };
        let h = get(Message::HomeTestInit { cookie: [1; 8] }, hoa(i));
        let c = get(Message::CareOfTestInit { cookie: [2; 8] }, coa(i));
        tokens.push((h, c));
    }
    rows.push(Row {
        what: "CN: HoTI+CoTI -> HoT+CoT (per pair)",
        ops: n,
        took: start.elapsed(),
        bytes: None,
    });

    let build = |seq: u16| -> Vec<u8> {
        let mut all = Vec::with_capacity(n * 32);
        for (i, ((hi, ht), (ci, ct))) in tokens.iter().enumerate() {
            let repr = MhRepr {
                message: Message::BindingUpdate {
                    sequence: seq,
                    flags: BuFlags::default(),
                    lifetime_units: 100,
                },
                options: vec![
                    MobilityOption::NonceIndices {
                        home: *hi,
                        care_of: *ci,
                    },
                    MobilityOption::BindingAuthData([0; 12]),
                ],
            };
            let kbm = rr::kbm(ht, Some(ct));
            let mut buf = [0u8; 32];
            let c = coa(i as u32);
            repr.emit_with_authenticator(&mut buf, &hoa(i as u32), &CN, |cov| {
                rr::authenticator(&kbm, &c, &CN, cov)
            });
            all.extend_from_slice(&buf);
        }
        all
    };
    let first = build(1);
    let second = build(2);

    let run =
        |cn: &mut Cn, rows: &mut Vec<Row>, bus: &[u8], what: &'static str, measure_mem: bool| {
            let before = live();
            let start = Instant::now();
            for (i, raw) in bus.chunks_exact(32).enumerate() {
                let repr = MhRepr::parse(raw).expect("BU parses");
                let i = i as u32;
                cn.handle(
                    Event::Mh(Inbound {
                        src: coa(i),
                        dst: CN,
                        hao: Some(hoa(i)),
                        repr: &repr,
                        raw,
                    }),
                    t0 + Duration::from_millis(10),
                );
                while let Some(a) = cn.poll_action() {
                    black_box(a);
                }
            }
            let took = start.elapsed();
            rows.push(Row {
                what,
                ops: n,
                took,
                bytes: measure_mem.then(|| live().saturating_sub(before)),
            });
        };
    run(
        &mut cn,
        &mut rows,
        &first,
        "CN: BU parse+verify+insert (new binding)",
        true,
    );
    assert_eq!(cn.len(), n);
    run(
        &mut cn,
        &mut rows,
        &second,
        "CN: BU parse+verify+update (refresh)",
        false,
    );
    assert_eq!(cn.len(), n);
    let start = Instant::now();
    cn.handle_timeout(t0 + Duration::from_secs(1000));
    while cn.poll_action().is_some() {}
    rows.push(Row {
        what: "CN: expiry of every binding",
        ops: n,
        took: start.elapsed(),
        bytes: None,
    });

    let build = if cfg!(debug_assertions) {
        "debug build (smoke run, not a measurement)"
    } else {
        "release build"
    };
    println!("\nbinding cache benchmark: {n} bindings, one core, {build}\n");
    println!(
        "| {:<44} | {:>9} | {:>10} | {:>13} | {:>13} |",
        "operation", "ops", "time", "ops/s", "bytes/binding"
    );
    println!(
        "|{:-<46}|{:->11}|{:->12}|{:->15}|{:->15}|",
        "", "", "", "", ""
    );
    for r in &rows {
        let rate = r.ops as f64 / r.took.as_secs_f64();
        let bytes = r
            .bytes
            .map_or("-".to_string(), |b| format!("{:.1}", b as f64 / n as f64));
        println!(
            "| {:<44} | {:>9} | {:>8.3} s | {:>13.0} | {:>13} |",
            r.what,
            r.ops,
            r.took.as_secs_f64(),
            rate,
            bytes
        );
    }
    println!(
        "\nCN cache estimate from capacities: {:.1} bytes/binding",
        cn.cache_bytes() as f64 / n as f64
    );
}
