#![no_main]
//! Connection-state decoder (bytes from another server node): never panics, never accepts
//! a queue beyond the limits, and whatever it accepts re-encodes to the same bytes.
use libfuzzer_sys::fuzz_target;
use mip6d::ds::conn_state::{ConnState, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_send_queue: 4096,
        max_recv_queue: 4096,
    };
    if let Ok(state) = ConnState::decode(data, &limits) {
        assert!(state.send_queue.len() <= 4096 && state.recv_queue.len() <= 4096);
        assert_eq!(state.encode(), data);
        assert_eq!(state.encoded_len(), data.len());
    }
});
