//! `sys::xfrm` against two things we did not write: iproute2 (`ip xfrm`, traced with
//! strace, must send byte for byte what our encoders produce for the same objects — even
//! the route-optimisation states this kernel then refuses) and the running kernel (a
//! scratch namespace: install sub-policies, read them back by dump, by get and with
//! `ip xfrm policy list`, delete them; RO states either work or fail the way the MIP6
//! probe says; the monitor drops datagrams not sent by the kernel, and receives a real
//! `XFRM_MSG_ACQUIRE`).

#[path = "support/testbed.rs"]
mod testbed;

use mip6d::sys::netns;
use mip6d::sys::xfrm::codec::*;
use mip6d::sys::xfrm::*;
use std::net::Ipv6Addr;
use std::process::Command;
use testbed::{require, Tool};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// A scratch namespace removed on drop, even when an assertion failed.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("xfrm-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip netns add: {}",
            testbed::text(&out)
        );
        Ns(name)
    }

    fn sh(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .output()
            .unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// The netlink message iproute2 sent for `ip -6 xfrm ARGS` (header fields as strace
/// decoded them, and the bytes after the header).
struct Traced {
    len: usize,
    msg_type: String,
    flags: String,
    payload: Vec<u8>,
}

fn trace_ip_xfrm(ns: &Ns, args: &str) -> Traced {
    let mut cmd = vec![
        "strace",
        "-f",
        "-xx",
        "-s",
        "65536",
        "-e",
        "trace=sendmsg,sendto",
    ];
    cmd.extend(["ip", "-6", "xfrm"]);
    cmd.extend(args.split_whitespace());
    let out = ns.sh(&cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("nlmsg_type=XFRM_MSG_"))
        .unwrap_or_else(|| panic!("no XFRM message traced for `ip xfrm {args}`:\n{err}"));
    let field = |name: &str| -> String {
        let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[at..]
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    let start = line.find("}, \"").map(|i| i + 4).unwrap_or(line.len());
    let hex = &line[start..];
    let hex = &hex[..hex.find('"').unwrap_or(0)];
    let payload = hex
        .split("\\x")
        .filter(|s| !s.is_empty())
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{h}: {e} in {line}")))
        .collect();
    Traced {
        len: field("nlmsg_len").parse().unwrap(),
        msg_type: field("nlmsg_type"),
        flags: field("nlmsg_flags"),
        payload,
    }
}

fn assert_same(ns: &Ns, args: &str, ours: &[u8], msg_type: &str, flags: &str) {
    let t = trace_ip_xfrm(ns, args);
    assert_eq!(t.msg_type, msg_type, "ip xfrm {args}");
    assert_eq!(t.flags, flags, "ip xfrm {args}");
    assert_eq!(t.len, ours.len(), "nlmsg_len of ip xfrm {args}");
    assert_eq!(
        mip6d::hex::encode(&t.payload),
        mip6d::hex::encode(&ours[16..]),
        "bytes after the header differ from `ip xfrm {args}`"
    );
}

#[test]
fn encoding_matches_iproute2_byte_for_byte() {
    require("xfrm_netlink", &[Tool::Ip, Tool::Strace]);
    let ns = Ns::new("ip2");
    let (mn, coa, cn) = (a("2001:db8::1"), a("2001:db8::2"), a("2001:db8::3"));
    const ACK: &str = "NLM_F_REQUEST|NLM_F_ACK";

    let rh2 = State::ro(mn, cn, IPPROTO_ROUTING, coa);
    assert_same(
        &ns,
        "state add src 2001:db8::1 dst 2001:db8::3 proto route2 mode ro coa 2001:db8::2 sel src 2001:db8::1/128 dst 2001:db8::3/128",
        &encode_new_sa(0, &rh2, false),
        "XFRM_MSG_NEWSA",
        ACK,
    );
    let hao = State::ro(cn, mn, IPPROTO_DSTOPTS, coa);
    assert_same(
        &ns,
        "state update src 2001:db8::3 dst 2001:db8::1 proto hao mode ro coa 2001:db8::2 sel src 2001:db8::3/128 dst 2001:db8::1/128",
        &encode_new_sa(0, &hao, true),
        "XFRM_MSG_UPDSA",
        ACK,
    );
    assert_same(
        &ns,
        "state add src :: dst :: proto hao mode ro coa :: flag wildrecv sel src ::/0 dst ::/0",
        &encode_new_sa(0, &State::wildcard_receive(IPPROTO_DSTOPTS), false),
        "XFRM_MSG_NEWSA",
        ACK,
    );
    assert_same(
        &ns,
        "state delete src 2001:db8::1 dst 2001:db8::3 proto route2",
        &encode_del_sa(0, &rh2.id),
        "XFRM_MSG_DELSA",
        ACK,
    );
    assert_same(
        &ns,
        "state get src 2001:db8::1 dst 2001:db8::3 proto route2",
        &encode_get_sa(0, &rh2.id),
        "XFRM_MSG_GETSA",
        "NLM_F_REQUEST",
    );

    let bu = Policy::sub(
        Selector::hosts(mn, cn).mh_type(5),
        Dir::Out,
        2,
        vec![Template::ro(IPPROTO_DSTOPTS, true)],
    );
    assert_same(
        &ns,
        "policy add src 2001:db8::1/128 dst 2001:db8::3/128 proto 135 type 5 dir out ptype sub priority 2 tmpl src :: dst :: proto hao mode ro level use",
        &encode_new_policy(0, &bu, false),
        "XFRM_MSG_NEWPOLICY",
        ACK,
    );
    assert_same(
        &ns,
        "policy delete src 2001:db8::1/128 dst 2001:db8::3/128 proto 135 type 5 dir out ptype sub",
        &encode_del_policy(0, &bu.id()),
        "XFRM_MSG_DELPOLICY",
        ACK,
    );
    let mut block = Policy::sub(Selector::any().icmp6_type(136), Dir::Out, 3, vec![]);
    block.action = PolicyAction::Block;
    assert_same(
        &ns,
        "policy add src ::/0 dst ::/0 proto ipv6-icmp type 136 dir out ptype sub priority 3 action block",
        &encode_new_policy(0, &block, false),
        "XFRM_MSG_NEWPOLICY",
        ACK,
    );
    let trigger = Policy::sub(
        Selector::hosts(Ipv6Addr::UNSPECIFIED, mn),
        Dir::In,
        18,
        vec![Template::trigger(IPPROTO_ROUTING)],
    );
    assert_same(
        &ns,
        "policy update src ::/0 dst 2001:db8::1/128 dir in ptype sub priority 18 tmpl proto route2 mode in_trigger",
        &encode_new_policy(0, &trigger, true),
        "XFRM_MSG_UPDPOLICY",
        ACK,
    );
    assert_same(
        &ns,
        "policy flush ptype sub",
        &encode_flush_policy(0, PolicyType::Sub),
        "XFRM_MSG_FLUSHPOLICY",
        ACK,
    );
    assert_same(
        &ns,
        "state flush",
        &encode_flush_sa(0, 0),
        "XFRM_MSG_FLUSHSA",
        ACK,
    );
}

#[test]
fn live_kernel_accepts_reads_back_and_deletes_sub_policies() {
    require("xfrm_netlink", &[Tool::Ip]);
    let ns = Ns::new("live");
    let (mn, cn) = (a("2001:db8:6::1"), a("2001:db8:6::3"));
    let bu = Policy::sub(
        Selector::hosts(mn, cn).mh_type(5),
        Dir::Out,
        2,
        vec![Template::ro(IPPROTO_DSTOPTS, false)],
    );
    let data_in = Policy::sub(
        Selector::hosts(cn, mn),
        Dir::In,
        15,
        vec![Template::ro(IPPROTO_ROUTING, true)],
    );
    let trigger = Policy::sub(
        Selector::hosts(Ipv6Addr::UNSPECIFIED, mn),
        Dir::In,
        18,
        vec![Template::trigger(IPPROTO_ROUTING)],
    );
    let mut block = Policy::sub(Selector::hosts(mn, cn), Dir::Out, 4, vec![]);
    block.action = PolicyAction::Block;
    let ours = [bu.clone(), data_in.clone(), trigger.clone(), block.clone()];

    let listing = {
        let ours = ours.clone();
        netns::run_in(&ns.0, move || -> std::io::Result<Vec<Policy>> {
            let mut x = Xfrm::open()?;
            for p in &ours {
                x.add_policy(p)?;
            }
            // Adding the same one again is refused: the kernel really holds it.
            let again = x.add_policy(&ours[0]).unwrap_err();
            assert_eq!(errno(&again), Some(libc::EEXIST), "{again}");
            x.policies()
        })
        .unwrap()
        .unwrap()
    };
    assert_eq!(listing.len(), 4, "{listing:#?}");
    for p in &ours {
        let got = listing
            .iter()
            .find(|g| g.sel == p.sel && g.dir == p.dir)
            .unwrap_or_else(|| panic!("{p:?} not in the dump {listing:#?}"));
        assert_eq!(got.ptype, PolicyType::Sub);
        assert_eq!(got.priority, p.priority);
        assert_eq!(got.action, p.action);
        assert_eq!(got.templates, p.templates);
        assert_ne!(got.index, 0, "the kernel assigns an index");
    }

    // iproute2 reads the same objects.
    let out = ns.sh(&["ip", "-6", "xfrm", "policy", "list", "ptype", "sub"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "src 2001:db8:6::1/128 dst 2001:db8:6::3/128 proto mobility-header type 5",
        "dir out priority 2 ptype sub",
        "proto hao reqid 0 mode ro",
        "dir in priority 15 ptype sub",
        "proto route2 reqid 0 mode in_trigger",
        "dir out action block priority 4 ptype sub",
        "level use",
    ] {
        assert!(text.contains(needle), "`{needle}` not in:\n{text}");
    }

    let ids: Vec<PolicyId> = ours.iter().map(Policy::id).collect();
    let (got, after, gone, del_again) = netns::run_in(&ns.0, move || {
        let mut x = Xfrm::open().unwrap();
        let got = x.get_policy(&ids[0]).unwrap();
        for id in &ids {
            x.del_policy(id).unwrap();
        }
        let after = x.policies().unwrap();
        let gone = x.get_policy(&ids[0]).unwrap();
        let del_again = x.del_policy(&ids[0]).unwrap_err();
        (got, after, gone, errno(&del_again))
    })
    .unwrap();
    let got = got.expect("GETPOLICY finds the BU policy");
    assert_eq!(got.priority, 2);
    assert_eq!(got.templates, bu.templates);
    assert!(after.is_empty(), "{after:#?}");
    assert!(gone.is_none());
    assert_eq!(del_again, Some(libc::ENOENT));
    let out = ns.sh(&["ip", "-6", "xfrm", "policy", "list", "ptype", "sub"]);
    assert!(out.stdout.is_empty(), "{}", testbed::text(&out));
}

#[test]
fn live_kernel_route_optimisation_states_work_or_fail_as_without_mip6() {
    require("xfrm_netlink", &[Tool::Ip]);
    let ns = Ns::new("ro");
    let (mn, coa, cn) = (a("2001:db8:7::1"), a("2001:db8:7::2"), a("2001:db8:7::3"));
    let st = State::ro(cn, mn, IPPROTO_ROUTING, coa);
    let result = netns::run_in(&ns.0, move || {
        let mut x = Xfrm::open().unwrap();
        match x.add_state(&st) {
            Ok(()) => {
                let got = x.get_state(&st.id).unwrap();
                x.del_state(&st.id).unwrap();
                Ok((got, x.get_state(&st.id).unwrap()))
            }
            Err(e) => Err(e),
        }
    })
    .unwrap();
    let mip6 = testbed::mip6_kernel("xfrm_netlink");
    match result {
        Ok((got, after)) => {
            assert_ne!(
                mip6,
                Some(false),
                "kernel config says no MIP6, yet RO state added"
            );
            let got = got.expect("GETSA finds the state");
            assert_eq!(got.coaddr, Some(coa));
            assert_eq!(got.mode, XFRM_MODE_ROUTEOPTIMIZATION);
            assert!(after.is_none());
            testbed::ran_supported_branch("xfrm_netlink::route_optimisation_states");
        }
        Err(e) => {
            assert_ne!(mip6, Some(true), "kernel config has MIP6, yet: {e}");
            assert!(
                mip6d::datapath::probe::is_missing_mip6(&e),
                "not the refusal of a kernel without MIP6: {e}"
            );
        }
    }
}

#[test]
fn monitor_drops_foreign_senders_and_hears_a_real_acquire() {
    require("xfrm_netlink", &[Tool::Ip]);
    let ns = Ns::new("mon");
    for cmd in [
        vec!["ip", "link", "set", "lo", "up"],
        vec!["ip", "-6", "addr", "add", "2001:db8:8::1/64", "dev", "lo"],
    ] {
        let out = ns.sh(&cmd);
        assert!(out.status.success(), "{}", testbed::text(&out));
    }
    let (events, foreign) = netns::run_in(&ns.0, || {
        let mut mon = XfrmMonitor::open(Groups {
            acquire: true,
            report: true,
            expire: false,
        })
        .unwrap();
        // A user-space sender forging a REPORT straight to the monitor's port.
        let mut forger = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_XFRM).unwrap();
        forger.bind_auto().unwrap();
        let mut body = vec![IPPROTO_DSTOPTS, 0, 0, 0];
        body.extend_from_slice(&[0u8; 56]);
        let mut forged = Vec::new();
        forged.extend_from_slice(&(16u32 + 60).to_ne_bytes());
        forged.extend_from_slice(&0x20u16.to_ne_bytes());
        forged.extend_from_slice(&[0u8; 10]);
        forged.extend_from_slice(&body);
        let to = netlink_sys::SocketAddr::new(mon.port_id().unwrap(), 0);
        forger.send_to(&forged, &to, 0).unwrap();

        // An ESP policy with no state: the first packet makes the kernel ask for one.
        let mut x = Xfrm::open().unwrap();
        let mut esp = Template::ro(IPPROTO_ESP, false);
        esp.mode = XFRM_MODE_TRANSPORT;
        let mut p = Policy::sub(
            Selector::hosts(Ipv6Addr::UNSPECIFIED, a("2001:db8:8::2")),
            Dir::Out,
            1,
            vec![esp],
        );
        p.ptype = PolicyType::Main;
        x.add_policy(&p).unwrap();
        let udp = std::net::UdpSocket::bind("[2001:db8:8::1]:0").unwrap();
        let _ = udp.send_to(b"x", "[2001:db8:8::2]:9");
        let mut events = Vec::new();
        for _ in 0..50 {
            events.extend(mon.recv().unwrap());
            if !events.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (events, mon.foreign_dropped)
    })
    .unwrap();
    assert_eq!(foreign, 1, "the forged report must be dropped and counted");
    assert!(
        events.iter().all(|e| !matches!(e, XfrmEvent::Report(_))),
        "forged report leaked through: {events:?}"
    );
    let acq = events
        .iter()
        .find_map(|e| match e {
            XfrmEvent::Acquire(a) => Some(a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ACQUIRE: {events:?}"));
    assert_eq!(acq.dst, a("2001:db8:8::2"));
    assert_eq!(acq.proto, IPPROTO_ESP);
    assert_eq!(acq.policy.dir, Dir::Out);
    assert_eq!(acq.policy.priority, 1);
}
