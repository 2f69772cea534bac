#![no_main]
//! Netlink from the kernel is input too (umip's CVE-2010-2523): the XFRM datagram parser
//! (policies, states, ACQUIRE, REPORT, errors with extended acks) never panics on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mip6d::sys::xfrm::parse_datagram(data);
});
