//! Authenticated messages between mip6d daemons (Distributed Servers membership and
//! connection handoff), with `ring`.
//!
//! The seed prototype sent a plaintext password; here every message is a frame sealed
//! with HMAC-SHA256 under a key shared by the group (`SharedKeyFile` in mip6d.conf):
//!
//! ```text
//! +---------+------+----------------+------------------+---------+------------------+
//! | version | kind | sender node id | counter          | payload | HMAC-SHA256 tag  |
//! | 1 octet | 1    | 4 (big endian) | 8 (big endian)   | ...     | 32 octets        |
//! +---------+------+----------------+------------------+---------+------------------+
//! ```
//!
//! The tag covers everything before it. A receiver trusts a payload only after [`open`]
//! verified the tag *and* its [`ReplayWindow`] accepted the sender's counter. Counters come
//! from a [`CounterSource`] that starts at the wall clock in microseconds, so a node that
//! restarts continues above every counter its peers have seen from it (as long as its
//! clock does not step back by more than the time it was down), without writing state to
//! disk.
//!
//! Each use gets its own subkey ([`SharedKey::derive`], HKDF-SHA256), so a membership
//! message can never be replayed as a handoff message even with equal counters.

use ring::{hkdf, hmac};
use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Frame format version.
pub const VERSION: u8 = 1;
/// Bytes of a frame before the payload.
pub const HEADER_LEN: usize = 1 + 1 + 4 + 8;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Bytes a frame adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Shortest secret accepted: the HMAC-SHA256 output size, so the key is never the weak
/// link.
pub const MIN_SECRET_LEN: usize = 32;
/// How far below the highest counter seen a late message is still accepted.
pub const REPLAY_WINDOW: u64 = 64;

/// Why a key could not be made or loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Fewer than [`MIN_SECRET_LEN`] bytes of secret.
    TooShort { len: usize },
    /// The key file can be read by group or others.
    Permissions { path: String, mode: u32 },
    /// The key file could not be read.
    Io { path: String, error: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooShort { len } => write!(
                f,
                "shared key has {len} bytes of secret; at least {MIN_SECRET_LEN} are needed \
                 (e.g. `head -c 32 /dev/urandom | od -An -tx1 > KEYFILE`)"
            ),
            KeyError::Permissions { path, mode } => write!(
                f,
                "{path}: shared key file is accessible by group or others (mode {mode:03o}); \
                 run `chmod 600 {path}`"
            ),
            KeyError::Io { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a frame was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Shorter than a frame with an empty payload.
    Truncated,
    /// A frame version this code does not speak.
    Version(u8),
    /// The tag does not match: wrong key, or the frame was altered.
    BadTag,
    /// The counter was already accepted from this sender.
    Replay,
    /// The counter is further below the sender's highest than the window reaches.
    TooOld,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Truncated => write!(f, "frame too short"),
            AuthError::Version(v) => write!(f, "unknown frame version {v}"),
            AuthError::BadTag => write!(f, "authentication failed (wrong key or altered)"),
            AuthError::Replay => write!(f, "replayed counter"),
            AuthError::TooOld => write!(f, "counter older than the replay window"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The group's secret, or a subkey derived from it.
#[derive(Clone)]
pub struct SharedKey {
    secret: Vec<u8>,
    hmac: hmac::Key,
}

impl SharedKey {
    pub fn from_bytes(secret: &[u8]) -> Result<SharedKey, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        Ok(SharedKey {
            secret: secret.to_vec(),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// Reads a key file: hex digits (whitespace and `:` ignored, as `od` or `xxd -p`
    /// print them) or, if the file is not hex, its raw bytes. A key readable by anyone
    /// but its owner is refused, as ssh refuses such private keys.
    pub fn load(path: &Path) -> Result<SharedKey, KeyError> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| KeyError::Io {
            path: shown.clone(),
            error: e.to_string(),
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: shown,
                mode: mode & 0o777,
            });
        }
        let raw = std::fs::read(path).map_err(io)?;
        let secret = std::str::from_utf8(&raw)
            .ok()
            .and_then(|text| crate::hex::decode(text).ok())
            .filter(|bytes| !bytes.is_empty())
            .unwrap_or(raw);
        SharedKey::from_bytes(&secret)
    }

    /// An independent key for one purpose ("membership", "handoff"): HKDF-SHA256 with
    /// the purpose as info.
    pub fn derive(&self, purpose: &str) -> SharedKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mip6d shared key v1").extract(&self.secret);
        let info = [purpose.as_bytes()];
        let mut out = [0u8; 32];
        // expand/fill fail only when the requested length exceeds 255 hash lengths; 32
        // bytes from SHA-256 never does.
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let key = SharedKey::from_bytes(&out).expect("32 bytes is long enough");
        out.fill(0);
        key
    }
}

impl Drop for SharedKey {
    fn drop(&mut self) {
        // Best effort: ring keeps its own copy inside `hmac::Key`, which we cannot reach.
        self.secret.fill(0);
        std::hint::black_box(&self.secret);
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedKey({} bytes, redacted)", self.secret.len())
    }
}

fn header(kind: u8, sender: u32, counter: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = VERSION;
    h[1] = kind;
    h[2..6].copy_from_slice(&sender.to_be_bytes());
    h[6..14].copy_from_slice(&counter.to_be_bytes());
    h
}

/// Builds a frame: header, payload, tag.
pub fn seal(key: &SharedKey, kind: u8, sender: u32, counter: u64, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(OVERHEAD + payload.len());
    frame.extend_from_slice(&header(kind, sender, counter));
    frame.extend_from_slice(payload);
    let tag = hmac::sign(&key.hmac, &frame);
    frame.extend_from_slice(tag.as_ref());
    frame
}

/// What an authentic frame says. Check the counter with a [`ReplayWindow`] before acting
/// on the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    pub kind: u8,
    pub sender: u32,
    pub counter: u64,
    pub payload: &'a [u8],
}

/// Verifies a frame's tag (in constant time) and splits it.
pub fn open<'a>(key: &SharedKey, frame: &'a [u8]) -> Result<Opened<'a>, AuthError> {
    if frame.len() < OVERHEAD {
        return Err(AuthError::Truncated);
    }
    let (signed, tag) = frame.split_at(frame.len() - TAG_LEN);
    // The tag is checked before anything else is believed, the version included: an
    // unauthenticated frame must not be able to tell us which parser to run.
    hmac::verify(&key.hmac, signed, tag).map_err(|_| AuthError::BadTag)?;
    if signed[0] != VERSION {
        return Err(AuthError::Version(signed[0]));
    }
    let sender = u32::from_be_bytes([signed[2], signed[3], signed[4], signed[5]]);
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&signed[6..14]);
    Ok(Opened {
        kind: signed[1],
        sender,
        counter: u64::from_be_bytes(counter),
        payload: &signed[HEADER_LEN..],
    })
}

/// A sender's strictly increasing counters.
#[derive(Debug, Clone)]
pub struct CounterSource {
    next: u64,
}

impl CounterSource {
    /// Starts at `now_unix_micros` (the caller reads the clock; see the module doc for
    /// why the wall clock).
    pub fn new(now_unix_micros: u64) -> CounterSource {
        CounterSource {
            next: now_unix_micros,
        }
    }

    // Not an Iterator: the sequence never ends, and an `Option` would only invite
    // `unwrap`s at every call site.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let c = self.next;
        self.next = self.next.saturating_add(1);
        c
    }
}

/// Replay protection, per sender: the highest counter accepted and a bitmap of which of
/// the [`REPLAY_WINDOW`] counters below it were seen, so reordered messages still pass
/// once each.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    senders: HashMap<u32, (u64, u64)>,
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// Accepts `counter` from `sender` once. Call only for frames [`open`] verified:
    /// a forged frame must not move the window.
    pub fn accept(&mut self, sender: u32, counter: u64) -> Result<(), AuthError> {
        let Some((highest, seen)) = self.senders.get_mut(&sender) else {
            self.senders.insert(sender, (counter, 1));
            return Ok(());
        };
        if counter > *highest {
            let shift = counter - *highest;
            *seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                *seen << shift
            };
            *seen |= 1;
            *highest = counter;
            return Ok(());
        }
        let back = *highest - counter;
        if back >= REPLAY_WINDOW {
            return Err(AuthError::TooOld);
        }
        let bit = 1u64 << back;
        if *seen & bit != 0 {
            return Err(AuthError::Replay);
        }
        *seen |= bit;
        Ok(())
    }

    /// Forgets a sender (e.g. removed from the group), so the table stays bounded by the
    /// group's size.
    pub fn forget(&mut self, sender: u32) {
        self.senders.remove(&sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SharedKey {
        SharedKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn seal_then_open() {
        let k = key(7);
        let frame = seal(&k, 3, 42, 1_000_000, b"hello");
        assert_eq!(frame.len(), OVERHEAD + 5);
        let o = open(&k, &frame).unwrap();
        assert_eq!(
            (o.kind, o.sender, o.counter, o.payload),
            (3, 42, 1_000_000, &b"hello"[..])
        );
        let empty = seal(&k, 0, 0, 0, b"");
        assert_eq!(open(&k, &empty).unwrap().payload, b"");
    }

    #[test]
    fn tag_is_hmac_sha256_over_header_and_payload() {
        // Recompute independently of `seal`'s code path with ring's one-shot API over a
        // hand-built header.
        let k = key(1);
        let frame = seal(&k, 9, 0x0102_0304, 0x0a0b_0c0d_0e0f_1011, b"xy");
        let mut signed = vec![
            1, 9, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
        ];
        signed.extend_from_slice(b"xy");
        assert_eq!(&frame[..signed.len()], &signed[..]);
        let expect = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]), &signed);
        assert_eq!(&frame[signed.len()..], expect.as_ref());
    }

    #[test]
    fn every_altered_bit_and_wrong_key_fail() {
        let k = key(7);
        let frame = seal(&k, 1, 5, 77, b"payload");
        for i in 0..frame.len() {
            for bit in 0..8 {
                let mut f = frame.clone();
                f[i] ^= 1 << bit;
                assert_eq!(open(&k, &f), Err(AuthError::BadTag), "byte {i} bit {bit}");
            }
        }
        assert_eq!(open(&key(8), &frame), Err(AuthError::BadTag));
        for len in 0..OVERHEAD {
            assert_eq!(open(&k, &frame[..len]), Err(AuthError::Truncated));
        }
    }

    #[test]
    fn unknown_version_is_reported_only_when_authentic() {
        let k = key(7);
        let mut f = seal(&k, 1, 5, 77, b"p");
        f[0] = 2;
        let n = f.len() - TAG_LEN;
        let tag = hmac::sign(&k.hmac, &f[..n]);
        f[n..].copy_from_slice(tag.as_ref());
        assert_eq!(open(&k, &f), Err(AuthError::Version(2)));
    }

    #[test]
    fn derived_keys_are_independent() {
        let k = key(7);
        let m = k.derive("membership");
        let h = k.derive("handoff");
        let frame = seal(&m, 1, 1, 1, b"x");
        assert!(open(&m, &frame).is_ok());
        assert_eq!(open(&h, &frame), Err(AuthError::BadTag));
        assert_eq!(open(&k, &frame), Err(AuthError::BadTag));
        // Deterministic: two nodes derive the same subkey from the same secret.
        assert!(open(&key(7).derive("membership"), &frame).is_ok());
    }

    #[test]
    fn short_secret_refused() {
        assert_eq!(
            SharedKey::from_bytes(&[0; 31]).unwrap_err(),
            KeyError::TooShort { len: 31 }
        );
        assert!(format!("{:?}", key(0x41)).contains("redacted"));
        assert!(!format!("{:?}", key(0x41)).contains("65"));
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(1, 100), Ok(()));
        assert_eq!(w.accept(1, 100), Err(AuthError::Replay));
        assert_eq!(w.accept(2, 100), Ok(()), "senders are independent");
        assert_eq!(w.accept(1, 105), Ok(()));
        assert_eq!(w.accept(1, 103), Ok(()), "late but inside the window");
        assert_eq!(w.accept(1, 103), Err(AuthError::Replay));
        assert_eq!(w.accept(1, 100), Err(AuthError::Replay));
        assert_eq!(w.accept(1, 101), Ok(()));
        assert_eq!(w.accept(1, 105 + REPLAY_WINDOW - 1), Ok(()));
        assert_eq!(
            w.accept(1, 105),
            Err(AuthError::Replay),
            "still in the window"
        );
        assert_eq!(w.accept(1, 104), Err(AuthError::TooOld));
        assert_eq!(
            w.accept(1, 1000),
            Ok(()),
            "a jump beyond the window clears it"
        );
        assert_eq!(w.accept(1, 999), Ok(()));
        assert_eq!(w.accept(1, 1000 - REPLAY_WINDOW), Err(AuthError::TooOld));
        w.forget(1);
        assert_eq!(w.accept(1, 5), Ok(()));
    }

    #[test]
    fn replay_window_matches_a_set_model() {
        // Against a plain set of accepted counters: a counter passes iff it is new and
        // within the window below the highest accepted so far.
        let mut rng = crate::testutil::XorShift(0x5eed);
        let mut w = ReplayWindow::new();
        let mut accepted = std::collections::HashSet::new();
        let mut highest: Option<u64> = None;
        for _ in 0..20_000 {
            let c = 1000 + rng.next() % 300;
            let expect = match highest {
                None => true,
                Some(h) => !accepted.contains(&c) && (c > h || h - c < REPLAY_WINDOW),
            };
            assert_eq!(
                w.accept(9, c).is_ok(),
                expect,
                "counter {c}, highest {highest:?}"
            );
            if expect {
                accepted.insert(c);
                highest = Some(highest.map_or(c, |h| h.max(c)));
            }
        }
    }

    #[test]
    fn counters_increase_from_the_clock() {
        let mut c = CounterSource::new(1_700_000_000_000_000);
        assert_eq!(c.next(), 1_700_000_000_000_000);
        assert_eq!(c.next(), 1_700_000_000_000_001);
    }

    #[test]
    fn load_hex_raw_and_permissions() {
        let dir = std::env::temp_dir().join(format!("mip6d-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hex_path = dir.join("hex.key");
        std::fs::write(&hex_path, " 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f\n").unwrap();
        std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let from_hex = SharedKey::load(&hex_path).unwrap();
        let bytes: Vec<u8> = (0..32).collect();
        let frame = seal(&SharedKey::from_bytes(&bytes).unwrap(), 0, 0, 0, b"");
        assert!(open(&from_hex, &frame).is_ok());

        let raw_path = dir.join("raw.key");
        std::fs::write(&raw_path, [0xffu8; 40]).unwrap();
        std::fs::set_permissions(&raw_path, std::fs::Permissions::from_mode(0o400)).unwrap();
        let frame = seal(&SharedKey::from_bytes(&[0xff; 40]).unwrap(), 0, 0, 0, b"");
        assert!(open(&SharedKey::load(&raw_path).unwrap(), &frame).is_ok());

        std::fs::set_permissions(&raw_path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = SharedKey::load(&raw_path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");

        let short = dir.join("short.key");
        std::fs::write(&short, "abcd\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            SharedKey::load(&short).unwrap_err(),
            KeyError::TooShort { len: 2 }
        );
        assert!(matches!(
            SharedKey::load(&dir.join("missing")),
            Err(KeyError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
