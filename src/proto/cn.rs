//! The correspondent node (RFC 6275 §9): return routability responder, Binding Update
//! verification, the route-optimisation binding cache, Binding Refresh Requests and
//! Binding Errors. Sans-IO: see [`crate::proto::event`].
//!
//! # Choices where the RFC leaves room (and why)
//! - **Order of the Binding Update checks.** §9.5.1 lists the tests without an order but
//!   says every failure except an out-of-window sequence number (135), a registration
//!   type change (139) and an expired nonce (136–138) is a silent discard. We check:
//!   home address routable → options present (Nonce Indices, Binding Authorization
//!   Data) → nonce indices known (136/137/138, unauthenticated: no Kbm can be computed)
//!   → authenticator (silent drop) → sequence (135) → policy (129) → resources (130).
//!   The authenticator comes before the sequence check so that nobody without the
//!   keygen tokens can make us answer 135 or learn the cached sequence number.
//! - **Policy refusal** (umip's `CnBindingPolicySet`): an authenticated BU from a peer
//!   the policy refuses is answered with 129 "administratively prohibited" (§6.1.8), so
//!   the mobile node stops trying route optimisation with us (§11.7.3) instead of
//!   retrying until its back-off gives up. With route optimisation off altogether
//!   (`DoRouteOptimizationCN disabled`) we behave like umip: HoTI/CoTI are ignored, so
//!   the return routability procedure never completes and no BU can authenticate.
//! - **Replay after deletion** (§5.2.8): when a binding is deleted or expires while the
//!   nonces that authorised it are still acceptable, a tombstone keeps its sequence
//!   number until they are not, so an old BU replayed in that window gets 135 instead of
//!   resurrecting the binding.
//! - **Binding Refresh Request** (§9.5.5 leaves the policy open): as umip, one BRR
//!   [`BRR_LEAD`] before expiry, and only if the platform reported use of the binding
//!   ([`Event::BindingUsed`]) within [`USED_WINDOW`]; an unused binding just expires.
//! - **Rate limits** (§15.4 reflection, §9.3.3 BE like ICMPv6): HoT/CoT answers pass a
//!   global bucket and a per-source bucket; Binding Errors and unauthenticated error
//!   BAs (131, 136–138) pass a separate global bucket. See [`CnConfig`] for numbers.
//!   Authenticated answers are not limited: only a holder of both tokens can trigger
//!   them, one per BU.
//! - **Nonce rotation** is lazy: [`NonceTable::rotate_if_due`] runs before every HoT/CoT
//!   and on every timeout, which is all §5.2.7 needs (a nonce nobody asked for never has
//!   to exist), so the CN has no 30-second wake-up of its own.

use crate::crypto::rr::{self, NonceTable, TokenKind};
use crate::proto::binding_cache::{BindingCache, BindingKey};
use crate::proto::event::{
    ba_repr, is_unicast_routable, lifetime_units, transmit, units_to_duration, Action, Event,
    Inbound,
};
use crate::proto::ratelimit::{Limiter, RateLimit, TokenBucket};
use crate::proto::seqno::Seqno;
use crate::wire::mh::{be_status, BaFlags, Message, MhRepr};
use crate::wire::mh_option::MobilityOption;
use ring::error::Unspecified;
use ring::rand::SecureRandom;
use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

/// RFC 6275 §12: the longest binding a CN grants on the strength of return routability.
pub const MAX_RR_BINDING_LIFETIME: Duration = Duration::from_secs(420);
/// How long before expiry a Binding Refresh Request goes out (umip: 2 s).
pub const BRR_LEAD: Duration = Duration::from_secs(2);
/// A binding counts as "in use" if the platform reported traffic this recently (umip:
/// 60 s, via XFRM `lastused`).
pub const USED_WINDOW: Duration = Duration::from_secs(60);

/// Binding Acknowledgement status codes a CN or HA sends (RFC 6275 §6.1.8, RFC 3963).
pub mod status {
    pub const ACCEPTED: u8 = 0;
    pub const UNSPECIFIED: u8 = 128;
    pub const ADMINISTRATIVELY_PROHIBITED: u8 = 129;
    pub const INSUFFICIENT_RESOURCES: u8 = 130;
    pub const HOME_REGISTRATION_NOT_SUPPORTED: u8 = 131;
    pub const NOT_HOME_SUBNET: u8 = 132;
    pub const NOT_HOME_AGENT_FOR_THIS_MN: u8 = 133;
    pub const DAD_FAILED: u8 = 134;
    pub const SEQUENCE_OUT_OF_WINDOW: u8 = 135;
    pub const EXPIRED_HOME_NONCE: u8 = 136;
    pub const EXPIRED_CARE_OF_NONCE: u8 = 137;
    pub const EXPIRED_NONCES: u8 = 138;
    pub const REGISTRATION_TYPE_CHANGE: u8 = 139;
    /// RFC 3963 §6.7: the HA does not accept mobile routers.
    pub const MOBILE_ROUTER_NOT_PERMITTED: u8 = 140;
}

/// Per-peer route-optimisation policy: may `hoa` bind to `coa` at our address `local`?
pub trait CnPolicy: Send + Sync {
    fn allow_binding(&self, local: &Ipv6Addr, hoa: &Ipv6Addr, coa: &Ipv6Addr) -> bool;
}

impl<F> CnPolicy for F
where
    F: Fn(&Ipv6Addr, &Ipv6Addr, &Ipv6Addr) -> bool + Send + Sync,
{
    fn allow_binding(&self, local: &Ipv6Addr, hoa: &Ipv6Addr, coa: &Ipv6Addr) -> bool {
        self(local, hoa, coa)
    }
}

/// Correspondent-node settings.
#[derive(Clone, Debug)]
pub struct CnConfig {
    /// umip `DoRouteOptimizationCN`: answer HoTI/CoTI at all.
    pub route_optimization: bool,
    /// Cap on granted lifetimes; RFC 6275 §12 MAX_RR_BINDING_LIFETIME by default.
    pub max_binding_lifetime: Duration,
    /// See [`BRR_LEAD`].
    pub brr_lead: Duration,
    /// See [`USED_WINDOW`].
    pub used_window: Duration,
    /// Active bindings beyond this get status 130, insufficient resources (§9.5.2).
    pub max_bindings: usize,
    /// HoT/CoT answers in total. Default 2000/s, burst 500: a busy server sees a HoTI
    /// and a CoTI per mobile node per handoff and per 210 s token refresh.
    pub rr_global: RateLimit,
    /// HoT/CoT answers per source address. Default 10/s, burst 20: one RR is two
    /// messages from two sources, and a mobile node retransmits with back-off (§11.8).
    pub rr_per_source: RateLimit,
    /// Sources tracked by the per-source limiter (see `ratelimit::Limiter`).
    pub rr_max_sources: usize,
    /// Binding Errors and unauthenticated error BAs. Default 100/s, burst 50, in the
    /// spirit of the ICMPv6 error rate limit (RFC 4443 §2.4 f).
    pub error_limit: RateLimit,
}

impl Default for CnConfig {
    fn default() -> Self {
        CnConfig {
            route_optimization: true,
            max_binding_lifetime: MAX_RR_BINDING_LIFETIME,
            brr_lead: BRR_LEAD,
            used_window: USED_WINDOW,
            max_bindings: 1 << 22,
            rr_global: RateLimit::new(2000, 500),
            rr_per_source: RateLimit::new(10, 20),
            rr_max_sources: 65_536,
            error_limit: RateLimit::new(100, 50),
        }
    }
}

/// A correspondent node's binding cache entry (RFC 6275 §9.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CnBinding {
    pub coa: Ipv6Addr,
    /// Sequence number of the last accepted Binding Update.
    pub seq: Seqno,
    /// When the binding expires (for a tombstone: when it is forgotten).
    pub expires: Instant,
    /// Last time the platform reported the binding in use.
    pub last_used: Option<Instant>,
    pub brr_sent: bool,
    /// False for a tombstone: the binding is gone, only `seq` is remembered (§5.2.8).
    pub active: bool,
    /// Until when the nonces behind the accepted BUs stay acceptable.
    guard_until: Option<Instant>,
}

/// Counters, for `mip6ctl` and for tests that must tell "silently dropped" apart from
/// "never arrived".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CnStats {
    pub rr_answered: u64,
    pub rr_rate_limited: u64,
    pub bu_accepted: u64,
    pub bu_rejected: u64,
    pub bu_dropped: u64,
    pub errors_rate_limited: u64,
}

/// The correspondent node.
pub struct Cn {
    config: CnConfig,
    policy: Option<Box<dyn CnPolicy>>,
    rng: Arc<dyn SecureRandom + Send + Sync>,
    nonces: NonceTable,
    cache: BindingCache<CnBinding>,
    active: usize,
    rr_limiter: Limiter<Ipv6Addr>,
    error_limiter: TokenBucket,
    actions: VecDeque<Action>,
    stats: CnStats,
}

impl std::fmt::Debug for Cn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cn")
            .field("config", &self.config)
            .field("bindings", &self.active)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What the BU asks for, after the option checks.
struct BuRequest {
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    seq: Seqno,
    ack: bool,
    lifetime: Duration,
    delete: bool,
}

impl Cn {
    /// A CN with a fresh random nonce table. `rng` is ring's `SystemRandom` in
    /// production; ring seals its trait, so tests use it too (nothing the tests check
    /// depends on the random values) or inject a table with [`Cn::with_nonce_table`].
    pub fn new(
        config: CnConfig,
        rng: Arc<dyn SecureRandom + Send + Sync>,
        now: Instant,
    ) -> Result<Cn, Unspecified> {
        let nonces = NonceTable::new(rng.as_ref(), now)?;
        Ok(Self::with_nonce_table(config, rng, nonces))
    }

    pub fn with_nonce_table(
        config: CnConfig,
        rng: Arc<dyn SecureRandom + Send + Sync>,
        nonces: NonceTable,
    ) -> Cn {
        Cn {
            rr_limiter: Limiter::new(
                config.rr_global,
                config.rr_per_source,
                config.rr_max_sources,
            ),
            error_limiter: TokenBucket::new(config.error_limit),
            config,
            policy: None,
            rng,
            nonces,
            cache: BindingCache::new(),
            active: 0,
            actions: VecDeque::new(),
            stats: CnStats::default(),
        }
    }

    /// Pre-sizes the cache (benchmarks, or a known large deployment).
    pub fn reserve(&mut self, n: usize) {
        let old = std::mem::take(&mut self.cache);
        let mut cache = BindingCache::with_capacity(n);
        for (k, v) in old.iter() {
            cache.insert(*k, v.clone(), old.deadline(k));
        }
        self.cache = cache;
    }

    pub fn set_policy(&mut self, policy: Box<dyn CnPolicy>) {
        self.policy = Some(policy);
    }

    pub fn config(&self) -> &CnConfig {
        &self.config
    }

    pub fn stats(&self) -> &CnStats {
        &self.stats
    }

    /// The active binding for (local, hoa), if any.
    pub fn binding(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<&CnBinding> {
        self.cache
            .get(&BindingKey::new(*local, *hoa))
            .filter(|b| b.active)
    }

    /// Every active binding.
    pub fn bindings(&self) -> impl Iterator<Item = (&BindingKey, &CnBinding)> {
        self.cache.iter().filter(|(_, b)| b.active)
    }

    /// Number of active bindings.
    pub fn len(&self) -> usize {
        self.active
    }

    pub fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Approximate memory held by the binding cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.approx_bytes()
    }

    pub fn handle(&mut self, event: Event<'_>, now: Instant) {
        match event {
            Event::Mh(p) => self.handle_mh(&p, now),
            Event::HaoWithoutBinding {
                local,
                src_coa,
                hoa,
            } => self.hao_without_binding(local, src_coa, hoa, now),
            Event::BindingUsed { local, hoa } => {
                if let Some(b) = self.cache.get_mut(&BindingKey::new(local, hoa)) {
                    if b.active {
                        b.last_used = Some(now);
                    }
                }
            }
            // Not a CN matter.
            Event::DadResult { .. } => {}
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cache.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.rotate(now);
        while let Some((key, _)) = self.cache.pop_due(now) {
            let Some(b) = self.cache.get_mut(&key) else {
                continue;
            };
            if !b.active {
                // The tombstone's nonces can no longer authorise anything (§5.2.8).
                self.cache.remove(&key);
                continue;
            }
            if now < b.expires {
                // The BRR decision point, BRR_LEAD before expiry (§9.5.5, as umip).
                b.brr_sent = true;
                let used = b
                    .last_used
                    .is_some_and(|t| now.saturating_duration_since(t) <= self.config.used_window);
                let expires = b.expires;
                self.cache.set_deadline(&key, Some(expires));
                if used {
                    self.send_brr(key);
                }
            } else {
                self.remove_binding(key, now);
            }
        }
    }

    fn rotate(&mut self, now: Instant) {
        if let Err(e) = self.nonces.rotate_if_due(now, self.rng.as_ref()) {
            // Keep the current nonce: tokens stay verifiable, only fresher keys are missed.
            debug!(?e, "nonce rotation failed: no randomness");
        }
    }

    /// Entry point for Mobility Headers addressed to us as a correspondent node.
    pub fn handle_mh(&mut self, p: &Inbound<'_>, now: Instant) {
        match &p.repr.message {
            Message::HomeTestInit { cookie } => self.test_init(p, *cookie, TokenKind::Home, now),
            Message::CareOfTestInit { cookie } => {
                self.test_init(p, *cookie, TokenKind::CareOf, now)
            }
            Message::BindingUpdate { .. } => self.binding_update(p, now),
            Message::Unknown { .. } => {
                // §9.2: an unrecognised MH type is answered with Binding Error status 2,
                // to the source of the packet; the Home Address field carries the HAO
                // address when there was one (§6.1.9).
                let hoa = p.hao.unwrap_or(Ipv6Addr::UNSPECIFIED);
                self.send_be(p.dst, p.src, be_status::UNRECOGNIZED_MH_TYPE, hoa, now);
            }
            // Messages for a mobile node (HoT, CoT, BA, BRR, BE) mean nothing to a CN.
            other => debug!(mh_type = other.mh_type(), "ignored at the CN"),
        }
    }

    /// HoTI/CoTI → HoT/CoT (RFC 6275 §9.4.1–§9.4.4).
    fn test_init(&mut self, p: &Inbound<'_>, cookie: [u8; 8], kind: TokenKind, now: Instant) {
        if !self.config.route_optimization {
            return;
        }
        // §9.4.1/§9.4.2: a HoTI/CoTI with a Home Address option is silently ignored.
        if p.hao.is_some() || !is_unicast_routable(&p.src) {
            return;
        }
        if !self.rr_limiter.allow(&p.src, now) {
            self.stats.rr_rate_limited += 1;
            return;
        }
        self.rotate(now);
        // The token binds the source address: the home address for a HoTI (which came
        // through the home agent's tunnel), the care-of address for a CoTI (§5.2.5).
        let (nonce_index, keygen_token) = self.nonces.issue_token(&p.src, kind, now);
        let message = match kind {
            TokenKind::Home => Message::HomeTest {
                nonce_index,
                cookie,
                keygen_token,
            },
            TokenKind::CareOf => Message::CareOfTest {
                nonce_index,
                cookie,
                keygen_token,
            },
        };
        let repr = MhRepr {
            message,
            options: vec![],
        };
        // §9.4.3/§9.4.4: back to the source, from the address it was sent to.
        self.actions
            .push_back(Action::Send(transmit(p.dst, p.src, None, repr, None)));
        self.stats.rr_answered += 1;
    }

    fn drop_bu(&mut self, why: &'static str) {
        debug!(why, "binding update silently discarded");
        self.stats.bu_dropped += 1;
    }

    fn binding_update(&mut self, p: &Inbound<'_>, now: Instant) {
        let Message::BindingUpdate {
            sequence,
            flags,
            lifetime_units,
        } = p.repr.message
        else {
            return;
        };
        // §9.5.1: the home address is the HAO address, or the source without one.
        let hoa = p.hao.unwrap_or(p.src);
        if !is_unicast_routable(&hoa) {
            return self.drop_bu("home address not unicast routable");
        }
        if flags.h {
            // §10.3.1: a node that is not a home agent rejects home registrations with
            // 131. Unauthenticated (a home registration carries no RR data), so limited.
            self.reply_unauthenticated(
                p,
                hoa,
                status::HOME_REGISTRATION_NOT_SUPPORTED,
                sequence,
                now,
            );
            return;
        }
        // §9.5.1: an Alternate Care-of Address option overrides the source, and the
        // authenticator is computed over it.
        let coa = p
            .repr
            .options
            .iter()
            .find_map(|o| match o {
                MobilityOption::AlternateCareOf(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(p.src);
        if !is_unicast_routable(&coa) {
            return self.drop_bu("care-of address not unicast routable");
        }
        let lifetime = units_to_duration(lifetime_units);
        let req = BuRequest {
            hoa,
            coa,
            seq: Seqno(sequence),
            ack: flags.a,
            lifetime,
            // §9.5.1: lifetime zero or care-of = home address deletes the binding.
            delete: lifetime.is_zero() || coa == hoa,
        };
        self.verified_bu(p, req, now);
    }

    /// Everything after the flag checks: nonces, authenticator, sequence, policy, cache.
    fn verified_bu(&mut self, p: &Inbound<'_>, req: BuRequest, now: Instant) {
        let local = p.dst;
        // §9.5.1: Nonce Indices MUST be present for a non-home registration, and Binding
        // Authorization Data MUST be present and last (the parser enforces "last").
        let Some((home_index, coa_index)) = p.repr.options.iter().find_map(|o| match o {
            MobilityOption::NonceIndices { home, care_of } => Some((*home, *care_of)),
            _ => None,
        }) else {
            return self.drop_bu("no nonce indices option");
        };
        let Some((covered, received)) = crate::wire::mh::auth_data_region(p.raw) else {
            return self.drop_bu("no binding authorization data");
        };
        // §9.5.1: the care-of nonce index is not inspected for deletions (§5.2.6: Kbm
        // then comes from the home token alone).
        let home_token = self
            .nonces
            .token(home_index, &req.hoa, TokenKind::Home, now);
        let coa_token = if req.delete {
            None
        } else {
            Some(
                self.nonces
                    .token(coa_index, &req.coa, TokenKind::CareOf, now),
            )
        };
        let expired = match (home_token.is_none(), coa_token.is_some_and(|t| t.is_none())) {
            (true, true) => Some(status::EXPIRED_NONCES),
            (true, false) => Some(status::EXPIRED_HOME_NONCE),
            (false, true) => Some(status::EXPIRED_CARE_OF_NONCE),
            (false, false) => None,
        };
        if let Some(st) = expired {
            // §9.5.1: 136/137/138. No Kbm, so no authenticator (§6.1.8).
            self.reply_unauthenticated(p, req.hoa, st, req.seq.get(), now);
            return;
        }
        let Some(home_token) = home_token else {
            return;
        };
        let kbm = rr::kbm(&home_token, coa_token.flatten().as_ref());
        // §5.2.6/§6.2.7: authenticator over (CoA | CN address | MH data).
        if !rr::verify_authenticator(&kbm, &req.coa, &local, &covered, &received) {
            return self.drop_bu("bad authenticator");
        }
        let key = BindingKey::new(local, req.hoa);
        let auth = Some((&kbm, req.coa));
        if let Some(old) = self.cache.get(&key) {
            if !req.seq.is_newer_than(old.seq) {
                // §9.5.1: 135 carries the last accepted sequence number.
                let last = old.seq.get();
                self.stats.bu_rejected += 1;
                self.send_ba(p, req.hoa, status::SEQUENCE_OUT_OF_WINDOW, last, 0, auth);
                return;
            }
        }
        if !req.delete {
            let allowed = self
                .policy
                .as_ref()
                .map_or(true, |pol| pol.allow_binding(&local, &req.hoa, &req.coa));
            if !allowed {
                self.stats.bu_rejected += 1;
                let st = status::ADMINISTRATIVELY_PROHIBITED;
                self.send_ba(p, req.hoa, st, req.seq.get(), 0, auth);
                return;
            }
            let is_new = !self.cache.get(&key).is_some_and(|b| b.active);
            if is_new && self.active >= self.config.max_bindings {
                // §9.5.2: no room → 130.
                self.stats.bu_rejected += 1;
                let st = status::INSUFFICIENT_RESOURCES;
                self.send_ba(p, req.hoa, st, req.seq.get(), 0, auth);
                return;
            }
        }
        // §5.2.8: remember the sequence number while these nonces can still authorise
        // a replay of this very BU.
        let guard = [
            self.nonces.acceptable_until(home_index),
            if req.delete {
                None
            } else {
                self.nonces.acceptable_until(coa_index)
            },
        ]
        .into_iter()
        .flatten()
        .max();
        self.stats.bu_accepted += 1;
        let granted = if req.delete {
            self.delete_binding(key, req.seq, guard, now);
            Duration::ZERO
        } else {
            self.cache_binding(key, &req, guard, now)
        };
        // §9.5.4: a BA only when asked for (A flag) on success.
        if req.ack {
            let units = lifetime_units(granted);
            self.send_ba(p, req.hoa, status::ACCEPTED, req.seq.get(), units, auth);
        }
    }

    /// §9.5.2: create or update; returns the granted lifetime.
    fn cache_binding(
        &mut self,
        key: BindingKey,
        req: &BuRequest,
        guard: Option<Instant>,
        now: Instant,
    ) -> Duration {
        // §9.5.2 lets the CN grant less than asked; §12 caps RR bindings at 420 s. Granted
        // in whole 4 s units so the BA states exactly what we keep.
        let granted = units_to_duration(lifetime_units(
            req.lifetime.min(self.config.max_binding_lifetime),
        ));
        let expires = now + granted;
        let old = self.cache.get(&key);
        let was_active = old.is_some_and(|b| b.active);
        let last_used = old.filter(|b| b.active).and_then(|b| b.last_used);
        let guard_until = old.and_then(|b| b.guard_until).max(guard);
        let entry = CnBinding {
            coa: req.coa,
            seq: req.seq,
            expires,
            last_used,
            brr_sent: false,
            active: true,
            guard_until,
        };
        let deadline = match expires.checked_sub(self.config.brr_lead) {
            Some(brr_at) if brr_at > now => brr_at,
            _ => expires,
        };
        self.cache.insert(key, entry, Some(deadline));
        if !was_active {
            self.active += 1;
        }
        self.actions.push_back(Action::BindingInstalled {
            local: key.local,
            hoa: key.hoa,
            coa: req.coa,
            lifetime: granted,
            home: false,
        });
        granted
    }

    /// §9.5.3: delete, leaving a tombstone while the nonces could replay older BUs.
    fn delete_binding(
        &mut self,
        key: BindingKey,
        seq: Seqno,
        guard: Option<Instant>,
        now: Instant,
    ) {
        let old_guard = self.cache.get(&key).and_then(|b| b.guard_until);
        if let Some(b) = self.cache.get_mut(&key) {
            b.seq = seq;
        } else {
            // No binding: still remember the sequence number for the guard period.
            self.cache.insert(
                key,
                CnBinding {
                    coa: key.hoa,
                    seq,
                    expires: now,
                    last_used: None,
                    brr_sent: false,
                    active: false,
                    guard_until: guard,
                },
                None,
            );
        }
        if let Some(b) = self.cache.get_mut(&key) {
            b.guard_until = old_guard.max(guard);
        }
        self.remove_binding(key, now);
    }

    /// Ends an active binding (or forgets a tombstone whose guard is over).
    fn remove_binding(&mut self, key: BindingKey, now: Instant) {
        let Some(b) = self.cache.get_mut(&key) else {
            return;
        };
        if b.active {
            b.active = false;
            self.active -= 1;
            self.actions.push_back(Action::BindingRemoved {
                local: key.local,
                hoa: key.hoa,
                home: false,
            });
        }
        match b.guard_until.filter(|g| *g > now) {
            Some(g) => {
                b.expires = g;
                b.last_used = None;
                self.cache.set_deadline(&key, Some(g));
            }
            None => {
                self.cache.remove(&key);
            }
        }
    }

    fn hao_without_binding(&mut self, local: Ipv6Addr, src: Ipv6Addr, hoa: Ipv6Addr, now: Instant) {
        // The platform may race a binding we just installed: only answer if we really
        // have no binding of this home address to this care-of address.
        if self.binding(&local, &hoa).is_some_and(|b| b.coa == src) {
            return;
        }
        // §9.3.1/§9.3.3: Binding Error status 1 to the source (the care-of address),
        // with the home address in the message; never with a routing header (§6.1).
        self.send_be(
            local,
            src,
            be_status::UNKNOWN_BINDING_FOR_HOME_ADDRESS,
            hoa,
            now,
        );
    }

    fn send_be(&mut self, src: Ipv6Addr, dst: Ipv6Addr, status: u8, hoa: Ipv6Addr, now: Instant) {
        if !is_unicast_routable(&dst) {
            return;
        }
        if !self.error_limiter.allow(now) {
            self.stats.errors_rate_limited += 1;
            return;
        }
        let repr = MhRepr {
            message: Message::BindingError {
                status,
                home_address: hoa,
            },
            options: vec![],
        };
        self.actions
            .push_back(Action::Send(transmit(src, dst, None, repr, None)));
    }

    fn send_brr(&mut self, key: BindingKey) {
        // §9.5.5/§6.1.2: to the home address, without a routing header (§6.1 allows RH2
        // on BAs only), so it reaches the mobile node through its home agent.
        let repr = MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![],
        };
        self.actions
            .push_back(Action::Send(transmit(key.local, key.hoa, None, repr, None)));
    }

    /// An error BA that cannot be authenticated: rate limited like an ICMPv6 error.
    fn reply_unauthenticated(
        &mut self,
        p: &Inbound<'_>,
        hoa: Ipv6Addr,
        status: u8,
        seq: u16,
        now: Instant,
    ) {
        self.stats.bu_rejected += 1;
        if !self.error_limiter.allow(now) {
            self.stats.errors_rate_limited += 1;
            return;
        }
        self.send_ba(p, hoa, status, seq, 0, None);
    }

    /// §9.5.4: to the source of the BU; with a Type 2 Routing Header carrying the home
    /// address when the BU came with a Home Address option. `auth` = (Kbm, CoA) adds
    /// Binding Authorization Data (§6.1.8).
    fn send_ba(
        &mut self,
        p: &Inbound<'_>,
        hoa: Ipv6Addr,
        status: u8,
        seq: u16,
        units: u16,
        auth: Option<(&rr::Kbm, Ipv6Addr)>,
    ) {
        let repr = ba_repr(
            status,
            BaFlags::default(),
            seq,
            units,
            vec![],
            auth.is_some(),
        );
        let rh2 = p.hao.filter(|h| *h != p.src).map(|_| hoa);
        self.actions
            .push_back(Action::Send(transmit(p.dst, p.src, rh2, repr, auth)));
    }
}
