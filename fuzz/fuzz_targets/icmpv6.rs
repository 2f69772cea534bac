#![no_main]
//! ICMPv6 (DHAAD, Mobile Prefix, RA and friends): never panics; accepted messages round-trip.
use libfuzzer_sys::fuzz_target;
use mip6d::wire::icmpv6::Icmpv6Repr;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = Icmpv6Repr::parse(data) {
        let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        let bytes = repr.to_bytes(&src, &dst);
        let again = Icmpv6Repr::parse_checked(&bytes, &src, &dst).expect("re-parse of own emit");
        assert_eq!(again, repr);
    }
});
