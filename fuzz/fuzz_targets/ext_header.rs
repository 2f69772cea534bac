#![no_main]
//! Destination Options (Home Address option) and Type 2 Routing Header: never panic;
//! accepted headers round-trip.
use libfuzzer_sys::fuzz_target;
use mip6d::wire::ext_header::{DestOptsRepr, Type2RoutingRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = DestOptsRepr::parse(data) {
        let again = DestOptsRepr::parse(&repr.to_bytes()).expect("re-parse of own emit");
        assert_eq!(again, repr);
    }
    if let Ok(repr) = Type2RoutingRepr::parse(data) {
        let again = Type2RoutingRepr::parse(&repr.to_bytes()).expect("re-parse of own emit");
        assert_eq!(again, repr);
    }
});
