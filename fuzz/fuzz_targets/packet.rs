#![no_main]
//! Whole-packet walker plus the decoder's human and JSON rendering: never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = mip6d::wire::packet::parse(data) {
        let _ = mip6d::ctl::decode::render_text(&packet, None);
        let _ = mip6d::ctl::decode::render_json(0, data, &packet, &[]);
    }
    // With a key, the Binding Authorization Data path runs too.
    if let Ok(packet) = mip6d::wire::packet::parse(data) {
        let _ = mip6d::ctl::decode::render_json(0, data, &packet, &[[7u8; 20], [9u8; 20]]);
    }
});
