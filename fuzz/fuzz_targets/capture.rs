#![no_main]
//! pcap / pcapng reader: never panics, never allocates past its record limit.
use libfuzzer_sys::fuzz_target;
use mip6d::ctl::capture::{ipv6_payload, CaptureReader};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = CaptureReader::new(data) {
        while let Ok(Some(frame)) = reader.next_frame() {
            let _ = ipv6_payload(&frame);
        }
    }
});
