#![no_main]
//! The handoff authentication hello: an acceptor answering hostile bytes and a donor
//! reading hostile answers must not panic, and nothing without the key is welcomed.
use libfuzzer_sys::fuzz_target;
use mip6d::crypto::auth::SharedKey;
use mip6d::ds::hello::{self, ANSWER_HEAD, NONCE_LEN};

fuzz_target!(|data: &[u8]| {
    let key = SharedKey::from_bytes(&[7; 32]).expect("32 bytes");
    let (reply, from) = hello::answer(&key, 2, 1, data);
    assert!(from.is_none(), "welcomed bytes nobody sealed");
    assert!(hello::is_hello(&reply));
    let nonce = [1; NONCE_LEN];
    if data.len() >= ANSWER_HEAD {
        let head: [u8; ANSWER_HEAD] = data[..ANSWER_HEAD].try_into().expect("length");
        let _ = hello::answer_head(2, &head);
    }
    assert!(hello::check_welcome(&key, 1, 2, &nonce, data).is_err());
    if data.len() >= 4 {
        let _ = hello::frame_len([data[0], data[1], data[2], data[3]]);
    }
});
