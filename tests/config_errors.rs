//! Every kind of mistake gets `file:line:column: expected …, found …`.

use mip6d::config::*;

fn err(text: &str) -> String {
    match parse_str(text, "t.conf") {
        Ok(c) => panic!("{text:?} parsed: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_err(text: &str, expected: &str) {
    assert_eq!(err(text), expected, "input: {text:?}");
}

#[test]
fn unknown_keyword_with_did_you_mean() {
    assert_err(
        "DebugLevel 1;\nNodeConfg HA;",
        "t.conf:2:1: expected a top-level keyword, found `NodeConfg`; did you mean `NodeConfig`?",
    );
    assert_err(
        "NodeConfig ha;",
        "t.conf:1:12: expected a node role (CN, MN, HA), found `ha`; did you mean `HA`? (words are case-sensitive)",
    );
    assert_err(
        "Frobnicate 1;",
        "t.conf:1:1: expected a top-level keyword, found `Frobnicate`",
    );
}

#[test]
fn keyword_in_the_wrong_place() {
    assert_err(
        "HomeAddress 2001:db8::1/64;",
        "t.conf:1:1: expected a top-level keyword, found `HomeAddress`, which is only valid in a MnHomeLink block or in an IPsecPolicySet block",
    );
    assert_err(
        "LinkName \"x\";",
        "t.conf:1:1: expected a top-level keyword, found `LinkName`, a word umip reserves but accepts in no statement",
    );
}

#[test]
fn missing_semicolon_points_where_it_belongs() {
    assert_err(
        "NodeConfig HA\nDebugLevel 3;",
        "t.conf:1:14: expected `;` after `NodeConfig`, found `DebugLevel` at 2:1",
    );
    assert_err(
        "NodeConfig HA",
        "t.conf:1:14: expected `;` after `NodeConfig`, found end of file",
    );
}

#[test]
fn bad_values() {
    assert_err(
        "DebugLevel = 3;",
        "t.conf:1:12: expected a value for DebugLevel: a whole number from 0 to 2147483647, found `=`",
    );
    assert_err(
        "DoRouteOptimizationCN yes;",
        "t.conf:1:23: expected a value for DoRouteOptimizationCN: a boolean (enabled, allow, true / disabled, deny, block, false), found `yes`; write `enabled`",
    );
    assert_err(
        "UseCnBuAck ;",
        "t.conf:1:12: expected a value for UseCnBuAck: a boolean (enabled, allow, true / disabled, deny, block, false), found `;` (the value is missing)",
    );
    assert_err(
        "InitialSolicitTimer 3.;",
        "t.conf:1:21: expected a value for InitialSolicitTimer in seconds (such as 1.5), found `3.`",
    );
    assert_err(
        "Interface eth0;",
        "t.conf:1:11: expected an interface name in double quotes, found `eth0`; write \"eth0\"",
    );
    assert_err(
        "Interface \"a-very-long-interface\";",
        "t.conf:1:11: expected an interface name of 1 to 15 characters without `/`, `:` or spaces, found \"a-very-long-interface\"",
    );
}

#[test]
fn out_of_range_values_name_the_range() {
    assert_err(
        "HaMaxBindingLife 262141;",
        "t.conf:1:18: expected a value for HaMaxBindingLife from 0 to 262140, found 262141",
    );
    assert_err(
        "MnMaxCnBindingLife 99999999999999999999999;",
        "t.conf:1:20: expected a value for MnMaxCnBindingLife from 0 to 420, found 99999999999999999999999",
    );
    assert_err(
        "Interface \"eth0\" { MnIfPreference 11; }",
        "t.conf:1:35: expected an interface preference from 0 to 10, found 11",
    );
    assert_err(
        "InitialSolicitTimer 4000;",
        "t.conf:1:21: expected a value for InitialSolicitTimer from 0.0 to 3600.0 seconds, found 4000",
    );
    assert_err(
        "HaServedPrefix 2001:db8::/129;",
        "t.conf:1:27: expected a prefix length from 0 to 128, found 129",
    );
    assert_err(
        "BindingAclPolicy 2001:db8::1 300;",
        "t.conf:1:30: expected a Binding Acknowledgement status from 0 to 255, found 300",
    );
}

#[test]
fn bad_addresses() {
    assert_err(
        "MnHomeLink \"eth0\" { HomeAddress 2001:db8::g/64; }",
        "t.conf:1:33: expected a home address (an IPv6 address), found `2001:db8::g`, which is not a valid IPv6 address",
    );
    assert_err(
        "MnHomeLink \"eth0\" {\n  HomeAgentAddress fe80::1%eth0;\n}",
        "t.conf:2:20: expected a home agent address (an IPv6 address), found `fe80::1%eth0`, but zone indexes (`%eth0`) are not allowed here",
    );
    assert_err(
        "BindingAclPolicy 10.0.0.1 allow;",
        "t.conf:1:18: expected a home address (an IPv6 address), found `10.0.0.1`, but mip6d.conf takes IPv6 addresses only",
    );
    assert_err(
        "MnHomeLink \"eth0\" { HomeAddress 2001:db8::1; }",
        "t.conf:1:44: expected `/` and a prefix length after 2001:db8::1, found `;`",
    );
}

#[test]
fn block_structure() {
    assert_err(
        "Interface \"eth0\" { }",
        "t.conf:1:20: expected at least one entry in the Interface \"eth0\" block, found `}`",
    );
    assert_err(
        "Interface \"eth0\" { MnIfPreference 1; };",
        "t.conf:1:39: expected a top-level keyword, found `;`: blocks end with `}` and take no `;` after it",
    );
    assert_err(
        "Interface \"eth0\" {\n  MnIfPreference 1;\n",
        "t.conf:1:18: expected `}` to close the Interface \"eth0\" block opened here, found end of file",
    );
    assert_err(
        "Interface \"eth0\" { MnIfPreference 1;\nNodeConfig HA;",
        "t.conf:2:1: expected `IfType`, `MnIfPreference`, `Tunnel` or `}`, found `NodeConfig`, a top-level statement: is the `}` closing the Interface \"eth0\" block opened at 1:18 missing?",
    );
    assert_err(
        "CnBindingPolicySet { }",
        "t.conf:1:22: expected at least one entry in the CnBindingPolicySet block, found `}`",
    );
    assert_err(
        "CnBindingPolicySet { 2001:db8::1 maybe; }",
        "t.conf:1:34: expected a binding policy: a boolean (enabled, allow, true / disabled, deny, block, false), found `maybe`",
    );
}

#[test]
fn home_link_needs_its_addresses() {
    assert_err(
        "MnHomeLink \"eth0\" { HomeAgentAddress 2001:db8::1; }",
        "t.conf:1:51: expected `HomeAddress <address>/<length>;` in MnHomeLink \"eth0\", found its closing `}` without one",
    );
    // Without HomeAgentAddress the home agent is found with DHAAD, as with `::`.
    let c = mip6d::config::parse_str(
        "MnHomeLink \"eth0\" { HomeAddress 2001:db8::2/64; }",
        "t.conf",
    )
    .expect("HomeAgentAddress is optional");
    assert!(c.home_links[0].uses_dhaad());
    assert_err(
        "MnHomeLink \"eth0\" { HomeAgentAddress ::; HomeAddress 2001:db8::2/64; HomePrefix 2001:db9::/64; }",
        "t.conf:1:81: expected a HomePrefix that contains the home address 2001:db8::2, found 2001:db9::/64",
    );
}

#[test]
fn ipsec_policy_sets() {
    let head = "IPsecPolicySet { HomeAgentAddress 2001:db8::1; HomeAddress 2001:db8::2/64;";
    assert_err(
        "IPsecPolicySet { HomeAddress 2001:db8::1/64; }",
        "t.conf:1:18: expected `HomeAgentAddress` (the first entry of an IPsecPolicySet), found `HomeAddress`",
    );
    assert_err(
        "IPsecPolicySet { HomeAgentAddress 2001:db8::1; IPsecPolicy Mh UseESP; }",
        "t.conf:1:48: expected `HomeAddress` (at least one, after HomeAgentAddress), found `IPsecPolicy`",
    );
    assert_err(
        &format!("{head} }}"),
        "t.conf:1:76: expected `HomeAddress` or `IPsecPolicy` before the `}` of the IPsecPolicySet opened at 1:16",
    );
    assert_err(
        &format!("{head} IPsecPolicy Mh UseAH; }}"),
        "t.conf:1:91: expected `UseESP`, found `UseAH`: only ESP is supported, as in umip",
    );
    assert_err(
        &format!("{head} IPsecPolicy Mh; }}"),
        "t.conf:1:90: expected an IPsec protocol (`UseESP`), found `;`",
    );
    assert_err(
        &format!("{head} IPsecPolicy Any UseESP; }}"),
        "t.conf:1:88: expected an IPsec policy type (HomeRegBinding, Mh, MobPfxDisc, ICMP, any, TunnelHomeTesting, TunnelMh, TunnelPayload), found `Any`; did you mean `any`? (words are case-sensitive)",
    );
    assert_err(
        &format!("{head} IPsecPolicy Mh UseESP;\n IPsecPolicy HomeRegBinding UseESP; }}"),
        "t.conf:2:2: expected IPsec policies that do not overlap for home agent 2001:db8::1 and home address 2001:db8::2, found `HomeRegBinding` overlapping `Mh` at t.conf:1:76",
    );
    assert_err(
        &format!("{head} IPsecPolicy Mh UseESP; HomeAddress 2001:db8::3/64; }}"),
        "t.conf:1:99: expected `IPsecPolicy` or `}`, found `HomeAddress`",
    );
}

#[test]
fn unsupported_and_strings() {
    assert_err(
        "UsePolicyModule \"/x.so\";",
        "t.conf:1:1: expected no UsePolicyModule: mip6d cannot load umip's C policy modules; remove the statement (see mip6d.conf(5))",
    );
    assert_err(
        "DebugLogFile \"/tmp/x;\nNodeConfig HA;",
        "t.conf:1:14: unterminated string: expected a closing `\"` on the same line, found the end of the line",
    );
    assert_err(
        "NodeConfig HA; @",
        "t.conf:1:16: expected a keyword, value, string or one of `{ } ; / ( ) ,`, found unexpected character '@'",
    );
}

#[test]
fn duplicates() {
    assert_err(
        "Interface \"eth0\";\nInterface \"eth0\";",
        "t.conf:2:11: expected each interface once, found \"eth0\" again (first at t.conf:1:1)",
    );
    assert_err(
        "BindingAclPolicy 2001:db8::1 allow;\nBindingAclPolicy 2001:db8::1 deny;",
        "t.conf:2:18: expected one BindingAclPolicy per home address, found a second one for 2001:db8::1 (the first is at t.conf:1:18)",
    );
}

const DS: &str = "DistributedServer \"web\" {
    Address 2001:db8:100::80;
    HomeAgentAddress 2001:db8:100::1;
    NodeId 1;
    Role contact;
    Peers {
        Peer 2 2001:db8:200::2 backup;
    }
    SharedKeyFile \"/k\";
";

#[test]
fn distributed_server_shape() {
    let c = parse_str(&format!("{DS}}}"), "t.conf").unwrap();
    let d = &c.distributed_servers[0];
    assert_eq!(d.name, "web");
    assert_eq!(d.role, DsRole::Contact);
    assert_eq!(d.node_id, 1);
    assert_eq!(
        d.peers,
        vec![DsPeer {
            node_id: 2,
            address: "2001:db8:200::2".parse().unwrap(),
            role: DsRole::Backup
        }]
    );
    assert_eq!(d.heartbeat_interval, DistributedServer::DEFAULT_HEARTBEAT);
    assert_eq!(
        d.failure_timeout,
        DistributedServer::DEFAULT_FAILURE_TIMEOUT
    );
    assert_eq!(d.handoff_drain, HandoffDrain::Auto);
    assert_eq!(d.control_port, 7780);
}

#[test]
fn distributed_server_sanity() {
    assert_err(
        &format!("{DS}    FailureTimeout 0.05;\n}}"),
        "t.conf:10:20: expected a FailureTimeout longer than the HeartbeatInterval (0.1 s) in DistributedServer \"web\", found 0.05 s",
    );
    assert_err(
        &format!("{DS}    NodeId 3;\n}}"),
        "t.conf:10:5: expected one `NodeId` in DistributedServer \"web\", found a second one (the first is at t.conf:4:5)",
    );
    assert_err(
        &format!("{}}}", DS.replace("2 2001:db8:200::2 backup", "0 2001:db8:200::2 backup")),
        "t.conf:4:5: expected the contact node to have the lowest node id among contact and backup nodes in DistributedServer \"web\", found backup 0 below contact 1",
    );
    assert_err(
        &format!("{}}}", DS.replace("backup;", "contact;")),
        "t.conf:7:9: expected exactly one contact node in DistributedServer \"web\", found a second one",
    );
    assert_err(
        &format!("{}}}", DS.replace("Role contact", "Role backup").replace("Peer 2", "Peer 1")),
        "t.conf:7:9: expected node ids that are unique in DistributedServer \"web\", found 1 again (first at 4:5)",
    );
    assert_err(
        &format!("{}}}", DS.replace("    SharedKeyFile \"/k\";\n", "")),
        "t.conf:9:1: expected `SharedKeyFile \"<path>\";` in DistributedServer \"web\", found its closing `}` without one",
    );
    assert_err(
        &format!("{DS}    HandoffDrain maybe;\n}}"),
        "t.conf:10:18: expected a drain mode (off, on, auto), found `maybe`",
    );
}

#[test]
fn umip_lexer_limits_are_lifted() {
    let c = parse_str(
        "InitialSolicitTimer 3;\nMnRouterProbeTimeout .5;\n\
         CnBindingPolicySet { ::1 allow; ::ffff:1.2.3.4 ::2 deny; }\ninclude \"/dev/null\";",
        "t.conf",
    )
    .unwrap();
    assert_eq!(c.initial_solicit_timer, std::time::Duration::from_secs(3));
    assert_eq!(
        c.mn_router_probe_timeout,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(c.cn_binding_policies.len(), 2);
    assert_eq!(c.cn_binding_policies[1].local, Some("::2".parse().unwrap()));
    assert!(!c.cn_binding_policies[1].accept);
}

#[test]
fn umip_quirks_kept() {
    let c = parse_str(
        "NodeConfig MN; NodeConfig HA;\n\
         MnHomeLink \"eth0\" { HomeAgentAddress ::; HomeAddress 2001:db8::1/64 (2001:db8:1::/64);\n\
           HomeAddress 2001:db8::2/64 (2001:db8:2::/64); MnRoPolicy 2001:db8::9 disabled; MnRoPolicy enabled; }\n\
         IPsecPolicySet { HomeAgentAddress 2001:DB8::1; HomeAddress 2001:db8::2/64;\n\
           IPsecPolicy TunnelPayload UseESP 7 8 block; IPsecPolicy Mh UseESP 5; }\n\
         BindingAclPolicy 2001:db8::5 129; DefaultBindingAclPolicy true;",
        "t.conf",
    )
    .unwrap();
    assert_eq!(c.node_config, NodeRole::Ha, "last NodeConfig wins");
    let l = &c.home_links[0];
    assert!(l.uses_dhaad());
    assert_eq!(
        l.home_address.to_string(),
        "2001:db8::2/64",
        "last HomeAddress wins"
    );
    assert_eq!(l.mobile_network_prefixes.len(), 2, "prefix lists add up");
    assert_eq!(l.ro_policies[1].correspondent, None);
    let pols = &c.ipsec_policy_sets[0].policies;
    assert_eq!(
        (pols[0].reqid_to_ha, pols[0].reqid_to_mn, pols[0].action),
        (7, 8, PolicyAction::Block)
    );
    assert_eq!(
        (pols[1].reqid_to_ha, pols[1].reqid_to_mn, pols[1].action),
        (5, 5, PolicyAction::Allow)
    );
    assert_eq!(c.binding_acl[0].status, 129);
    assert_eq!(c.default_binding_acl_status, 0);
}

#[test]
fn warnings_for_ignored_statements() {
    let p = parse_str_with(
        "UseMovementModule \"x.so\";\nMnHomeLink \"eth0\" { HomeAgentAddress ::; HomeAddress 2001:db8::1/64; UseAltCoa enabled; }",
        "t.conf",
        &ParseOptions::default(),
    )
    .unwrap();
    let w: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "t.conf:1:1: UseMovementModule with a module name is ignored (as umip does); the built-in movement detection is used",
            "t.conf:2:70: UseAltCoa is ignored (as umip does): home registrations always carry an Alternate Care-of Address option",
        ]
    );
}

#[test]
fn role_checks() {
    let msgs = |text: &str| -> Vec<String> {
        let c = parse_str(text, "t.conf").unwrap();
        c.check().errors.iter().map(|e| e.to_string()).collect()
    };
    assert_eq!(
        msgs("\nNodeConfig HA;"),
        vec!["t.conf:2:1: expected at least one `Interface \"<name>\";` to serve as home agent on with NodeConfig HA, found none"]
    );
    assert_eq!(
        msgs("NodeConfig HA;\nInterface \"tun0\" { Tunnel enabled; }"),
        vec!["t.conf:2:1: expected a home agent interface that is not a tunnel, found \"tun0\" with `Tunnel enabled` (not supported for a home agent, as in umip)"]
    );
    assert_eq!(
        msgs("NodeConfig MN;"),
        vec!["t.conf:1:1: expected at least one MnHomeLink block with a HomeAddress with NodeConfig MN, found none"]
    );
    assert_eq!(
        msgs("MinMobPfxAdvInterval 700; MaxMobPfxAdvInterval 600;"),
        vec!["t.conf:1:1: expected MinMobPfxAdvInterval no greater than MaxMobPfxAdvInterval (600), found 700"]
    );
    assert_eq!(
        msgs(&format!("NodeConfig HA; Interface \"eth0\";\n{DS}}}")),
        vec!["t.conf:2:1: expected DistributedServer blocks only on server nodes (NodeConfig CN or MN), found one with NodeConfig HA"]
    );
    let mut c = parse_str("Interface \"eth0\" { IfType CN; }", "t.conf").unwrap();
    c.override_role(NodeRole::Ha);
    let e: Vec<String> = c.check().errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        e,
        vec!["expected at least one `Interface \"<name>\";` to serve as home agent on with NodeConfig HA (role set on the command line), found none"]
    );
}

/// Every row of the keyword table reaches a handler: writing the keyword with a bad value
/// must complain about the value, never call the keyword unknown.
#[test]
fn every_table_keyword_is_accepted_where_the_table_says() {
    use mip6d::config::keywords::{Kind, Scope, STATEMENTS};
    for def in STATEMENTS {
        if matches!(def.kind, Kind::Reserved) {
            continue;
        }
        let text = match def.scope {
            Scope::Global => format!("{} }}", def.name),
            Scope::Interface => format!("Interface \"e\" {{ {} }}", def.name),
            Scope::MnHomeLink => format!("MnHomeLink \"e\" {{ {} }}", def.name),
            Scope::IpsecPolicySet if def.name == "HomeAgentAddress" => {
                "IPsecPolicySet { HomeAgentAddress }".to_string()
            }
            Scope::IpsecPolicySet => format!(
                "IPsecPolicySet {{ HomeAgentAddress ::2; HomeAddress ::3/64; {} }}",
                def.name
            ),
            Scope::DistributedServer => format!("DistributedServer \"d\" {{ {} }}", def.name),
            Scope::Peers => format!("DistributedServer \"d\" {{ Peers {{ {} }}", def.name),
        };
        let e = err(&text);
        assert!(
            e.contains("found `}`") && !e.contains(&format!("found `{}`", def.name)),
            "{} rejected in {:?}: {e}",
            def.name,
            def.scope
        );
    }
}
