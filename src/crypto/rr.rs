//! Return routability (RFC 6275 §5.2): the computations and the correspondent node's
//! nonce table.
//!
//! ```text
//! home keygen token    = First(64, HMAC_SHA1(Kcn, (home address | nonce | 0)))   §5.2.5
//! care-of keygen token = First(64, HMAC_SHA1(Kcn, (care-of address | nonce | 1)))
//! Kbm                  = SHA1(home keygen token | care-of keygen token)         §5.2.5
//! Kbm (deletion)       = SHA1(home keygen token)
//! Authenticator        = First(96, HMAC_SHA1(Kbm, (care-of address |            §6.2.7
//!                                  correspondent | MH Data)))
//! ```
//!
//! Nothing here reads a clock: the nonce table is driven by the `now` its caller passes,
//! and randomness comes from a `ring::rand::SecureRandom` the caller owns.

use ring::error::Unspecified;
use ring::rand::SecureRandom;
use ring::{digest, hmac};
use std::fmt;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// Length of Kcn: "a 20-octet secret key" (RFC 6275 §5.2.1), the HMAC-SHA1 block-friendly
/// key size.
pub const KCN_LEN: usize = 20;
/// Nonce length: 64 bits recommended (RFC 6275 §5.2.2).
pub const NONCE_LEN: usize = 8;
/// Cookie length: 64 bits (RFC 6275 §5.2.3).
pub const COOKIE_LEN: usize = 8;
/// Keygen token length: first 64 bits of the HMAC (RFC 6275 §5.2.5).
pub const TOKEN_LEN: usize = 8;
/// Kbm length: a full SHA-1 digest (RFC 6275 §5.2.5).
pub const KBM_LEN: usize = 20;
/// Authenticator length: first 96 bits of the HMAC (RFC 6275 §6.2.7).
pub const AUTHENTICATOR_LEN: usize = 12;

const MAX_NONCE_LIFETIME_SECS: u64 = 240;
const MAX_TOKEN_LIFETIME_SECS: u64 = 210;

/// RFC 6275 §12: a correspondent node MUST NOT accept a nonce longer than this after its
/// first use (§5.2.7).
pub const MAX_NONCE_LIFETIME: Duration = Duration::from_secs(MAX_NONCE_LIFETIME_SECS);
/// RFC 6275 §12: a token should stay acceptable at least this long after it was sent
/// (§5.2.7), and a mobile node SHOULD NOT use it after that.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(MAX_TOKEN_LIFETIME_SECS);
/// How often the nonce table moves to a new nonce (and Kcn).
///
/// RFC 6275 §5.2.7 suggests exactly this: with a new nonce every
/// `MAX_NONCE_LIFETIME - MAX_TOKEN_LIFETIME` = 30 s, a nonce handed out at any moment of
/// its 30 s as current was first used at most 30 s earlier, so the token built on it stays
/// acceptable for at least `MAX_TOKEN_LIFETIME` after it was sent, while nothing is
/// accepted beyond `MAX_NONCE_LIFETIME` after first use.
pub const NONCE_REGEN_INTERVAL: Duration =
    Duration::from_secs(MAX_NONCE_LIFETIME_SECS - MAX_TOKEN_LIFETIME_SECS);
/// Slots in the nonce ring.
///
/// A nonce is current for 30 s and then acceptable for at most 240 s after its first use,
/// so at most 9 are live at once (240/30 + the current one); 16 leaves room for a caller
/// that rotates late and, being a power of two dividing 2^16, keeps `index % 16` stable
/// across the wrap of the 16-bit nonce index. umip uses 16 too.
pub const NONCE_RING: usize = 16;

/// A nonce (RFC 6275 §5.2.2). Not secret: it travels in HoT/CoT; its index names it.
pub type Nonce = [u8; NONCE_LEN];
/// A 16-bit nonce index as carried in HoT, CoT and the Nonce Indices option (§6.2.6).
pub type NonceIndex = u16;
/// A home or care-of keygen token (RFC 6275 §5.2.5).
pub type KeygenToken = [u8; TOKEN_LEN];
/// The binding management key (RFC 6275 §5.2.5).
pub type Kbm = [u8; KBM_LEN];
/// The Binding Authorization Data authenticator (RFC 6275 §6.2.7).
pub type Authenticator = [u8; AUTHENTICATOR_LEN];
/// A home init or care-of init cookie (RFC 6275 §5.2.3).
pub type Cookie = [u8; COOKIE_LEN];

/// The correspondent node's secret key (RFC 6275 §5.2.1).
///
/// `Debug` does not print the key, so it cannot leak into logs; there is deliberately no
/// `PartialEq`, which would be a timing oracle.
#[derive(Clone)]
pub struct Kcn([u8; KCN_LEN]);

impl Kcn {
    /// A fixed key, for tests and known-answer vectors.
    pub fn from_bytes(bytes: [u8; KCN_LEN]) -> Self {
        Kcn(bytes)
    }

    /// A fresh random key (RFC 6275 §5.2.1: "generated with a random number generator").
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Unspecified> {
        random(rng).map(Kcn)
    }

    pub fn as_bytes(&self) -> &[u8; KCN_LEN] {
        &self.0
    }
}

impl fmt::Debug for Kcn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kcn(<secret>)")
    }
}

/// Which keygen token: the final byte of the HMAC input tells them apart so that a home
/// token can never be replayed as a care-of token (RFC 6275 §5.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Home,
    CareOf,
}

impl TokenKind {
    fn id(self) -> u8 {
        match self {
            TokenKind::Home => 0,
            TokenKind::CareOf => 1,
        }
    }
}

fn random<const N: usize>(rng: &dyn SecureRandom) -> Result<[u8; N], Unspecified> {
    let mut out = [0u8; N];
    rng.fill(&mut out)?;
    Ok(out)
}

fn first<const N: usize>(tag: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&tag[..N]);
    out
}

/// A fresh nonce (RFC 6275 §5.2.2).
pub fn generate_nonce(rng: &dyn SecureRandom) -> Result<Nonce, Unspecified> {
    random(rng)
}

/// A fresh home init or care-of init cookie for a HoTI/CoTI (RFC 6275 §5.2.3).
///
/// The mobile node checks that HoT/CoT echo it, which is what stops an off-path attacker
/// from answering a test it never saw; so each HoTI/CoTI (retransmissions included) gets
/// new random bytes rather than a counter.
pub fn generate_cookie(rng: &dyn SecureRandom) -> Result<Cookie, Unspecified> {
    random(rng)
}

/// A home or care-of keygen token (RFC 6275 §5.2.5): the first 64 bits of
/// HMAC-SHA1(Kcn, address ‖ nonce ‖ 0 for home / 1 for care-of).
///
/// `addr` is the home address for [`TokenKind::Home`] (the source of the HoTI as the CN
/// sees it through the tunnel) and the care-of address for [`TokenKind::CareOf`].
pub fn keygen_token(kcn: &Kcn, addr: &Ipv6Addr, nonce: &Nonce, kind: TokenKind) -> KeygenToken {
    // SHA-1 is what RFC 6275 mandates; within HMAC its collision weakness does not apply.
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &kcn.0);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&addr.octets());
    ctx.update(nonce);
    ctx.update(&[kind.id()]);
    first(ctx.sign().as_ref())
}

/// The binding management key (RFC 6275 §5.2.5): SHA1(home token ‖ care-of token).
///
/// Pass `None` for the care-of token when the Binding Update deletes the binding (the
/// mobile node returning home, §5.2.6): the care-of address is then the home address and
/// there is no care-of test, so Kbm is SHA1(home token) alone.
pub fn kbm(home: &KeygenToken, care_of: Option<&KeygenToken>) -> Kbm {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(home);
    if let Some(care_of) = care_of {
        ctx.update(care_of);
    }
    first(ctx.finish().as_ref())
}

/// The Binding Authorization Data authenticator (RFC 6275 §6.2.7): the first 96 bits of
/// HMAC-SHA1(Kbm, care-of address ‖ correspondent address ‖ MH Data).
///
/// `mh_data` is the whole Mobility Header as sent, with the Checksum field zero and the
/// Header Len already final, up to but excluding the 12 authenticator bytes (so the
/// option's own type and length bytes are covered; the option is last, §6.2.7). `coa` is
/// the care-of address of the binding — the HAO address on the correspondent's side — and
/// `cn` the correspondent's own address.
pub fn authenticator(kbm: &Kbm, coa: &Ipv6Addr, cn: &Ipv6Addr, mh_data: &[u8]) -> Authenticator {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, kbm);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&coa.octets());
    ctx.update(&cn.octets());
    ctx.update(mh_data);
    first(ctx.sign().as_ref())
}

/// Checks a received authenticator in constant time (for equal lengths).
///
/// A wrong length is rejected outright: the length is public (it comes from the option
/// length on the wire), only the content is secret.
pub fn verify_authenticator(
    kbm: &Kbm,
    coa: &Ipv6Addr,
    cn: &Ipv6Addr,
    mh_data: &[u8],
    received: &[u8],
) -> bool {
    let expected = authenticator(kbm, coa, cn, mh_data);
    constant_time_eq(&expected, received)
}

/// Byte-slice equality whose running time does not depend on where the slices differ.
///
/// Written here because ring has no fitting public API: `hmac::verify` compares a full
/// 20-byte tag whereas RFC 6275 truncates to 96 bits, and `ring::constant_time` is
/// deprecated. Every byte is folded into the accumulator and `black_box` hides the
/// accumulator from the optimiser, so it cannot turn the loop into an early exit (a best
/// effort in Rust, as in the `subtle` crate, but enough against a remote timing attacker).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

#[derive(Clone, Debug)]
struct Slot {
    index: NonceIndex,
    nonce: Nonce,
    /// Each nonce has its own Kcn: RFC 6275 §5.2.7 says an update of Kcn SHOULD be done
    /// with an update of a nonce, so that the nonce index names both, and old Kcn values
    /// live exactly as long as their nonces.
    kcn: Kcn,
    generated: Instant,
    /// When this nonce was first handed out in a HoT or CoT; `None` means nobody can
    /// hold a token built on it, so no index naming it is accepted.
    first_used: Option<Instant>,
}

impl Slot {
    fn acceptable_until(&self) -> Option<Instant> {
        self.first_used.map(|t| t + MAX_NONCE_LIFETIME)
    }
}

/// The correspondent node's nonces and keys, indexed by 16-bit nonce index
/// (RFC 6275 §5.2.2, §5.2.7).
///
/// The rule implemented (§5.2.7): a nonce is acceptable from its first use until
/// [`MAX_NONCE_LIFETIME`] after it, inclusive — the CN "MUST NOT accept nonces beyond
/// MAX_NONCE_LIFETIME seconds after the first use" — and a new nonce (with a new Kcn)
/// becomes current every [`NONCE_REGEN_INTERVAL`], which keeps every token acceptable for
/// at least [`MAX_TOKEN_LIFETIME`] after it was sent. Validity is measured from first use,
/// not generation, so a nonce that sat unused costs the mobile node nothing.
///
/// §5.2.8 makes the binding cache keep a binding and its sequence number for as long as
/// the nonces that authorised it are acceptable; [`NonceTable::acceptable_until`] tells
/// it how long that is.
///
/// Sans-IO: arm a timer for [`NonceTable::poll_timeout`] and call
/// [`NonceTable::rotate_if_due`] when it fires (or before answering a HoTI/CoTI).
#[derive(Clone, Debug)]
pub struct NonceTable {
    slots: [Option<Slot>; NONCE_RING],
    current: NonceIndex,
}

fn slot_of(index: NonceIndex) -> usize {
    usize::from(index) % NONCE_RING
}

impl NonceTable {
    /// A table with a random first Kcn, nonce and nonce index.
    ///
    /// The first index is random so that after a restart the CN is unlikely to reuse an
    /// index a mobile node still holds from before; such a BU would fail authentication
    /// anyway (the key is new), but "unknown index" is the clearer answer (§5.2.7).
    pub fn new(rng: &dyn SecureRandom, now: Instant) -> Result<Self, Unspecified> {
        let index = u16::from_be_bytes(random(rng)?);
        Ok(Self::with_initial(
            Kcn::generate(rng)?,
            index,
            generate_nonce(rng)?,
            now,
        ))
    }

    /// A table whose first nonce is given, for tests and known-answer vectors.
    pub fn with_initial(kcn: Kcn, index: NonceIndex, nonce: Nonce, now: Instant) -> Self {
        let mut slots: [Option<Slot>; NONCE_RING] = Default::default();
        slots[slot_of(index)] = Some(Slot {
            index,
            nonce,
            kcn,
            generated: now,
            first_used: None,
        });
        NonceTable {
            slots,
            current: index,
        }
    }

    fn current_slot(&self) -> &Slot {
        self.slots[slot_of(self.current)]
            .as_ref()
            .expect("the current slot is always filled")
    }

    /// The index of the current nonce, without handing it out.
    pub fn current_index(&self) -> NonceIndex {
        self.current
    }

    /// Hands out the current nonce for a HoT or CoT, starting its lifetime if this is its
    /// first use (§5.2.7).
    ///
    /// Call [`rotate_if_due`](Self::rotate_if_due) first: a nonce handed out after its
    /// 30 s as current is still never accepted beyond `MAX_NONCE_LIFETIME`, but the token
    /// would then live less than `MAX_TOKEN_LIFETIME`.
    pub fn current(&mut self, now: Instant) -> (NonceIndex, Nonce) {
        let slot = self.slots[slot_of(self.current)]
            .as_mut()
            .expect("the current slot is always filled");
        slot.first_used.get_or_insert(now);
        (slot.index, slot.nonce)
    }

    /// Builds the keygen token for a HoT ([`TokenKind::Home`], `addr` = home address) or
    /// CoT ([`TokenKind::CareOf`], `addr` = care-of address) from the current nonce.
    pub fn issue_token(
        &mut self,
        addr: &Ipv6Addr,
        kind: TokenKind,
        now: Instant,
    ) -> (NonceIndex, KeygenToken) {
        let (index, nonce) = self.current(now);
        let token = keygen_token(&self.current_slot().kcn, addr, &nonce, kind);
        (index, token)
    }

    fn live(&self, index: NonceIndex, now: Instant) -> Option<&Slot> {
        let slot = self.slots[slot_of(index)].as_ref()?;
        // The slot may hold a different index that shares it (index ± 16·k).
        if slot.index != index {
            return None;
        }
        let until = slot.acceptable_until()?;
        (now <= until).then_some(slot)
    }

    /// The nonce named by `index`, if it is acceptable at `now` (§5.2.7); `None` when the
    /// index is unknown, was never handed out, or is more than `MAX_NONCE_LIFETIME` past
    /// its first use. The caller answers `None` with Binding Acknowledgement status
    /// 136, 137 or 138 (§9.5.1).
    pub fn get(&self, index: NonceIndex, now: Instant) -> Option<Nonce> {
        self.live(index, now).map(|slot| slot.nonce)
    }

    /// Recomputes the keygen token a mobile node should hold for `index`, to verify a
    /// Binding Update (§9.5.1); `None` exactly when [`get`](Self::get) is `None`.
    pub fn token(
        &self,
        index: NonceIndex,
        addr: &Ipv6Addr,
        kind: TokenKind,
        now: Instant,
    ) -> Option<KeygenToken> {
        self.live(index, now)
            .map(|slot| keygen_token(&slot.kcn, addr, &slot.nonce, kind))
    }

    /// The last instant at which `index` is acceptable, if it has been handed out and is
    /// still in the table. The binding cache keeps a binding's sequence number at least
    /// this long (§5.2.8), so a replayed BU built on the same nonces is refused.
    pub fn acceptable_until(&self, index: NonceIndex) -> Option<Instant> {
        let slot = self.slots[slot_of(index)].as_ref()?;
        if slot.index != index {
            return None;
        }
        slot.acceptable_until()
    }

    /// When the current nonce should be replaced.
    pub fn poll_timeout(&self) -> Instant {
        self.current_slot().generated + NONCE_REGEN_INTERVAL
    }

    /// Moves to a new nonce and Kcn if [`poll_timeout`](Self::poll_timeout) has passed;
    /// returns whether it did.
    ///
    /// A caller that was late by several intervals gets one new nonce, not one per missed
    /// interval: the skipped ones would never have been handed out.
    pub fn rotate_if_due(
        &mut self,
        now: Instant,
        rng: &dyn SecureRandom,
    ) -> Result<bool, Unspecified> {
        if now < self.poll_timeout() {
            return Ok(false);
        }
        let kcn = Kcn::generate(rng)?;
        let nonce = generate_nonce(rng)?;
        self.push(kcn, nonce, now);
        Ok(true)
    }

    fn push(&mut self, kcn: Kcn, nonce: Nonce, now: Instant) {
        let index = self.current.wrapping_add(1);
        let slot = &mut self.slots[slot_of(index)];
        // The evicted nonce became current at least 15 intervals (450 s) ago, so its
        // first use is more than MAX_NONCE_LIFETIME behind us.
        debug_assert!(!slot
            .as_ref()
            .and_then(Slot::acceptable_until)
            .is_some_and(|until| until >= now));
        *slot = Some(Slot {
            index,
            nonce,
            kcn,
            generated: now,
            first_used: None,
        });
        self.current = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    // The vector of /work/shared/reference/umip/README.md §4, cross-checked there against
    // umip's compiled build_kgen_token / rr_mn_calc_Kbm / mh_verify_auth_data.
    const KCN: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";
    const HOME_NONCE: &str = "0102030405060708";
    const COA_NONCE: &str = "1112131415161718";
    const HOME_TOKEN: &str = "5dbdab0c8779b6ae";
    const COA_TOKEN: &str = "ff660007f1168468";
    const KBM: &str = "d670ae8e346905be46eb3235b3e3aa6a805e78b1";
    const KBM_DEREG: &str = "94cf3ccfa97cd374abb10f50732ab810fafc1f29";
    const BU: &str = "3b0305000000123480000069040400010002050cf3e88882171e7571638b3a9e";
    const AUTH: &str = "f3e88882171e7571638b3a9e";

    fn hoa() -> Ipv6Addr {
        "2001:db8:1::1234".parse().unwrap()
    }
    fn coa() -> Ipv6Addr {
        "2001:db8:2::abcd".parse().unwrap()
    }
    fn cn() -> Ipv6Addr {
        "2001:db8:3::1".parse().unwrap()
    }
    fn kcn() -> Kcn {
        Kcn::from_bytes(arr(KCN))
    }

    #[test]
    fn umip_vector_tokens() {
        let home = keygen_token(&kcn(), &hoa(), &arr(HOME_NONCE), TokenKind::Home);
        let care_of = keygen_token(&kcn(), &coa(), &arr(COA_NONCE), TokenKind::CareOf);
        assert_eq!(home, arr(HOME_TOKEN));
        assert_eq!(care_of, arr(COA_TOKEN));
        // The kind byte matters: same inputs as home, kind care-of, differs.
        assert_ne!(
            keygen_token(&kcn(), &hoa(), &arr(HOME_NONCE), TokenKind::CareOf),
            home
        );
    }

    #[test]
    fn umip_vector_kbm() {
        assert_eq!(kbm(&arr(HOME_TOKEN), Some(&arr(COA_TOKEN))), arr(KBM));
        assert_eq!(kbm(&arr(HOME_TOKEN), None), arr(KBM_DEREG));
    }

    #[test]
    fn umip_vector_authenticator() {
        let bu = hex(BU);
        let mh_data = &bu[..20];
        let got = authenticator(&arr(KBM), &coa(), &cn(), mh_data);
        assert_eq!(got, arr(AUTH));
        assert_eq!(&bu[20..], &got[..]);
        assert!(verify_authenticator(
            &arr(KBM),
            &coa(),
            &cn(),
            mh_data,
            &bu[20..]
        ));
    }

    #[test]
    fn any_one_bit_change_is_rejected() {
        let bu = hex(BU);
        let (mh_data, auth) = bu.split_at(20);
        let k: Kbm = arr(KBM);
        for bit in 0..AUTHENTICATOR_LEN * 8 {
            let mut bad = auth.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify_authenticator(&k, &coa(), &cn(), mh_data, &bad));
        }
        for bit in 0..mh_data.len() * 8 {
            let mut bad = mh_data.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify_authenticator(&k, &coa(), &cn(), &bad, auth));
        }
        for bit in 0..KBM_LEN * 8 {
            let mut bad = k;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify_authenticator(&bad, &coa(), &cn(), mh_data, auth));
        }
        let mut other = coa().octets();
        other[15] ^= 1;
        assert!(!verify_authenticator(
            &k,
            &Ipv6Addr::from(other),
            &cn(),
            mh_data,
            auth
        ));
        // Swapping CoA and CN is not the same input.
        assert!(!verify_authenticator(&k, &cn(), &coa(), mh_data, auth));
    }

    #[test]
    fn wrong_length_is_rejected() {
        let bu = hex(BU);
        let (mh_data, auth) = bu.split_at(20);
        let k: Kbm = arr(KBM);
        assert!(!verify_authenticator(
            &k,
            &coa(),
            &cn(),
            mh_data,
            &auth[..11]
        ));
        assert!(!verify_authenticator(&k, &coa(), &cn(), mh_data, &[]));
        let mut long = auth.to_vec();
        long.push(0);
        assert!(!verify_authenticator(&k, &coa(), &cn(), mh_data, &long));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(&[], &[]));
        assert!(constant_time_eq(&[1, 2, 3], &[1, 2, 3]));
        assert!(!constant_time_eq(&[1, 2, 3], &[1, 2, 4]));
        assert!(!constant_time_eq(&[0x80, 2, 3], &[0, 2, 3]));
        assert!(!constant_time_eq(&[1, 2], &[1, 2, 3]));
    }

    #[test]
    fn kcn_debug_hides_the_key() {
        let s = format!("{:?}", kcn());
        assert!(!s.to_lowercase().contains("a0"), "{s}");
    }

    #[test]
    fn random_values_come_from_the_rng() {
        let rng = SystemRandom::new();
        let a = generate_cookie(&rng).unwrap();
        let b = generate_cookie(&rng).unwrap();
        assert_ne!(a, b);
        assert_ne!(generate_nonce(&rng).unwrap(), generate_nonce(&rng).unwrap());
        assert_ne!(
            Kcn::generate(&rng).unwrap().as_bytes(),
            Kcn::generate(&rng).unwrap().as_bytes()
        );
    }

    // ---- nonce table under simulated time ----

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn table_tokens_match_the_vector() {
        let t0 = Instant::now();
        let mut home = NonceTable::with_initial(kcn(), 1, arr(HOME_NONCE), t0);
        let (i, tok) = home.issue_token(&hoa(), TokenKind::Home, t0);
        assert_eq!((i, tok), (1, arr(HOME_TOKEN)));
        assert_eq!(
            home.token(1, &hoa(), TokenKind::Home, t0),
            Some(arr(HOME_TOKEN))
        );
        let mut care_of = NonceTable::with_initial(kcn(), 2, arr(COA_NONCE), t0);
        let (i, tok) = care_of.issue_token(&coa(), TokenKind::CareOf, t0);
        assert_eq!((i, tok), (2, arr(COA_TOKEN)));
    }

    #[test]
    fn index_is_acceptable_for_max_nonce_lifetime_after_first_use() {
        let t0 = Instant::now();
        let nonce = [7; 8];
        let mut table = NonceTable::with_initial(kcn(), 100, nonce, t0);
        // Not handed out yet: nobody can hold a token on it.
        assert_eq!(table.get(100, t0), None);
        // First use 20 s after generation; validity counts from there.
        let first_use = t0 + secs(20);
        assert_eq!(table.current(first_use), (100, nonce));
        // A later hand-out does not extend the lifetime.
        table.current(first_use + secs(5));
        for after in [0, 1, 210, 239, 240] {
            assert_eq!(
                table.get(100, first_use + secs(after)),
                Some(nonce),
                "{after} s"
            );
        }
        assert_eq!(
            table.get(
                100,
                first_use + MAX_NONCE_LIFETIME + Duration::from_nanos(1)
            ),
            None
        );
        assert_eq!(table.get(100, first_use + secs(241)), None);
        assert_eq!(
            table.acceptable_until(100),
            Some(first_use + MAX_NONCE_LIFETIME)
        );
        assert_eq!(
            table.token(100, &hoa(), TokenKind::Home, first_use + secs(241)),
            None
        );
    }

    #[test]
    fn rotation_happens_every_interval_in_index_order() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::with_initial(kcn(), 10, [0; 8], t0);
        assert_eq!(table.poll_timeout(), t0 + NONCE_REGEN_INTERVAL);
        assert!(!table.rotate_if_due(t0 + secs(29), &rng).unwrap());
        assert_eq!(table.current_index(), 10);
        let mut tokens = vec![table.issue_token(&hoa(), TokenKind::Home, t0)];
        for k in 1..=5u16 {
            let now = t0 + NONCE_REGEN_INTERVAL * u32::from(k);
            assert_eq!(table.poll_timeout(), now);
            assert!(table.rotate_if_due(now, &rng).unwrap());
            // Only once per interval.
            assert!(!table.rotate_if_due(now, &rng).unwrap());
            assert_eq!(table.current_index(), 10 + k);
            assert_eq!(table.poll_timeout(), now + NONCE_REGEN_INTERVAL);
            tokens.push(table.issue_token(&hoa(), TokenKind::Home, now));
        }
        let now = t0 + secs(150);
        for (index, token) in &tokens {
            // Older indices stay acceptable alongside the current one.
            assert_eq!(
                table.token(*index, &hoa(), TokenKind::Home, now),
                Some(*token)
            );
        }
        // A new Kcn with each nonce (§5.2.7): tokens for the same address differ.
        let mut distinct: Vec<_> = tokens.iter().map(|(_, t)| *t).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), tokens.len());
    }

    #[test]
    fn late_rotation_makes_one_nonce_and_schedules_from_now() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::with_initial(kcn(), 0, [0; 8], t0);
        let late = t0 + secs(1000);
        assert!(table.rotate_if_due(late, &rng).unwrap());
        assert_eq!(table.current_index(), 1);
        assert_eq!(table.poll_timeout(), late + NONCE_REGEN_INTERVAL);
    }

    #[test]
    fn indices_wrap_around_the_ring_and_the_u16() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::with_initial(kcn(), 65533, [0; 8], t0);
        let mut issued = vec![table.current(t0)];
        let mut now = t0;
        for _ in 0..5 {
            now += NONCE_REGEN_INTERVAL;
            assert!(table.rotate_if_due(now, &rng).unwrap());
            issued.push(table.current(now));
        }
        let indices: Vec<_> = issued.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, [65533, 65534, 65535, 0, 1, 2]);
        for (index, nonce) in &issued {
            assert_eq!(table.get(*index, now), Some(*nonce));
        }
    }

    #[test]
    fn unknown_indices_are_rejected() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::with_initial(kcn(), 5, [1; 8], t0);
        table.current(t0);
        // Never issued, ahead of the current index.
        assert_eq!(table.get(6, t0), None);
        // Same ring slot as the live index 5, but a different index.
        assert_eq!(table.get(5 + NONCE_RING as u16, t0), None);
        assert_eq!(table.get(5u16.wrapping_sub(NONCE_RING as u16), t0), None);
        assert_eq!(table.acceptable_until(21), None);
        // Other slots were never filled.
        for i in (0..=u16::MAX).filter(|i| *i != 5) {
            assert_eq!(table.get(i, t0), None, "{i}");
        }
        // After rotation the next index exists but has not been handed out.
        let now = t0 + NONCE_REGEN_INTERVAL;
        table.rotate_if_due(now, &rng).unwrap();
        assert_eq!(table.get(6, now), None);
        assert!(table.get(5, now).is_some());
    }

    #[test]
    fn overwritten_slots_name_the_new_index_only() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::with_initial(kcn(), 0, [0; 8], t0);
        table.current(t0);
        let mut now = t0;
        for _ in 0..NONCE_RING {
            now += NONCE_REGEN_INTERVAL;
            table.rotate_if_due(now, &rng).unwrap();
            table.current(now);
        }
        assert_eq!(table.current_index(), NONCE_RING as u16);
        assert_eq!(table.get(0, now), None);
        assert!(table.get(NONCE_RING as u16, now).is_some());
    }

    /// The §5.2.7 guarantees end to end: a CN rotating on its timer hands out a token
    /// every second for 12 minutes (24 rotations, the ring wraps); checked every second, each token is accepted at least
    /// until MAX_TOKEN_LIFETIME after it was sent and never beyond MAX_NONCE_LIFETIME after
    /// its nonce's first use.
    #[test]
    fn every_token_lives_at_least_max_token_lifetime_and_at_most_max_nonce_lifetime() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::new(&rng, t0).unwrap();
        let mut first_use = std::collections::HashMap::new();
        // (sent at, index, token) of tokens not yet seen expired.
        let mut outstanding = Vec::new();
        let mut expired = 0;
        for s in 0..720u64 {
            let now = t0 + secs(s);
            if now >= table.poll_timeout() {
                assert!(table.rotate_if_due(now, &rng).unwrap());
            }
            let (index, token) = table.issue_token(&coa(), TokenKind::CareOf, now);
            first_use.entry(index).or_insert(now);
            outstanding.push((now, index, token));
            outstanding.retain(|&(sent_at, index, token)| {
                let got = table.token(index, &coa(), TokenKind::CareOf, now);
                if now <= sent_at + MAX_TOKEN_LIFETIME {
                    assert_eq!(got, Some(token), "sent {sent_at:?}, now {now:?}");
                }
                if now > first_use[&index] + MAX_NONCE_LIFETIME {
                    assert_eq!(got, None, "sent {sent_at:?}, now {now:?}");
                    expired += 1;
                    return false;
                }
                true
            });
        }
        assert!(expired > 400, "{expired}");
    }

    #[test]
    fn new_starts_with_an_unused_random_nonce() {
        let rng = SystemRandom::new();
        let t0 = Instant::now();
        let mut table = NonceTable::new(&rng, t0).unwrap();
        let i = table.current_index();
        assert_eq!(table.get(i, t0), None);
        let (j, nonce) = table.current(t0);
        assert_eq!(i, j);
        assert_eq!(table.get(i, t0), Some(nonce));
        assert_eq!(table.poll_timeout(), t0 + NONCE_REGEN_INTERVAL);
    }
}
