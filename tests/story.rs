//! The narrated story of `examples/mip6_story.rs` (`tests/sim/story.rs`) goes as told:
//! the right messages in the right order, every packet on the wire well-formed for our
//! decoder, `mip6ctl` and tshark, every Binding Update and Acknowledgement with the
//! correspondent verifiable with the Kbm rebuilt from the tokens on the wire, and the
//! mobile node home with no binding left anywhere.

mod common;
mod sim;

use mip6d::ctl::capture::{ipv6_payload, CaptureReader};
use mip6d::ctl::decode::{check_authenticator, AuthCheck};
use mip6d::proto::event::Action;
use mip6d::proto::mn::Location;
use mip6d::wire::checksum;
use mip6d::wire::packet::{self, Header, IPV6_HEADER_LEN};
use mip6d::wire::proto;
use serde_json::Value;
use sim::story::{self, Story};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The story is deterministic in everything but random bytes, so the tests share a run.
fn story() -> &'static Story {
    static STORY: OnceLock<Story> = OnceLock::new();
    STORY.get_or_init(story::run)
}

/// A scratch directory with the story's pcap in it, for the external tools.
fn pcap_file(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("mip6d-story-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("story.pcap");
    std::fs::write(&file, story().pcap()).unwrap();
    (dir, file)
}

#[test]
fn the_messages_come_in_the_order_of_the_story() {
    let s = story();
    assert!(
        s.report.violations.is_empty(),
        "simulator invariants: {:#?}\n{}",
        s.report.violations,
        s.text
    );
    let got: Vec<&str> = s.packets.iter().map(|p| p.label.as_str()).collect();
    // With fixed delays and no loss the order is exact; a retransmission, a missing
    // test or a stray packet is a story gone wrong.
    let want = [
        // 1. At home: plain routing.
        "CN→MN data",
        "MN→CN data",
        // 2. Home registration from the first care-of address.
        "MN→HA BU(H)+HAO",
        "HA→MN BA+RH2",
        // 3. Through the home agent: intercepted and tunnelled, reverse-tunnelled back.
        "CN→HA data",
        "HA→MN tunnel[data]",
        "MN→HA tunnel[data]",
        "HA→CN data",
        // 4. Return routability, then the authenticated BU and BA.
        "MN→HA tunnel[HoTI]",
        "MN→CN CoTI",
        "HA→CN HoTI",
        "CN→MN CoT",
        "CN→HA HoT",
        "HA→MN tunnel[HoT]",
        "MN→CN BU+HAO",
        "CN→MN BA+RH2",
        // 5. Direct data.
        "CN→MN data+RH2",
        "MN→CN data+HAO",
        "CN→MN data+RH2",
        "MN→CN data+HAO",
        // 6. Second foreign link: home first, then only the care-of test is redone.
        "MN→HA BU(H)+HAO",
        "HA→MN BA+RH2",
        "MN→CN CoTI",
        "CN→MN CoT",
        "MN→CN BU+HAO",
        "CN→MN BA+RH2",
        "CN→MN data+RH2",
        "MN→CN data+HAO",
        // 7. Home: both bindings deleted, then plain routing again.
        "MN→HA BU(H,dereg)",
        "MN→CN BU(dereg)",
        "HA→MN BA",
        "CN→MN BA",
        "CN→MN data",
        "MN→CN data",
    ];
    assert_eq!(got, want, "the story went differently:\n{}", s.text);
    // Every packet got somewhere, in time order.
    assert!(s.packets.iter().all(|p| p.to != "nowhere"));
    assert!(s.packets.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(s.report.stats.lost, 0);
    assert_eq!(s.report.stats.unroutable, 0);
    assert_eq!(s.report.stats.delivered, s.packets.len() as u64);
}

#[test]
fn the_machines_install_and_remove_what_the_story_says() {
    let s = story();
    let did = |who: &str, after: u64, f: &dyn Fn(&Action) -> bool| {
        s.actions
            .iter()
            .any(|(at, w, a)| *w == who && *at >= Duration::from_secs(after) && f(a))
    };
    assert!(did("HA", 2, &|a| matches!(a, Action::StartDad { .. })));
    assert!(did("HA", 2, &|a| matches!(a, Action::ProxyNdAdd { .. })));
    assert!(did("HA", 2, &|a| matches!(a, Action::TunnelAdd { .. })));
    assert!(did("MN", 7, &|a| matches!(a, Action::RoStart { .. })));
    assert!(did("CN", 7, &|a| matches!(
        a,
        Action::BindingInstalled { .. }
    )));
    // Return home (t = 20 s): the home agent takes everything down.
    for (what, f) in [
        (
            "binding",
            &(|a: &Action| matches!(a, Action::BindingRemoved { home: true, .. }))
                as &dyn Fn(&Action) -> bool,
        ),
        ("tunnel", &|a| matches!(a, Action::TunnelDel { .. })),
        ("route", &|a| matches!(a, Action::RouteDel { .. })),
        ("proxy ND", &|a| matches!(a, Action::ProxyNdDel { .. })),
    ] {
        assert!(
            did("HA", 20, f),
            "the HA kept its {what} after the MN came home"
        );
    }
    assert!(did("CN", 20, &|a| matches!(
        a,
        Action::BindingRemoved { .. }
    )));
}

#[test]
fn the_story_ends_at_home_with_no_binding_anywhere() {
    let e = &story().end;
    assert_eq!(
        *e,
        story::EndState {
            location: Location::Home,
            home_registered: false,
            mn_cn_binding: false,
            mn_home_tunnel: false,
            mn_route_optimised: 0,
            ha_bindings: 0,
            ha_routes: 0,
            cn_bindings: 0,
        }
    );
}

/// Every upper-layer checksum in `bytes` (and in a packet tunnelled inside) verifies.
fn assert_well_formed(n: usize, bytes: &[u8]) {
    let p = packet::parse(bytes).unwrap_or_else(|e| panic!("#{n}: {e}"));
    assert!(p.error.is_none(), "#{n}: {:?}", p.error);
    for h in &p.headers {
        match h {
            Header::Mobility { checksum_ok, .. } | Header::Icmpv6 { checksum_ok, .. } => {
                assert!(checksum_ok, "#{n}: bad checksum")
            }
            Header::Upper { protocol, len } if *protocol == proto::IPV6 => {
                assert_eq!(*len, bytes.len() - IPV6_HEADER_LEN, "#{n}: tunnel length");
                assert_well_formed(n, &bytes[IPV6_HEADER_LEN..]);
            }
            Header::Upper { protocol, len } if *protocol == proto::UDP => {
                let udp = &bytes[bytes.len() - len..];
                assert!(
                    checksum::verify(&p.final_src(), &p.final_dst(), proto::UDP, udp),
                    "#{n}: bad UDP checksum"
                );
            }
            Header::Upper { protocol, .. } => panic!("#{n}: unexpected protocol {protocol}"),
            _ => {}
        }
    }
}

#[test]
fn every_packet_in_the_pcap_decodes_with_valid_checksums() {
    let s = story();
    let pcap = s.pcap();
    let mut reader = CaptureReader::new(&pcap[..]).expect("our pcap reader takes the file");
    let mut n = 0;
    while let Some(frame) = reader.next_frame().unwrap() {
        let bytes = ipv6_payload(&frame).unwrap();
        assert_eq!(bytes, s.packets[n].bytes, "#{}", n + 1);
        n += 1;
        assert_well_formed(n, bytes);
    }
    assert_eq!(n, s.packets.len());
}

#[test]
fn correspondent_bus_and_bas_verify_with_the_kbm_from_the_wire() {
    let s = story();
    // First and second care-of address, then the deletion from home.
    assert_eq!(s.keys.len(), 3, "{:#?}", s.keys);
    assert_eq!(
        s.keys.iter().map(|k| k.deregistration).collect::<Vec<_>>(),
        [false, false, true]
    );
    for k in &s.keys {
        let ba = k.ba.expect("the CN acknowledged every BU");
        for (number, told) in [(k.bu, k.bu_auth), (ba, k.ba_auth)] {
            assert_eq!(told, Some(AuthCheck::Valid), "#{number}");
            let bytes = &s.packets[number - 1].bytes;
            let p = packet::parse(bytes).unwrap();
            let offset = p
                .headers
                .iter()
                .find_map(|h| match h {
                    Header::Mobility { offset, .. } => Some(*offset),
                    _ => None,
                })
                .unwrap();
            assert_eq!(
                check_authenticator(bytes, &p, offset, &k.kbm),
                Some(AuthCheck::Valid),
                "#{number}"
            );
            // The check means something: one bit off in the key and it fails.
            let mut wrong = k.kbm;
            wrong[0] ^= 1;
            assert_eq!(
                check_authenticator(bytes, &p, offset, &wrong),
                Some(AuthCheck::Invalid),
                "#{number}"
            );
        }
    }
    // Each binding has its own key.
    assert_ne!(s.keys[0].kbm, s.keys[1].kbm);
}

#[test]
fn mip6ctl_decode_reads_the_pcap_and_checks_the_first_binding() {
    let s = story();
    let (dir, file) = pcap_file("mip6ctl");
    let kbm = mip6d::hex::encode(&s.keys[0].kbm);
    let out = Command::new(env!("CARGO_BIN_EXE_mip6ctl"))
        .args(["decode", "--kbm", &kbm, "--pcap"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        s.packets.len()
    );
    assert!(
        !text.contains("malformed") && !text.contains("BAD"),
        "{text}"
    );
    // The first binding's BU and BA, in that order, and no other authenticator is taken
    // for valid with this key.
    let valid: Vec<usize> = text
        .split("\n#")
        .filter(|p| p.contains("authenticator valid"))
        .map(|p| {
            p.trim_start_matches('#')
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(valid, [s.keys[0].bu, s.keys[0].ba.unwrap()], "{text}");

    // With every key (comma-separated), every BU and BA with the CN verifies, and nothing
    // else claims an authenticator.
    let (dir, file) = pcap_file("mip6ctl-all");
    let all: Vec<String> = s.keys.iter().map(|k| mip6d::hex::encode(&k.kbm)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_mip6ctl"))
        .args(["decode", "--json", "--kbm", &all.join(","), "--pcap"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8(out.stdout).unwrap();
    let verdicts: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let a = v["headers"]
                .as_array()?
                .iter()
                .find_map(|h| h.get("authenticator"))?
                .as_str()?
                .to_string();
            Some((v["index"].as_u64().unwrap(), a))
        })
        .collect();
    let mut want: Vec<(u64, String)> = s
        .keys
        .iter()
        .flat_map(|k| [Some(k.bu), k.ba])
        .flatten()
        .map(|i| (i as u64, "valid".to_string()))
        .collect();
    want.sort();
    assert_eq!(verdicts, want, "{text}");
}

#[test]
fn tshark_dissects_the_pcap_without_complaint() {
    let tshark = common::tshark();
    let (dir, file) = pcap_file("tshark");
    let out = Command::new(tshark)
        .args(["-n", "-T", "json", "--no-duplicate-keys", "-r"])
        .arg(&file)
        .env("HOME", &dir) // keep tshark from reading or writing a user profile
        .output()
        .expect("run tshark");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dissected: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    let dissected = dissected.as_array().unwrap();
    assert_eq!(dissected.len(), story().packets.len());
    let mut mobility = 0;
    for (i, p) in dissected.iter().enumerate() {
        let layers = &p["_source"]["layers"];
        let text = layers.to_string();
        for bad in ["_ws.expert", "_ws.malformed"] {
            assert!(
                !text.contains(bad),
                "#{}: tshark reports {bad}: {text}",
                i + 1
            );
        }
        if layers["frame"]["frame.protocols"]
            .as_str()
            .is_some_and(|p| p.ends_with(":mipv6"))
        {
            mobility += 1;
        }
    }
    // Every signalling packet, the tunnelled ones too, is Mobile IPv6 to tshark.
    let signalling = story()
        .packets
        .iter()
        .filter(|p| !p.label.contains("data"))
        .count();
    assert_eq!(mobility, signalling);
}

#[test]
fn two_runs_tell_the_same_story() {
    // Only the random bytes (cookies, tokens, authenticators) may differ.
    let a = story::run();
    let b = story();
    let timeline = |s: &Story| -> Vec<(Duration, String, usize)> {
        s.packets
            .iter()
            .map(|p| (p.at, p.label.clone(), p.bytes.len()))
            .collect()
    };
    assert_eq!(timeline(&a), timeline(b));
    assert_eq!(a.report.stats.quiet_checks, b.report.stats.quiet_checks);
}
