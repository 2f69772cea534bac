#![no_main]
//! Netlink from the kernel is input too (umip's CVE-2010-2523): the generic message and
//! attribute walkers, and the ipset list parser on top of them, never panic.
use libfuzzer_sys::fuzz_target;
use mip6d::sys::{ipset, netlink};

fuzz_target!(|data: &[u8]| {
    if let Ok(msgs) = netlink::messages(data) {
        for m in msgs {
            let _ = netlink::reply(&m);
            if let Ok(attrs) = netlink::attrs(m.body) {
                for a in attrs {
                    let _ = netlink::attrs(a.value);
                }
            }
            let _ = ipset::parse_list_message(m.body);
        }
    }
});
