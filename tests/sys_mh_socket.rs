//! `sys::mh_socket` against the running kernel in a scratch namespace: the kernel
//! computes the Mobility Header checksum, ancillary data carries the destination, and
//! the Home Address option / Type 2 Routing Header go out as the RFCs place them — or,
//! on a kernel without CONFIG_IPV6_MIP6, fail the way such a kernel fails (issue #9 runs
//! the MIP6 kernel in a VM).

#[path = "support/scratch_ns.rs"]
mod scratch_ns;
#[path = "support/testbed.rs"]
mod testbed;

use mip6d::sys::mh_socket::{MhSocket, SendOptions};
use mip6d::sys::raw::{RawSocket, IPPROTO_ICMPV6};
use mip6d::sys::xfrm::{Dir, Policy, Selector, State, Template, Xfrm, IPPROTO_ROUTING};
use mip6d::wire::ext_header::DestOptsRepr;
use mip6d::wire::icmpv6::Icmpv6Repr;
use mip6d::wire::mh::{Message, MhRepr};
use scratch_ns::Ns;
use std::net::Ipv6Addr;
use std::time::Duration;
use testbed::{require, Tool};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn mobility_headers_with_kernel_checksum_and_ancillary_data() {
    require("sys_mh_socket", &[Tool::Ip]);
    let ns = Ns::new("mhsock");
    ns.ip(&["link", "set", "lo", "up"]);
    for addr in ["2001:db8::1/128", "2001:db8::2/128"] {
        ns.ip(&["addr", "add", addr, "dev", "lo", "nodad"]);
    }
    ns.ip(&[
        "addr",
        "add",
        "2001:db8:1::100/128",
        "dev",
        "lo",
        "home",
        "nodad",
    ]);
    let mip6 = testbed::mip6_kernel("sys_mh_socket");
    ns.run(move || {
        let (src, dst, hoa) = (a("2001:db8::1"), a("2001:db8::2"), a("2001:db8:1::100"));
        let tx = MhSocket::open().expect("MH socket");
        let rx = MhSocket::open().expect("MH socket");
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let icmp = RawSocket::new(IPPROTO_ICMPV6).unwrap();
        icmp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

        // Plain: a Binding Refresh Request whose checksum field we leave at zero.
        let brr = MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![],
        };
        let mut bytes = brr.to_bytes(&src, &dst);
        bytes[4] = 0;
        bytes[5] = 0;
        tx.send(
            &bytes,
            dst,
            SendOptions {
                src: Some(src),
                ..Default::default()
            },
        )
        .expect("send");
        let got = rx.recv().expect("the BRR arrives");
        assert_eq!((got.src, got.dst), (src, Some(dst)));
        assert!(got.ifindex.is_some_and(|i| i > 0));
        assert_eq!((got.hao, got.rh2), (None, None));
        // The kernel filled in the checksum: our own strict parser accepts it.
        let parsed = MhRepr::parse_checked(&got.bytes, &got.src, &dst).expect("valid checksum");
        assert_eq!(parsed, brr);

        // With a Home Address option: sent after any routing header, as §6.3 places it.
        // Without MIP6 the receiving kernel answers with a Parameter Problem that quotes
        // the packet, which shows exactly what went out.
        let r = tx.send(
            &bytes,
            dst,
            SendOptions {
                src: Some(src),
                hao: Some(hoa),
                ..Default::default()
            },
        );
        if mip6 == Some(true) {
            r.expect("a MIP6 kernel sends a HAO");
        } else {
            r.expect("the HAO is sent as a plain destination option");
            let mut buf = [0u8; 1500];
            let quoted = loop {
                let (n, _) = icmp
                    .recv_from(&mut buf)
                    .expect("a Parameter Problem comes back");
                if let Ok(Icmpv6Repr::ParameterProblem {
                    code: 2, invoking, ..
                }) = Icmpv6Repr::parse(&buf[..n])
                {
                    break invoking;
                }
            };
            assert_eq!(
                quoted[6], 60,
                "Destination Options right after the IPv6 header"
            );
            let d = DestOptsRepr::parse(&quoted[40..]).expect("destination options");
            assert_eq!(d.home_address(), Some(hoa));
            assert_eq!(d.next_header, 135);
            assert!(
                rx.recv().is_err(),
                "a kernel without MIP6 never hands a HAO packet to the MH socket"
            );
        }

        if mip6 == Some(true) {
            // A MIP6 kernel accepts an RH2 only through an XFRM state for it, and keeps
            // the packet only if an inbound policy allows route optimisation: what a
            // mobile node installs (a wildcard receive state, an optional RO template).
            let mut x = Xfrm::open().expect("XFRM socket");
            x.add_state(&State::wildcard_receive(IPPROTO_ROUTING))
                .expect("wildcard RH2 state");
            x.add_policy(&Policy::sub(
                Selector::any(),
                Dir::In,
                1,
                vec![Template::ro(IPPROTO_ROUTING, true)],
            ))
            .expect("inbound RO policy");
        }
        // A Type 2 Routing Header: only a MIP6 kernel may send one (ipv6_datagram_send_ctl).
        // It goes to the care-of address (dst); the receiving MIP6 kernel swaps in the home
        // address, which must be one of its own (a `home` address), and hands the MH on.
        let r = tx.send(
            &bytes,
            dst,
            SendOptions {
                src: Some(src),
                rh2: Some(hoa),
                ..Default::default()
            },
        );
        match mip6 {
            Some(true) => {
                r.expect("a MIP6 kernel sends RH2");
                let got = rx.recv().expect("the MH with RH2 arrives");
                assert_eq!(got.dst, Some(hoa), "delivered to the home address");
                assert_eq!(
                    got.rh2,
                    Some(dst),
                    "the kernel swapped in the care-of address"
                );
                eprintln!("received with RH2: {got:?}");
                testbed::ran_supported_branch("sys_mh_socket::hao_and_rh2");
            }
            _ => assert_eq!(
                r.expect_err("no RH2 without MIP6").raw_os_error(),
                Some(libc::EINVAL)
            ),
        }
    });
}
