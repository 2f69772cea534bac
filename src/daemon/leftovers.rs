//! What an earlier `mip6d` left in the kernel when it could not clean up (SIGKILL, a
//! crash, a power cut in a container that kept its namespace): removed at start, before
//! any role installs anything, and logged one line per object.
//!
//! The [`registry`](super::registry) removes what *this* process installed; this module
//! finds what a dead one did, by the marks every install carries:
//!
//! - ip6tables rules: `-m comment --comment mip6d` ([`crate::datapath::user::COMMENT`],
//!   added by the data path's `Rule` for every role), found in `ip6tables-save`;
//! - routes in the daemon's tables (252 and main) and policy rules: protocol
//!   [`RTPROT_MIP`] (16, as umip marks its own);
//! - proxy neighbour entries: `NDA_PROTOCOL` [`RTPROT_MIP`];
//! - the mobile node's home address away from home: `IFA_F_HOMEADDRESS`, which only a
//!   Mobile IPv6 daemon sets;
//! - IP sets: named `mip6d-…` ([`crate::datapath::sets::PREFIX`]);
//! - the kernel data path's XFRM objects: route-optimisation states (`route2`, `hao`: only
//!   a Mobile IPv6 daemon makes them) and sub-policies with umip's priorities (1–19,
//!   [`crate::datapath::kernel::prio`]), and its ip6ip6 devices, named
//!   `ip6m` + 8 hex digits ([`crate::datapath::kernel::tunnel_name`]);
//! - the tunnel fast path's nftables table `ip6 mip6d` and its routes in table 251
//!   ([`crate::datapath::seg6`]), the mobile node's in table 250
//!   ([`crate::datapath::mn_seg6`]).
//!
//! Objects without the mark are never touched, so an operator's own routes and rules
//! survive. One daemon per network namespace is assumed: a second one started beside a
//! live first one would take the first one's objects for leftovers (the pid file guards
//! against the same configuration being started twice, not against two configurations).

use std::io;
use std::process::Command;

use crate::datapath::sets;
use crate::datapath::user::{ip6tables, COMMENT};
use crate::sys::ipset::IpSets;
use crate::sys::rtnl::{Link, Rtnl, IFA_F_HOMEADDRESS, MIP6D_TABLE, RTPROT_MIP, RT_TABLE_MAIN};
use crate::sys::xfrm::{Policy, PolicyType, State, Xfrm, IPPROTO_DSTOPTS, IPPROTO_ROUTING};

/// Removes every leftover it recognises and returns one description per removed object.
/// Failures are logged and do not stop the others (a start should not fail because an
/// old object could not be removed; the install that collides with it will say so).
pub fn remove_all() -> Vec<String> {
    let mut removed = Vec::new();
    match ip6tables_save() {
        Ok(save) => {
            for (table, args) in marked_rules(&save) {
                let what = format!("ip6tables -t {table} {}", args[1..].join(" "));
                let mut full = vec!["-w".to_string(), "-t".to_string(), table];
                full.extend(args);
                match ip6tables(&full) {
                    Ok(()) => removed.push(format!("netfilter rule: {what}")),
                    Err(e) => tracing::warn!("leftover netfilter rule {what}: {e}"),
                }
            }
        }
        // No ip6tables means no rules of ours either; the data path says what to install.
        Err(e) => tracing::debug!("leftovers: ip6tables-save: {e}"),
    }
    // After the rules: a set cannot go while a rule names it.
    match IpSets::open().and_then(|mut s| Ok((s.names()?, s))) {
        Ok((names, mut s)) => {
            for name in names.into_iter().filter(|n| n.starts_with(sets::PREFIX)) {
                match s.destroy(&name) {
                    Ok(()) => removed.push(format!("ip set {name}")),
                    Err(e) => tracing::warn!("leftover ip set {name}: {e}"),
                }
            }
        }
        Err(e) => tracing::debug!("leftovers: ip sets: {e}"),
    }
    if crate::datapath::seg6::nft_table_exists() {
        let what = format!("nftables table ip6 {}", crate::datapath::seg6::NFT_TABLE);
        match crate::datapath::seg6::nft(&format!(
            "delete table ip6 {}\n",
            crate::datapath::seg6::NFT_TABLE
        )) {
            Ok(()) => removed.push(what),
            Err(e) => tracing::warn!("leftover {what}: {e}"),
        }
    }
    // Policies before the states their templates resolve to, tunnels before the routes
    // through them would matter (deleting a device takes its routes along).
    match Xfrm::open() {
        Ok(mut x) => remove_xfrm_objects(&mut x, &mut removed),
        Err(e) => tracing::debug!("leftovers: XFRM: {e}"),
    }
    match Rtnl::open() {
        Ok(mut rt) => {
            remove_tunnels(&mut rt, &mut removed);
            remove_kernel_objects(&mut rt, &mut removed)
        }
        Err(e) => tracing::warn!("leftovers: rtnetlink: {e}"),
    }
    for r in &removed {
        tracing::info!("removed a leftover of an earlier mip6d: {r}");
    }
    removed
}

/// A sub-policy in umip's priority range: the kernel data path's.
pub fn is_our_policy(p: &Policy) -> bool {
    p.ptype == PolicyType::Sub
        && (1..=crate::datapath::kernel::prio::RO_DATA_ANY).contains(&p.priority)
}

/// A route-optimisation state (Type 2 Routing Header or Home Address option).
pub fn is_our_state(s: &State) -> bool {
    matches!(s.id.proto, IPPROTO_ROUTING | IPPROTO_DSTOPTS)
}

/// One of the kernel data path's ip6ip6 devices.
pub fn is_our_tunnel(l: &Link) -> bool {
    l.kind.as_deref() == Some("ip6tnl")
        && l.name.len() == 12
        && l.name.starts_with("ip6m")
        && l.name[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn remove_xfrm_objects(x: &mut Xfrm, removed: &mut Vec<String>) {
    match x.policies() {
        Ok(ps) => {
            for p in ps.iter().filter(|p| is_our_policy(p)) {
                let what = format!(
                    "xfrm sub-policy {}/{} -> {}/{} dir {:?} priority {}",
                    p.sel.src, p.sel.src_len, p.sel.dst, p.sel.dst_len, p.dir, p.priority
                );
                match x.del_policy(&p.id()) {
                    Ok(()) => removed.push(what),
                    Err(e) => tracing::warn!("leftover {what}: {e}"),
                }
            }
        }
        Err(e) => tracing::debug!("leftovers: XFRM policies: {e}"),
    }
    match x.states() {
        Ok(ss) => {
            for s in ss.iter().filter(|s| is_our_state(s)) {
                let what = format!(
                    "xfrm state {} -> {} proto {}",
                    s.id.src, s.id.dst, s.id.proto
                );
                match x.del_state(&s.id) {
                    Ok(()) => removed.push(what),
                    Err(e) => tracing::warn!("leftover {what}: {e}"),
                }
            }
        }
        Err(e) => tracing::debug!("leftovers: XFRM states: {e}"),
    }
}

fn remove_tunnels(rt: &mut Rtnl, removed: &mut Vec<String>) {
    match rt.links() {
        Ok(links) => {
            for l in links.iter().filter(|l| is_our_tunnel(l)) {
                let what = format!("ip6ip6 device {}", l.name);
                match rt.delete_link(l.index) {
                    Ok(()) => removed.push(what),
                    Err(e) => tracing::warn!("leftover {what}: {e}"),
                }
            }
        }
        Err(e) => tracing::warn!("leftovers: links: {e}"),
    }
}

fn remove_kernel_objects(rt: &mut Rtnl, removed: &mut Vec<String>) {
    for table in [
        MIP6D_TABLE,
        RT_TABLE_MAIN,
        crate::datapath::seg6::DECAP_TABLE,
        crate::datapath::mn_seg6::ENCAP_TABLE,
    ] {
        match rt.routes(table) {
            Ok(routes) => {
                for r in routes.into_iter().filter(|r| r.protocol == RTPROT_MIP) {
                    let what = format!("route {}/{} table {table}", r.dst, r.dst_len);
                    match rt.del_route(&r) {
                        Ok(()) => removed.push(what),
                        Err(e) => tracing::warn!("leftover {what}: {e}"),
                    }
                    // A mobile node's reverse tunnel set the SRv6 tunnel source too.
                    if table == crate::datapath::mn_seg6::ENCAP_TABLE {
                        match crate::datapath::mn_seg6::set_tunnel_source(
                            std::net::Ipv6Addr::UNSPECIFIED,
                        ) {
                            Ok(()) => removed.push("SRv6 tunnel source".to_string()),
                            Err(e) => tracing::warn!("leftover SRv6 tunnel source: {e}"),
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("leftovers: routes of table {table}: {e}"),
        }
    }
    match rt.rules() {
        Ok(rules) => {
            for r in rules.into_iter().filter(|r| r.protocol == RTPROT_MIP) {
                let what = format!("rule {} (table {})", r.priority, r.table);
                match rt.del_rule(&r) {
                    Ok(()) => removed.push(what),
                    Err(e) => tracing::warn!("leftover {what}: {e}"),
                }
            }
        }
        Err(e) => tracing::warn!("leftovers: rules: {e}"),
    }
    match rt.addresses() {
        Ok(addrs) => {
            for a in addrs
                .into_iter()
                .filter(|a| a.flags & IFA_F_HOMEADDRESS != 0)
            {
                let what = format!(
                    "home address {}/{} (interface {})",
                    a.addr, a.prefix_len, a.index
                );
                match rt.del_address(&a) {
                    Ok(()) => removed.push(what),
                    Err(e) => tracing::warn!("leftover {what}: {e}"),
                }
            }
        }
        Err(e) => tracing::warn!("leftovers: addresses: {e}"),
    }
    match rt.proxy_neighs() {
        Ok(ns) => {
            for n in ns.into_iter().filter(|n| n.protocol == RTPROT_MIP) {
                let what = format!("proxy neighbour {} (interface {})", n.addr, n.index);
                match rt.del_proxy_neigh(n.index, n.addr) {
                    Ok(()) => removed.push(what),
                    Err(e) => tracing::warn!("leftover {what}: {e}"),
                }
            }
        }
        Err(e) => tracing::warn!("leftovers: proxy neighbours: {e}"),
    }
}

fn ip6tables_save() -> io::Result<String> {
    let mut cmd = Command::new("ip6tables-save");
    crate::sys::process::unblock_signals_in_child(&mut cmd);
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rules of `ip6tables-save` output that carry our comment, as (table, arguments of
/// the `-D` that deletes it). `ip6tables -D` accepts a rule in the form `-save` prints it.
/// Lines with quotes are left alone: ours never have any, and splitting them on blanks
/// would not give back the rule.
pub fn marked_rules(save: &str) -> Vec<(String, Vec<String>)> {
    let mut table = None;
    let mut out = Vec::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = Some(t.trim().to_string());
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let ours = words
            .windows(2)
            .any(|w| w[0] == "--comment" && w[1] == COMMENT);
        if !ours || line.contains('"') || line.contains('\'') {
            continue;
        }
        if let Some(t) = &table {
            let mut args = vec!["-D".to_string()];
            args.extend(words.iter().map(|w| w.to_string()));
            out.push((t.clone(), args));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::kernel::KernelObject;
    use crate::datapath::kernel::{plan, tunnel_name, PlanConfig};
    use crate::datapath::Binding;
    use crate::sys::xfrm::{Dir, Selector};

    #[test]
    fn every_kernel_object_of_a_plan_is_recognised_and_nothing_else() {
        let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        let (ha, hoa, coa, cn) = (
            a("2001:db8:1::1"),
            a("2001:db8:1::100"),
            a("2001:db8:41::2"),
            a("2001:db8:10::2"),
        );
        let cfg = PlanConfig {
            cn_route_optimization: true,
            ha_home_interface: None,
            mn: None,
        };
        let objs = plan(
            &cfg,
            &[
                Binding::HomeRegistration { ha, hoa, coa },
                Binding::Correspondent {
                    local: cn,
                    hoa,
                    coa,
                },
            ],
        );
        let (mut policies, mut states, mut tunnels) = (0, 0, 0);
        for o in &objs {
            match o {
                KernelObject::Policy(p) => {
                    assert!(is_our_policy(p), "{p:?}");
                    policies += 1;
                }
                KernelObject::State(s) => {
                    assert!(is_our_state(s), "{s:?}");
                    states += 1;
                }
                KernelObject::Tunnel { name, .. } => {
                    let l = Link {
                        index: 7,
                        name: name.clone(),
                        up: true,
                        running: true,
                        mtu: 1460,
                        kind: Some("ip6tnl".into()),
                        mac: None,
                    };
                    assert!(is_our_tunnel(&l), "{name}");
                    tunnels += 1;
                }
                _ => {}
            }
        }
        assert!(policies > 0 && states > 0 && tunnels == 1);
        // An operator's main policy, an IPsec state, someone else's tunnel are not ours.
        let main = Policy {
            ptype: PolicyType::Main,
            ..Policy::sub(Selector::any(), Dir::Out, 5, vec![])
        };
        assert!(!is_our_policy(&main));
        let low = Policy::sub(Selector::any(), Dir::Out, 100, vec![]);
        assert!(!is_our_policy(&low));
        let esp = State {
            id: crate::sys::xfrm::StateId {
                proto: 50,
                ..State::ro(ha, hoa, IPPROTO_ROUTING, coa).id
            },
            ..State::ro(ha, hoa, IPPROTO_ROUTING, coa)
        };
        assert!(!is_our_state(&esp));
        let name = tunnel_name(ha, coa);
        for (n, kind) in [
            (name.as_str(), Some("gre")),
            ("ip6tnl0", Some("ip6tnl")),
            ("ip6mxyzxyzxy", Some("ip6tnl")),
            ("ip6m0000000", Some("ip6tnl")),
        ] {
            let l = Link {
                index: 7,
                name: n.into(),
                up: true,
                running: true,
                mtu: 1460,
                kind: kind.map(String::from),
                mac: None,
            };
            assert!(!is_our_tunnel(&l), "{n}");
        }
    }

    #[test]
    fn only_rules_with_our_comment_are_picked_with_their_table() {
        let save = "\
# Generated by ip6tables-save v1.8.9 (nf_tables)
*mangle
:OUTPUT ACCEPT [0:0]
-A OUTPUT -s 2001:db8::1/128 -d 2001:db8::2/128 ! -p mobility-header -m comment --comment mip6d -j NFQUEUE --queue-num 6276
-A OUTPUT -m comment --comment mip6d-other -j ACCEPT
-A OUTPUT -m comment --comment \"mip6d but quoted\" -j ACCEPT
COMMIT
*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p mobility-header -m comment --comment mip6d -m addrtype --dst-type LOCAL -j NFQUEUE --queue-num 6275
-A PREROUTING -p mobility-header -j NFQUEUE --queue-num 9
COMMIT
*filter
-A INPUT -m comment --comment mip6d -m conntrack --ctstate INVALID
COMMIT
";
        let got = marked_rules(save);
        let lines: Vec<String> = got
            .iter()
            .map(|(t, a)| format!("{t}: {}", a.join(" ")))
            .collect();
        assert_eq!(
            lines,
            [
                "mangle: -D OUTPUT -s 2001:db8::1/128 -d 2001:db8::2/128 ! -p mobility-header -m comment --comment mip6d -j NFQUEUE --queue-num 6276",
                "raw: -D PREROUTING -p mobility-header -m comment --comment mip6d -m addrtype --dst-type LOCAL -j NFQUEUE --queue-num 6275",
                "filter: -D INPUT -m comment --comment mip6d -m conntrack --ctstate INVALID",
            ]
        );
        assert!(
            marked_rules("-A INPUT -m comment --comment mip6d\n").is_empty(),
            "no table"
        );
    }
}
