//! umip's own example configurations must parse with the meaning umip gives them.
//!
//! The files are not part of this repository; they live in the shared reference folder
//! beside the clone (`<repo>/../shared/reference/umip/examples`). A missing folder is a
//! failure, never a skip, so a broken checkout cannot pass by testing nothing.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip6d::config::*;

fn examples_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = Path::new("shared/reference/umip/examples");
    let mut looked = Vec::new();
    for dir in repo.ancestors().skip(1) {
        let candidate = dir.join(rel);
        if candidate.is_dir() {
            return candidate;
        }
        looked.push(candidate.display().to_string());
    }
    panic!(
        "umip example configs not found; looked in:\n  {}\n\
         (they are in the shared reference folder that sits beside the repository clone)",
        looked.join("\n  ")
    );
}

fn parse_example(name: &str) -> Config {
    let path = examples_dir().join(name);
    let parsed = parse_file_with(&path, &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let report = parsed.config.check();
    assert!(report.is_ok(), "{name}: {:?}", report.errors);
    roundtrip(&parsed.config);
    parsed.config
}

fn roundtrip(cfg: &Config) {
    let shown = cfg.to_string();
    let again = parse_str(&shown, "shown.conf")
        .unwrap_or_else(|e| panic!("--show-config output does not parse: {e}\n{shown}"));
    assert_eq!(*cfg, again, "{shown}");
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn p(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').unwrap();
    Prefix {
        addr: a(addr),
        len: len.parse().unwrap(),
    }
}

fn esp(policy_type: IpsecPolicyType) -> IpsecPolicy {
    IpsecPolicy {
        policy_type,
        reqid_to_ha: 0,
        reqid_to_mn: 0,
        action: PolicyAction::Allow,
    }
}

fn ha_set(hoas: &[&str]) -> IpsecPolicySet {
    IpsecPolicySet {
        home_agent_address: a("3ffe:2620:6:1::1"),
        home_addresses: hoas.iter().map(|h| p(h)).collect(),
        policies: vec![esp(IpsecPolicyType::Mh), esp(IpsecPolicyType::TunnelMh)],
    }
}

#[test]
fn example_cn() {
    let c = parse_example("example-cn.conf");
    assert_eq!(c.node_config, NodeRole::Cn);
    assert_eq!(c.debug_level, 10);
    assert!(c.do_route_optimization_cn);
    // Nothing else was said, so everything else is umip's default.
    let expected = Config {
        debug_level: 10,
        ..Config::default()
    };
    assert_eq!(c, expected);
}

#[test]
fn example_ha() {
    let c = parse_example("example-ha.conf");
    assert_eq!(c.node_config, NodeRole::Ha);
    assert_eq!(c.debug_level, 10);
    assert_eq!(c.interfaces, vec![InterfaceConfig::new("eth0")]);
    assert!(c.use_mn_ha_ipsec);
    assert!(!c.key_mng_mob_capability);
    assert_eq!(
        c.ipsec_policy_sets,
        vec![ha_set(&[
            "3ffe:2620:6:1::1234/64",
            "3ffe:2620:6:1::1235/64"
        ])]
    );
    assert!(c.home_links.is_empty());
    assert_eq!(c.ha_max_binding_life, 262_140);
}

#[test]
fn example_mn() {
    let c = parse_example("example-mn.conf");
    assert_eq!(c.node_config, NodeRole::Mn);
    assert!(c.do_route_optimization_cn && c.do_route_optimization_mn);
    assert!(!c.use_cn_bu_ack);
    assert!(c.mn_discard_ha_param_prob);
    assert_eq!(c.mn_router_probes, 1);
    assert_eq!(c.interfaces, vec![InterfaceConfig::new("eth0")]);
    assert_eq!(
        c.home_links,
        vec![HomeLink {
            interface: "eth0".into(),
            home_address: p("3ffe:2620:6:1::1234/64"),
            mobile_network_prefixes: vec![],
            home_agent_address: a("3ffe:2620:6:1::1"),
            is_mob_rtr: false,
            ro_policies: vec![],
            home_prefix: None,
        }]
    );
    assert!(!c.home_links[0].uses_dhaad());
    assert_eq!(
        c.home_links[0].effective_home_prefix(),
        p("3ffe:2620:6:1::/64")
    );
    assert_eq!(
        c.ipsec_policy_sets,
        vec![ha_set(&["3ffe:2620:6:1::1234/64"])]
    );
    assert_eq!(
        c.initial_bindack_timeout_first_reg,
        Duration::from_millis(1500)
    );
}

#[test]
fn example_nemo_ha() {
    let c = parse_example("example-nemo-ha.conf");
    assert_eq!(c.node_config, NodeRole::Ha);
    assert!(c.ha_accept_mob_rtr);
    assert_eq!(c.ha_served_prefixes, vec![p("3ffe:2620:6::/48")]);
    assert_eq!(c.default_binding_acl_status, STATUS_PROHIBITED);
    assert_eq!(
        c.binding_acl,
        vec![
            BindingAcl {
                home_address: a("3ffe:2620:6:1::1234"),
                mobile_network_prefixes: vec![p("3ffe:2620:6:2::/64"), p("3ffe:2620:6:3::/64")],
                status: 0,
            },
            BindingAcl {
                home_address: a("3ffe:2620:6:1::1235"),
                mobile_network_prefixes: vec![],
                status: 0,
            },
        ]
    );
    assert_eq!(
        c.ipsec_policy_sets,
        vec![ha_set(&[
            "3ffe:2620:6:1::1234/64",
            "3ffe:2620:6:1::1235/64"
        ])]
    );
}

#[test]
fn example_nemo_mn() {
    let c = parse_example("example-nemo-mn.conf");
    assert_eq!(c.node_config, NodeRole::Mn);
    let l = &c.home_links[0];
    assert!(l.is_mob_rtr);
    assert_eq!(l.home_address, p("3ffe:2620:6:1::1234/64"));
    assert_eq!(
        l.mobile_network_prefixes,
        vec![p("3ffe:2620:6:2::/64"), p("3ffe:2620:6:3::/64")]
    );
    assert_eq!(l.home_agent_address, a("3ffe:2620:6:1::1"));
    assert!(c.mob_rtr_use_explicit_mode);
}

#[test]
fn our_example_parses_and_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mip6d.conf");
    let parsed = parse_file_with(&path, &ParseOptions::default())
        .unwrap_or_else(|e| panic!("mip6d.conf does not parse: {e}"));
    assert!(parsed.config.check().is_ok());
    roundtrip(&parsed.config);
}
