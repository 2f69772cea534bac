#![no_main]
//! Netlink from the kernel is input too (umip's CVE-2010-2523): the nfqueue datagram
//! parser never panics on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mip6d::sys::nfqueue::parse_datagram(data);
});
