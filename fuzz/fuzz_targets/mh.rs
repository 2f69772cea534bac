#![no_main]
//! Mobility Header parser: never panics, and whatever it accepts re-emits to bytes that
//! parse back to the same message.
use libfuzzer_sys::fuzz_target;
use mip6d::wire::mh::MhRepr;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = MhRepr::parse(data) {
        let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        let bytes = repr.to_bytes(&src, &dst);
        assert_eq!(bytes.len(), repr.buffer_len());
        let again = MhRepr::parse_checked(&bytes, &src, &dst).expect("re-parse of own emit");
        assert_eq!(again, repr);
    }
});
