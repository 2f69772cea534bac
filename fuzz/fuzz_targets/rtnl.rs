#![no_main]
//! Netlink from the kernel is input too (umip's CVE-2010-2523): the rtnetlink datagram
//! parser (framing, extended ACKs, links, addresses, routes, rules, neighbours) never
//! panics on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mip6d::sys::rtnl::parse::parse_datagram(data);
    // The same bytes as one message whatever its length field says.
    let _ = mip6d::sys::rtnl::parse::parse_message(data);
});
