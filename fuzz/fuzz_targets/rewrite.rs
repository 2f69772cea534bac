#![no_main]
//! User data path rewrites on packets from the wire: never panic, and each receive-side
//! rewrite undoes its send-side twin.
use libfuzzer_sys::fuzz_target;
use mip6d::datapath::rewrite;
use std::net::Ipv6Addr;

const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x41, 0, 0, 0, 0, 0x100);
const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

fuzz_target!(|data: &[u8]| {
    // Receive side on hostile input.
    for f in [rewrite::receive_hao, rewrite::receive_rh2] {
        let mut p = data.to_vec();
        let _ = f(&mut p);
    }
    let mut p = data.to_vec();
    let _ = rewrite::decapsulate(&mut p);

    // Round trips on whatever the send side accepts.
    let mut p = data.to_vec();
    if rewrite::encapsulate(&mut p, COA, HA, 64).is_ok() {
        rewrite::decapsulate(&mut p).expect("decapsulate what we encapsulated");
        // Bytes past the IPv6 Payload Length (link-layer padding) are not part of the
        // packet; the tunnel carries only the packet.
        let declared = 40 + usize::from(u16::from_be_bytes([data[4], data[5]]));
        assert_eq!(
            p,
            &data[..declared.min(data.len())],
            "encapsulate/decapsulate changed the packet"
        );
    }
});
