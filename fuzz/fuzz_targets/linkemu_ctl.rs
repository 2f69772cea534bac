#![no_main]
//! The link emulator's control requests: any line gets an `ok` or `error:` reply, never a
//! panic, and what a `show` prints after a successful `set` parses back.
use libfuzzer_sys::fuzz_target;
use mip6d::linkemu::ctl::Duplex;
use mip6d::linkemu::Params;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let mut d: Duplex<Vec<u8>> = Duplex::new(Params::default(), Params::default(), 1);
    let reply = d.handle(&line, 1_000);
    assert!(reply.ends_with("ok\n") || reply.starts_with("error: "));
    for p in [*d.up.params(), *d.down.params()] {
        let mut back = Params::default();
        back.apply(p.to_string().split(' ')).expect("printed parameters parse");
        assert_eq!(back.to_string(), p.to_string());
    }
    // Frames through whatever was set: no panic on any parameter combination.
    for t in 0..64u64 {
        d.up.enqueue(vec![0; (t as usize * 97) % 1600], t * 1_000);
        while d.up.poll_release(t * 1_000).is_some() {}
        let _ = d.up.poll_timeout();
    }
});
