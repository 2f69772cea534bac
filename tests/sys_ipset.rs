//! `sys::ipset` against the running kernel, in a scratch namespace: what it creates,
//! adds and removes is what `ipset list` (an independent implementation) sees, and what
//! an ip6tables `-m set` rule matches.

#[path = "support/testbed.rs"]
mod testbed;

use mip6d::sys::{ipset::IpSets, netns};
use std::net::Ipv6Addr;
use std::process::Command;
use testbed::{ip_netns, require, Tool};

struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("ipset-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Ns(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn sets_are_what_ipset_lists_and_what_rules_match() {
    require(
        "sys_ipset",
        &[Tool::Ip, Tool::Ip6tables, Tool::Ipset, Tool::Ping],
    );
    let ns = Ns::new("match");
    ip_netns(&ns.0, &["ip", "link", "set", "lo", "up"]).unwrap();
    for addr in ["2001:db8::1/128", "2001:db8::2/128"] {
        ip_netns(&ns.0, &["ip", "addr", "add", addr, "dev", "lo", "nodad"]).unwrap();
    }
    let name = "mip6d-test";
    netns::run_in(&ns.0, move || {
        let mut s = IpSets::open()?;
        s.create(name)?;
        s.create(name)?; // an identical set is kept, not an error
        s.add(name, a("2001:db8::1"))?;
        s.add(name, a("2001:db8::1"))?; // present already: fine
        s.add(name, a("2001:db8::99"))?;
        assert!(s.contains(name, a("2001:db8::1"))?);
        assert!(!s.contains(name, a("2001:db8::2"))?);
        let mut l = s.list(name)?;
        l.sort();
        assert_eq!(l, vec![a("2001:db8::1"), a("2001:db8::99")]);
        assert_eq!(s.spoofed(), 0);
        s.create("mip6d-other")?;
        let mut names = s.names()?;
        names.sort();
        assert_eq!(names, vec!["mip6d-other".to_string(), name.to_string()]);
        s.destroy("mip6d-other")?;
        Ok(())
    })
    .unwrap()
    .unwrap_or_else(|e: std::io::Error| panic!("ipset: {e}"));

    let listed = ip_netns(&ns.0, &["ipset", "list", name]).unwrap();
    assert!(listed.contains("Type: hash:ip"), "{listed}");
    assert!(listed.contains("family inet6"), "{listed}");
    assert!(
        listed.contains("2001:db8::1\n") && listed.contains("2001:db8::99"),
        "{listed}"
    );

    ip_netns(
        &ns.0,
        &[
            "ip6tables",
            "-A",
            "OUTPUT",
            "-m",
            "set",
            "--match-set",
            name,
            "dst",
            "-j",
            "DROP",
        ],
    )
    .unwrap();
    let ping = |dst: &str| {
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "ping", "-6", "-c1", "-W1", dst])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!ping("2001:db8::1"), "an address in the set is dropped");
    assert!(ping("2001:db8::2"), "an address outside it is not");
    netns::run_in(&ns.0, move || {
        let mut s = IpSets::open()?;
        s.del(name, a("2001:db8::1"))?;
        s.del(name, a("2001:db8::1"))?; // absent already: fine
        Ok(())
    })
    .unwrap()
    .unwrap_or_else(|e: std::io::Error| panic!("ipset: {e}"));
    assert!(
        ping("2001:db8::1"),
        "removed from the set, no longer dropped"
    );

    // A set a rule refers to cannot go; once the rule is gone it can, and twice is fine.
    let busy = netns::run_in(&ns.0, move || IpSets::open()?.destroy(name)).unwrap();
    assert!(busy.is_err(), "destroy while referenced");
    ip_netns(
        &ns.0,
        &[
            "ip6tables",
            "-D",
            "OUTPUT",
            "-m",
            "set",
            "--match-set",
            name,
            "dst",
            "-j",
            "DROP",
        ],
    )
    .unwrap();
    netns::run_in(&ns.0, move || {
        let mut s = IpSets::open()?;
        s.destroy(name)?;
        s.destroy(name)
    })
    .unwrap()
    .unwrap();
    let gone = Command::new("ip")
        .args(["netns", "exec", &ns.0, "ipset", "list", name])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the set is gone");
}
