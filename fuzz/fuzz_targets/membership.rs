#![no_main]
//! Distributed Servers membership: the codec on hostile bytes (strict, round-trips what it
//! accepts), and a node fed the same bytes both as a raw frame and sealed with the group's
//! key as an authentic payload — nothing an authenticated peer sends may panic it.
use libfuzzer_sys::fuzz_target;
use mip6d::crypto::auth::{self, SharedKey};
use mip6d::ds::membership::codec::FRAME_KIND;
use mip6d::ds::membership::{Config, Durable, Message, Node, Role};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        assert_eq!(Message::decode(&m.encode()).as_ref(), Ok(&m), "round trip");
    }
    if let Ok(d) = Durable::decode(data) {
        assert_eq!(Durable::decode(&d.encode()).as_ref(), Ok(&d), "round trip");
    }

    let key = SharedKey::from_bytes(&[7; 32]).expect("32 bytes");
    let now = Instant::now();
    let cfg = Config {
        id: 1,
        role: if data.first().is_some_and(|b| b & 1 == 1) {
            Role::Snode
        } else {
            Role::Backup
        },
        genesis: vec![1, 2, 3],
        heartbeat: Duration::from_millis(100),
        failure_timeout: Duration::from_millis(300),
        register_interval: Duration::from_secs(1),
    };
    let mut node = Node::new(cfg, &key, None, now, 1);
    node.handle_frame(data, now);
    // The same bytes as a payload from each peer, then time passing.
    let mkey = key.derive("membership");
    for (i, sender) in [2u32, 3, 9].into_iter().enumerate() {
        let frame = auth::seal(&mkey, FRAME_KIND, sender, 10 + i as u64, data);
        node.handle_frame(&frame, now + Duration::from_millis(i as u64));
        while node.poll_action().is_some() {}
    }
    for step in 1..5u64 {
        node.handle_timeout(now + Duration::from_millis(150 * step));
        while node.poll_action().is_some() {}
    }
});
