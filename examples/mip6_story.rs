//! Mobile IPv6 told as a story, for a newcomer: a mobile node leaves home, registers with
//! its home agent, does route optimisation with a correspondent, moves again and comes
//! home — every packet real bytes through the daemon's own state machines (the simulator
//! of `tests/sim`, in its loss-free, fixed-delay story profile).
//!
//! `cargo run --release --example mip6_story -- [--pcap FILE] [--kbm-out FILE]`
//!
//! `--pcap` writes every packet that crossed a link, as on the wire (HAO, RH2, ip6ip6), to
//! a classic pcap; `--kbm-out` writes the Kbm of every MN↔CN binding in hex, one per line,
//! so that `mip6ctl decode --kbm $(paste -sd, FILE) --pcap PCAP` shows every BU and BA
//! authenticator valid.
//! Exits non-zero if the simulator's invariants or an authenticator check failed.

#[path = "../tests/sim/mod.rs"]
mod sim;

use mip6d::ctl::decode::AuthCheck;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut pcap = None;
    let mut kbm_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--pcap", Some(f)) => pcap = Some(f),
            ("--kbm-out", Some(f)) => kbm_out = Some(f),
            _ => {
                eprintln!("usage: mip6_story [--pcap FILE] [--kbm-out FILE]");
                return ExitCode::from(2);
            }
        }
    }
    let story = sim::story::run();
    print!("{}", story.text);
    if let Some(f) = &pcap {
        if let Err(e) = std::fs::write(f, story.pcap()) {
            eprintln!("{f}: {e}");
            return ExitCode::from(2);
        }
        println!("Wrote {} packets to {f}.", story.packets.len());
    }
    if let Some(f) = &kbm_out {
        if story.keys.is_empty() {
            eprintln!("no Binding Update to the correspondent: no Kbm to write");
            return ExitCode::FAILURE;
        }
        // One key per line, in the order the bindings were made; `mip6ctl decode` takes
        // them all with `--kbm A,B,C`.
        let text: String = story
            .keys
            .iter()
            .map(|k| format!("{}\n", mip6d::hex::encode(&k.kbm)))
            .collect();
        if let Err(e) = std::fs::write(f, text) {
            eprintln!("{f}: {e}");
            return ExitCode::from(2);
        }
        println!(
            "Wrote the {} binding management keys to {f}.",
            story.keys.len()
        );
    }
    let auth_ok = story
        .keys
        .iter()
        .all(|k| k.bu_auth == Some(AuthCheck::Valid) && k.ba_auth == Some(AuthCheck::Valid));
    if story.report.violations.is_empty() && auth_ok && !story.keys.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
