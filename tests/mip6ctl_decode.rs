//! `mip6ctl decode` end to end: the binary, its exit statuses, its JSON, and the
//! authenticator check against the return-routability vector cross-checked with umip.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

use mip6d::wire::packet::{Ipv6Header, PacketBuilder, Payload};
use mip6d::wire::{mh, proto};

fn mip6ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mip6ctl"))
        .args(args)
        .output()
        .expect("run mip6ctl")
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "mip6ctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The umip BU vector (`shared/reference/umip/README.md` §4: HoA 2001:db8:1::1234, CoA
/// 2001:db8:2::abcd, CN 2001:db8:3::1, authenticator f3e88882171e7571638b3a9e) inside a
/// whole packet: IPv6 from the CoA with the Home Address option, checksum filled in (the
/// authenticator covers the MH with its checksum zeroed, so filling it changes nothing).
const UMIP_BU_PACKET: &str = "6000000000383c4020010db800020000000000000000abcd\
    20010db8000300000000000000000001870201020000c91020010db80001000000000000000012343b\
    0305000ed5123480000069040400010002050cf3e88882171e7571638b3a9e";
const UMIP_KBM: &str = "d670ae8e346905be46eb3235b3e3aa6a805e78b1";

fn mobility(v: &Value) -> &Value {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["type"] == "mobility")
        .expect("a mobility header")
}

#[test]
fn authenticator_of_the_umip_vector_verifies_with_its_kbm() {
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--kbm",
        UMIP_KBM,
        "--hex",
        UMIP_BU_PACKET,
    ]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["ok"], true);
    let m = mobility(&out[0]);
    assert_eq!(m["mh_type"], "binding-update");
    assert_eq!(m["checksum_ok"], true);
    assert_eq!(m["authenticator"], "valid");

    // One bit off in the key, or in the authenticator, and it no longer verifies.
    let wrong_key = "d670ae8e346905be46eb3235b3e3aa6a805e78b0";
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--kbm",
        wrong_key,
        "--hex",
        UMIP_BU_PACKET,
    ]));
    assert_eq!(mobility(&out[0])["authenticator"], "invalid");
    let mut tampered = mip6d::hex::decode(UMIP_BU_PACKET).unwrap();
    *tampered.last_mut().unwrap() ^= 1;
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--kbm",
        UMIP_KBM,
        "--hex",
        &mip6d::hex::encode(&tampered),
    ]));
    assert_eq!(mobility(&out[0])["authenticator"], "invalid");
    // Tampering also breaks the checksum, which a receiver checks first.
    assert_eq!(out[0]["error"]["kind"], "bad-checksum");
    // Without a key there is no verdict.
    let out = json_lines(&mip6ctl(&["decode", "--json", "--hex", UMIP_BU_PACKET]));
    assert!(mobility(&out[0]).get("authenticator").is_none());
}

fn packet_with_raw_mh(mh_bytes: &[u8]) -> String {
    let src = "2001:db8::1".parse().unwrap();
    let dst = "2001:db8::2".parse().unwrap();
    let mut out = vec![0u8; 40];
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: mh_bytes.len() as u16,
        next_header: proto::MOBILITY,
        hop_limit: 64,
        src,
        dst,
    }
    .emit(&mut out);
    let mut mh_bytes = mh_bytes.to_vec();
    mh_bytes[4..6].fill(0);
    let c = mip6d::wire::checksum::compute(&src, &dst, proto::MOBILITY, &mh_bytes);
    mh_bytes[4..6].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&mh_bytes);
    mip6d::hex::encode(&out)
}

#[test]
fn malformed_packets_report_the_receivers_duty() {
    // Payload Proto 6 instead of 59: Parameter Problem pointing at the MH's first byte,
    // which sits right after the 40-byte IPv6 header.
    let bad_proto = packet_with_raw_mh(&[6, 1, 5, 0, 0, 0, 0, 1, 0x80, 0, 0, 1, 1, 0, 0, 0]);
    // Header Len 0 for a BU, whose minimum is 12 bytes: pointer at Header Len.
    let short = packet_with_raw_mh(&[59, 0, 5, 0, 0, 0, 0, 1]);
    // MH type 200: a Binding Error with status 2 is owed.
    let unknown = packet_with_raw_mh(&[59, 0, 200, 0, 0, 0, 0, 0]);
    let mut bad_sum = mip6d::hex::decode(&packet_with_raw_mh(&[59, 0, 0, 0, 0, 0, 0, 0])).unwrap();
    bad_sum[44] ^= 0xff;
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--hex",
        &bad_proto,
        &short,
        &unknown,
        &mip6d::hex::encode(&bad_sum),
    ]));
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|p| p["ok"] == false));
    assert_eq!(out[0]["error"]["kind"], "bad-payload-proto");
    assert_eq!(out[0]["error"]["icmp_pointer"], 40);
    assert_eq!(out[0]["error"]["icmp_code"], 0);
    assert_eq!(out[1]["error"]["kind"], "bad-header-length");
    assert_eq!(out[1]["error"]["icmp_pointer"], 41);
    assert_eq!(out[2]["error"]["kind"], "unknown-mh-type");
    assert_eq!(out[2]["error"]["binding_error_status"], 2);
    assert_eq!(mobility(&out[2])["mh_type"], "unknown");
    assert_eq!(out[3]["error"]["kind"], "bad-checksum");
    assert!(out[3]["error"].get("icmp_pointer").is_none());
    assert_eq!(mobility(&out[3])["checksum_ok"], false);
}

#[test]
fn pcap_input_with_ethernet_and_raw_link_types() {
    let samples = common::samples::all();
    let dir = std::env::temp_dir().join(format!("mip6ctl-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let raw = dir.join("raw.pcap");
    let packets: Vec<Vec<u8>> = samples.iter().map(|(_, b)| b.clone()).collect();
    std::fs::write(&raw, common::pcap_raw(&packets)).unwrap();
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--pcap",
        raw.to_str().unwrap(),
    ]));
    assert_eq!(out.len(), samples.len());
    for (i, p) in out.iter().enumerate() {
        assert_eq!(p["index"], i + 1);
        assert_eq!(p["ok"], true, "{}: {p}", samples[i].0);
    }

    // The same first packet behind an Ethernet header, and an IPv4 frame next to it.
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x86, 0xdd]);
    eth.extend_from_slice(&packets[0]);
    let mut v4 = vec![0u8; 12];
    v4.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    let mut file = common::pcap_raw(&[eth, v4]);
    file[20..24].copy_from_slice(&1u32.to_le_bytes());
    let ethf = dir.join("eth.pcap");
    std::fs::write(&ethf, file).unwrap();
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--pcap",
        ethf.to_str().unwrap(),
    ]));
    assert_eq!(out.len(), 2);
    assert_eq!(mobility(&out[0])["mh_type"], "binding-update");
    assert_eq!(out[1]["ok"], false);
    assert_eq!(out[1]["error"]["kind"], "link-layer");

    // Text output names the message and says the checksum verified.
    let text = mip6ctl(&["decode", "--pcap", raw.to_str().unwrap()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("binding-update seq=4660"), "{text}");
    assert!(text.contains("[checksum ok]"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreadable_input_exits_2_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("mip6ctl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--pcap", "/nonexistent/x.pcap"], "No such file"),
        (
            vec!["--pcap", garbage.to_str().unwrap()],
            "not a pcap or pcapng",
        ),
        (vec!["--hex", "60", "6z"], "--hex argument 2"),
        (vec!["--kbm", "abcd", "--hex", "60"], "expected 20 bytes"),
    ];
    for (args, reason) in cases {
        let mut all = vec!["decode"];
        all.extend(args.iter());
        let out = mip6ctl(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{all:?}: {err}");
        assert!(out.stdout.is_empty(), "{all:?} printed a partial report");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_ba_authenticator_is_checked_with_the_addresses_swapped() {
    // A BA from the CN to the MN's care-of address (RH2 carries the HoA): the authenticator
    // covers CoA = IPv6 destination, CN = IPv6 source (RFC 6275 §6.1.8, §6.2.7).
    let cn = "2001:db8:3::1".parse().unwrap();
    let coa = "2001:db8:2::abcd".parse().unwrap();
    let hoa = "2001:db8:1::1234".parse().unwrap();
    let kbm: [u8; 20] = mip6d::hex::decode(UMIP_KBM).unwrap().try_into().unwrap();
    let ba = mh::MhRepr {
        message: mh::Message::BindingAck {
            status: 0,
            flags: mh::BaFlags::default(),
            sequence: 0x1234,
            lifetime_units: 105,
        },
        options: vec![mip6d::wire::mh_option::MobilityOption::BindingAuthData(
            [0; 12],
        )],
    };
    let mut mh_bytes = vec![0u8; ba.buffer_len()];
    ba.emit_with_authenticator(&mut mh_bytes, &cn, &hoa, |covered| {
        mip6d::crypto::rr::authenticator(&kbm, &coa, &cn, covered)
    })
    .unwrap();
    let parsed = mh::MhRepr::parse(&mh_bytes).unwrap();
    let packet = PacketBuilder {
        type2_routing: Some(hoa),
        ..PacketBuilder::new(cn, coa)
    }
    .build(Payload::Mobility(&parsed));
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--kbm",
        UMIP_KBM,
        "--hex",
        &mip6d::hex::encode(&packet),
    ]));
    assert_eq!(out[0]["ok"], true, "{}", out[0]);
    assert_eq!(mobility(&out[0])["authenticator"], "valid");
}

#[test]
fn tunnelled_packets_are_decoded_inside_the_tunnel() {
    // A HoTI from the home address, reverse-tunnelled from the care-of address to the HA.
    let hoa = "2001:db8:1::1234".parse().unwrap();
    let cn = "2001:db8:3::1".parse().unwrap();
    let hoti = mh::MhRepr {
        message: mh::Message::HomeTestInit { cookie: [7; 8] },
        options: vec![],
    };
    let inner = PacketBuilder::new(hoa, cn).build(Payload::Mobility(&hoti));
    let outer = |inner: &[u8]| {
        let mut p = vec![0u8; 40];
        Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: inner.len() as u16,
            next_header: proto::IPV6,
            hop_limit: 64,
            src: "2001:db8:2::abcd".parse().unwrap(),
            dst: "2001:db8:1::1".parse().unwrap(),
        }
        .emit(&mut p);
        p.extend_from_slice(inner);
        mip6d::hex::encode(&p)
    };
    // The same, with the inner Mobility Header's Payload Proto broken: the Parameter
    // Problem pointer counts from the outer IPv6 header (40 + 40).
    let mut broken = inner.clone();
    broken[40] = 6;
    let out = json_lines(&mip6ctl(&[
        "decode",
        "--json",
        "--hex",
        &outer(&inner),
        &outer(&broken),
    ]));
    let tunnel = &out[0]["headers"][0];
    assert_eq!(out[0]["ok"], true, "{}", out[0]);
    assert_eq!(tunnel["type"], "ipv6-in-ipv6");
    assert_eq!(tunnel["src"], "2001:db8:1::1234");
    let m = &tunnel["headers"][0];
    assert_eq!(m["mh_type"], "home-test-init");
    assert_eq!(m["checksum_ok"], true);
    assert_eq!(m["home_init_cookie"], "0707070707070707");
    assert_eq!(out[1]["ok"], false);
    assert_eq!(out[1]["error"]["kind"], "bad-payload-proto");
    assert_eq!(out[1]["error"]["icmp_pointer"], 80);
}
