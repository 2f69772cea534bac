#![no_main]
//! The redirect's two halves on packets from the network (the client's Care-of Test and
//! Binding Acknowledgement at the acceptor, its Home Test at the contact; the acceptor's
//! per-connection data path on both queues): never panic, and random bytes never bind.
use libfuzzer_sys::fuzz_target;
use mip6d::datapath::conn_binding::ConnBinding;
use mip6d::ds::conn_state::HomeKeygen;
use mip6d::ds::redirect::{Binder, BinderAction, HomeTest};
use std::net::Ipv6Addr;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let (dsa, coa, cn): (Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
        "2001:db8:1::200".parse().unwrap(),
        "2001:db8:32::2".parse().unwrap(),
        "2001:db8:10::2".parse().unwrap(),
    );
    let now = Instant::now();
    let home = HomeKeygen {
        nonce_index: 1,
        token: [2; 8],
    };
    let (mut b, _) = Binder::start(dsa, coa, cn, home, None, 7, [3; 8], now);
    for a in b.handle_packet(data, now) {
        assert!(!matches!(a, BinderAction::Bound { .. }));
    }
    let (mut ht, _) = HomeTest::start(dsa, cn, ("2001:db8:31::2".parse().unwrap(), dsa), [4; 8], now);
    let _ = ht.handle_mh(cn, data);
    let path = ConnBinding {
        local: std::net::SocketAddrV6::new(dsa, 8000, 0, 0),
        peer: std::net::SocketAddrV6::new(cn, 40000, 0, 0),
        coa,
    };
    let _ = path.incoming(data);
    let _ = path.outgoing(data);
});
