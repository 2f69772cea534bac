//! What we emit, dissected by Wireshark's tshark: every packet must dissect without expert
//! warnings or malformation, and every field tshark shows must hold the value we meant.

mod common;

use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;

use mip6d::ctl::decode;
use mip6d::wire::packet;

/// Every leaf value under each field name, in order, from tshark's `-T json` (run with
/// `--no-duplicate-keys`, so repeated fields come as arrays).
fn flatten(v: &Value, key: Option<&str>, acc: &mut HashMap<String, Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(v, Some(k), acc);
            }
        }
        Value::Array(a) => {
            for x in a {
                flatten(x, key, acc);
            }
        }
        Value::String(s) => acc
            .entry(key.unwrap_or("").to_string())
            .or_default()
            .push(s.clone()),
        other => acc
            .entry(key.unwrap_or("").to_string())
            .or_default()
            .push(other.to_string()),
    }
}

fn b(v: &Value) -> String {
    if v.as_bool().expect("bool") { "1" } else { "0" }.to_string()
}

fn n(v: &Value) -> String {
    v.as_u64().expect("number").to_string()
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_string()
}

/// The tshark fields our decoded view of a packet predicts, as (field, value) pairs.
fn predicted(ours: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));
    for h in ours["headers"].as_array().unwrap() {
        match h["type"].as_str().unwrap() {
            "destination-options" => {
                for o in h["options"].as_array().unwrap() {
                    if o["type"] == "home-address" {
                        put("ipv6.opt.mipv6.home_address", s(&o["address"]));
                    }
                }
            }
            "routing" => {
                put("ipv6.routing.type", n(&h["routing_type"]));
                put("ipv6.routing.segleft", n(&h["segments_left"]));
                put("ipv6.routing.mipv6.home_address", s(&h["home_address"]));
            }
            "mobility" => {
                put("mip6.proto", "59".into());
                put("mip6.mhtype", n(&h["mh_type_number"]));
                let f = &h["flags"];
                match h["mh_type"].as_str().unwrap() {
                    "binding-update" => {
                        put("mip6.bu.seqnr", n(&h["sequence"]));
                        put("mip6.bu.lifetime", n(&h["lifetime_units"]));
                        for l in ["a", "h", "l", "k", "m", "p"] {
                            put(&format!("mip6.bu.{l}_flag"), b(&f[l.to_uppercase()]));
                        }
                        put("mip6.nemo.bu.r_flag", b(&f["R"]));
                    }
                    "binding-acknowledgement" => {
                        put("mip6.ba.status", n(&h["status"]));
                        put("mip6.ba.seqnr", n(&h["sequence"]));
                        put("mip6.ba.lifetime", n(&h["lifetime_units"]));
                        put("mip6.ba.k_flag", b(&f["K"]));
                        put("mip6.ba.p_flag", b(&f["P"]));
                        put("mip6.nemo.ba.r_flag", b(&f["R"]));
                    }
                    "binding-error" => {
                        put("mip6.be.status", n(&h["status"]));
                        put("mip6.be.haddr", s(&h["home_address"]));
                    }
                    "home-test-init" => put(
                        "mip6.hoti.cookie",
                        format!("0x{}", s(&h["home_init_cookie"])),
                    ),
                    "care-of-test-init" => put(
                        "mip6.coti.cookie",
                        format!("0x{}", s(&h["care_of_init_cookie"])),
                    ),
                    "home-test" => {
                        put("mip6.hot.nindex", n(&h["home_nonce_index"]));
                        put(
                            "mip6.hot.cookie",
                            format!("0x{}", s(&h["home_init_cookie"])),
                        );
                        put(
                            "mip6.hot.token",
                            format!("0x{}", s(&h["home_keygen_token"])),
                        );
                    }
                    "care-of-test" => {
                        put("mip6.cot.nindex", n(&h["care_of_nonce_index"]));
                        put(
                            "mip6.cot.cookie",
                            format!("0x{}", s(&h["care_of_init_cookie"])),
                        );
                        // tshark 4.0 files the care-of keygen token under the HoT's field.
                        put(
                            "mip6.hot.token",
                            format!("0x{}", s(&h["care_of_keygen_token"])),
                        );
                    }
                    _ => {}
                }
                for o in h["options"].as_array().unwrap() {
                    match o["type"].as_str().unwrap() {
                        "binding-refresh-advice" => {
                            put("mip6.bra.interval", n(&o["refresh_interval_units"]))
                        }
                        "alternate-care-of-address" => put("mip6.acoa.acoa", s(&o["address"])),
                        "nonce-indices" => {
                            put("mip6.ni.hni", n(&o["home_nonce_index"]));
                            put("mip6.ni.cni", n(&o["care_of_nonce_index"]));
                        }
                        "binding-authorization-data" => {
                            let hex = s(&o["authenticator"]);
                            let colons: Vec<&str> =
                                (0..hex.len()).step_by(2).map(|i| &hex[i..i + 2]).collect();
                            put("mip6.bad.auth", colons.join(":"));
                        }
                        "mobile-network-prefix" => {
                            put("mip6.nemo.mnp.pfl", n(&o["prefix_length"]));
                            put("mip6.nemo.mnp.mnp", s(&o["prefix"]));
                        }
                        _ => {}
                    }
                }
            }
            "icmpv6" => {
                put("icmpv6.checksum.status", "1".into());
                let f = &h["flags"];
                match h["icmp_type"].as_str().unwrap() {
                    "haad-request" | "mobile-prefix-solicitation" => {
                        put("icmpv6.mip6.identifier", n(&h["identifier"]))
                    }
                    "haad-reply" => {
                        put("icmpv6.mip6.identifier", n(&h["identifier"]));
                        for a in h["home_agents"].as_array().unwrap() {
                            put("icmpv6.mip6.home_agent_address", s(a));
                        }
                    }
                    "mobile-prefix-advertisement" => {
                        put("icmpv6.mip6.identifier", n(&h["identifier"]));
                        put("icmpv6.mip6.flag.m", b(&f["M"]));
                        put("icmpv6.mip6.flag.o", b(&f["O"]));
                    }
                    "router-advertisement" => {
                        put("icmpv6.nd.ra.cur_hop_limit", n(&h["hop_limit"]));
                        put("icmpv6.nd.ra.flag.m", b(&f["M"]));
                        put("icmpv6.nd.ra.flag.o", b(&f["O"]));
                        put("icmpv6.nd.ra.flag.h", b(&f["H"]));
                        put("icmpv6.nd.ra.router_lifetime", n(&h["router_lifetime"]));
                    }
                    _ => {}
                }
                for o in h["options"].as_array().into_iter().flatten() {
                    match o["type"].as_str().unwrap() {
                        "prefix-information" => {
                            put("icmpv6.opt.prefix", s(&o["prefix"]));
                            put("icmpv6.opt.prefix.length", n(&o["prefix_length"]));
                            put("icmpv6.opt.prefix.flag.r", b(&o["flags"]["R"]));
                        }
                        "advertisement-interval" => {
                            put("icmpv6.opt.advertisement_interval", n(&o["interval_ms"]))
                        }
                        "home-agent-information" => {
                            put("icmpv6.opt.home_agent_preference", n(&o["preference"]));
                            put("icmpv6.opt.home_agent_lifetime", n(&o["lifetime"]));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn tshark_dissects_our_packets_cleanly_with_our_values() {
    let tshark = common::tshark();
    let samples = common::samples::all();
    let dir = std::env::temp_dir().join(format!("mip6d-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("ours.pcap");
    let packets: Vec<Vec<u8>> = samples.iter().map(|(_, b)| b.clone()).collect();
    std::fs::write(&pcap, common::pcap_raw(&packets)).unwrap();
    let out = Command::new(tshark)
        .args(["-n", "-T", "json", "--no-duplicate-keys", "-r"])
        .arg(&pcap)
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
    assert_eq!(dissected.len(), samples.len());
    let mut checked = 0;
    for ((name, bytes), theirs) in samples.iter().zip(dissected) {
        let mut fields = HashMap::new();
        flatten(&theirs["_source"]["layers"], None, &mut fields);
        for bad in ["_ws.expert", "_ws.malformed", "_ws.expert.message"] {
            assert!(
                !fields.contains_key(bad),
                "{name}: tshark reports {bad}: {:?}",
                fields.get("_ws.expert.message")
            );
        }
        let p = packet::parse(bytes).unwrap();
        let ours = decode::render_json(1, bytes, &p, &[]);
        assert_eq!(ours["ok"], true, "{name}: we reject our own packet: {ours}");
        for (field, value) in predicted(&ours) {
            let got = fields
                .get(&field)
                .unwrap_or_else(|| panic!("{name}: tshark shows no {field}"));
            assert!(
                got.contains(&value),
                "{name}: {field}: tshark says {got:?}, we meant {value}"
            );
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} fields compared");
}
