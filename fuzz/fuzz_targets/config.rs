#![no_main]
//! mip6d.conf parser: never panics; what it accepts prints as --show-config text that
//! parses back to the same configuration.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mip6d::config::fuzz_one(data);
});
