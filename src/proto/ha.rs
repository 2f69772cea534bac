//! The home agent (RFC 6275 §10; mobile routers per RFC 3963): home registrations, DAD,
//! tunnel/route/proxy-ND actions, expiry. Everything that is not a home registration
//! goes to an embedded [`Cn`], because an HA is also a correspondent node for whoever
//! talks to its own addresses (§10.3.1, umip runs the CN part on every node).
//!
//! # Choices where the RFC leaves room (and why)
//! - **Check order** follows umip (`ha_recv_home_bu`): sequence (135, §9.5.1) →
//!   registration type change (139, §9.5.1) → deregistration of an unknown binding
//!   (133, §10.3.2) → home subnet (132, §10.3.1) → ACL (129) → mobile router (140,
//!   RFC 3963 §6.1).
//! - **Authentication** of home registrations is IPsec (§5.1), which the platform
//!   enforces before a BU reaches us, so the HA answers every home registration,
//!   errors included, without rate limits. Only 139 for a non-home BU, which has not
//!   been authenticated yet when we answer it, is rate limited.
//! - **Every home registration gets a BA** (§10.3.1 "MUST return"; the mobile node sets
//!   A anyway, §11.7.1).
//! - **DAD** (§10.3.1): only on the first registration of a home address (umip does the
//!   same); the BA waits for [`Event::DadResult`]. BUs arriving meanwhile update the
//!   pending request and are answered, once, when DAD ends. A platform that never
//!   reports is covered by [`HaConfig::dad_timeout`]: the pending registration is
//!   forgotten without an answer and the mobile node's retransmission starts over.
//! - **Lifetime** = min(requested, `HaMaxBindingLife`, remaining valid lifetime of the
//!   home prefix) (§10.3.1), in whole 4 s units. A prefix with less than one unit left
//!   is treated as gone (132), since a zero lifetime would read as a deregistration.
//! - **Binding Refresh Advice** (§6.2.4, only ever from the HA): included when
//!   [`HaConfig::refresh_advice`] is set, capped at the granted lifetime.

use crate::proto::binding_cache::{BindingCache, BindingKey};
use crate::proto::cn::{status, Cn, CnConfig};
use crate::proto::event::{
    ba_repr, is_unicast_routable, lifetime_units, transmit, units_to_duration, Action, Event,
    Inbound,
};
use crate::proto::ratelimit::{RateLimit, TokenBucket};
use crate::proto::seqno::Seqno;
use crate::wire::mh::{BaFlags, BuFlags, Message};
use crate::wire::mh_option::MobilityOption;
use ring::error::Unspecified;
use ring::rand::SecureRandom;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

/// umip's `HaMaxBindingLife` default (just under the 16-bit field's 262140 s).
pub const DEFAULT_MAX_BINDING_LIFE: Duration = Duration::from_secs(262_000);
/// How long a registration waits for the platform's DAD result.
pub const DAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A prefix of a home link this HA serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HomePrefix {
    pub prefix: Ipv6Addr,
    pub len: u8,
    /// End of the prefix's valid lifetime as advertised on the home link; `None` for
    /// infinite.
    pub valid_until: Option<Instant>,
}

impl HomePrefix {
    pub fn contains(&self, a: &Ipv6Addr) -> bool {
        let len = u32::from(self.len.min(128));
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        (u128::from(*a) & mask) == (u128::from(self.prefix) & mask)
    }
}

/// Binding ACL (umip `BindingAclPolicy`): may `hoa` register `coa` with these flags?
pub trait HaPolicy: Send + Sync {
    fn allow(&self, hoa: &Ipv6Addr, coa: &Ipv6Addr, flags: BuFlags) -> bool;
}

impl<F> HaPolicy for F
where
    F: Fn(&Ipv6Addr, &Ipv6Addr, BuFlags) -> bool + Send + Sync,
{
    fn allow(&self, hoa: &Ipv6Addr, coa: &Ipv6Addr, flags: BuFlags) -> bool {
        self(hoa, coa, flags)
    }
}

/// How long a deregistered or expired home registration's sequence number is remembered.
/// §9.5.1 only compares against an existing binding, so without this a BU overtaken in
/// the network by the deregistration (or arriving after expiry) would start a fresh
/// registration with an out-of-date care-of address — found by the network simulation.
/// Ten minutes covers any plausible reordering; replays proper are IPsec's anti-replay job.
pub const SEQUENCE_GUARD: Duration = Duration::from_secs(600);

/// At most this many remembered sequence numbers: the guard is best-effort, and a flood of
/// registrations must not grow memory without bound.
pub const MAX_SEQUENCE_GUARDS: usize = 65_536;

#[derive(Clone, Debug)]
pub struct HaConfig {
    pub home_prefixes: Vec<HomePrefix>,
    /// umip `HaMaxBindingLife`.
    pub max_binding_life: Duration,
    /// umip `HaAcceptMobRtr` (RFC 3963): accept BUs with the R flag.
    pub accept_mobile_router: bool,
    /// Key management mobility (§10.3.1): echo the K flag.
    pub key_mgmt_mobility: bool,
    pub refresh_advice: Option<Duration>,
    pub dad_timeout: Duration,
    /// For 139 answers to non-home BUs.
    pub error_limit: RateLimit,
    /// The embedded correspondent node.
    pub cn: CnConfig,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            home_prefixes: vec![],
            max_binding_life: DEFAULT_MAX_BINDING_LIFE,
            accept_mobile_router: false,
            key_mgmt_mobility: false,
            refresh_advice: None,
            dad_timeout: DAD_TIMEOUT,
            error_limit: RateLimit::new(100, 50),
            cn: CnConfig::default(),
        }
    }
}

/// Where a deferred BA goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub dst: Ipv6Addr,
    pub rh2: Option<Ipv6Addr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaState {
    /// Installed: tunnel, route and proxy ND are in place.
    Active,
    /// Waiting for the DAD result; nothing installed yet.
    Dad { reply: ReplyTo },
}

/// A home agent's binding cache entry (RFC 6275 §9.1, §10.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaBinding {
    pub coa: Ipv6Addr,
    pub seq: Seqno,
    /// Granted lifetime.
    pub lifetime: Duration,
    /// Expiry when active; the DAD deadline while DAD runs.
    pub expires: Instant,
    /// Proxied link-local address (L flag).
    pub link_local: Option<Ipv6Addr>,
    pub mobile_router: bool,
    pub key_mgmt: bool,
    pub state: HaState,
}

pub struct Ha {
    config: HaConfig,
    policy: Option<Box<dyn HaPolicy>>,
    cache: BindingCache<HaBinding>,
    /// Home address → key of the registration waiting for its DAD result.
    dad_pending: HashMap<Ipv6Addr, BindingKey>,
    /// Last accepted sequence number of bindings that are gone, and until when it is
    /// remembered (see [`SEQUENCE_GUARD`]).
    recent: HashMap<BindingKey, (Seqno, Instant)>,
    cn: Cn,
    error_limiter: TokenBucket,
    actions: VecDeque<Action>,
}

impl std::fmt::Debug for Ha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ha")
            .field("config", &self.config)
            .field("bindings", &self.cache.len())
            .field("cn", &self.cn)
            .finish_non_exhaustive()
    }
}

/// The link-local address a mobile node uses on its home link when it sets L: fe80::/64
/// with the home address's interface identifier (§10.3.1, §11.7.1).
pub fn link_local_of(hoa: &Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from((0xfe80u128 << 112) | (u128::from(*hoa) & u128::from(u64::MAX)))
}

impl Ha {
    pub fn new(
        config: HaConfig,
        rng: Arc<dyn SecureRandom + Send + Sync>,
        now: Instant,
    ) -> Result<Ha, Unspecified> {
        let cn = Cn::new(config.cn.clone(), rng, now)?;
        Ok(Ha {
            error_limiter: TokenBucket::new(config.error_limit),
            config,
            policy: None,
            cache: BindingCache::new(),
            dad_pending: HashMap::new(),
            recent: HashMap::new(),
            cn,
            actions: VecDeque::new(),
        })
    }

    pub fn set_policy(&mut self, policy: Box<dyn HaPolicy>) {
        self.policy = Some(policy);
    }

    /// Replaces or adds a home prefix (a new valid lifetime heard in our own RAs).
    pub fn set_home_prefix(&mut self, p: HomePrefix) {
        match self
            .config
            .home_prefixes
            .iter_mut()
            .find(|q| q.prefix == p.prefix && q.len == p.len)
        {
            Some(q) => *q = p,
            None => self.config.home_prefixes.push(p),
        }
    }

    pub fn cn(&self) -> &Cn {
        &self.cn
    }

    pub fn cn_mut(&mut self) -> &mut Cn {
        &mut self.cn
    }

    /// The home registration of `hoa` at our address `local` (active or in DAD).
    pub fn binding(&self, local: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<&HaBinding> {
        self.cache.get(&BindingKey::new(*local, *hoa))
    }

    pub fn bindings(&self) -> impl Iterator<Item = (&BindingKey, &HaBinding)> {
        self.cache.iter()
    }

    pub fn handle(&mut self, event: Event<'_>, now: Instant) {
        match event {
            Event::Mh(p) => match p.repr.message {
                Message::BindingUpdate {
                    sequence, flags, ..
                } => {
                    let hoa = p.hao.unwrap_or(p.src);
                    if flags.h {
                        self.home_bu(&p, now);
                    } else if self.cache.contains(&BindingKey::new(p.dst, hoa)) {
                        // §9.5.1: a home registration may not turn into a route
                        // optimisation binding (the flag in the cache never changes).
                        if self.error_limiter.allow(now) {
                            let reply = reply_to(&p, hoa);
                            self.send_ba(
                                p.dst,
                                reply,
                                status::REGISTRATION_TYPE_CHANGE,
                                sequence,
                                0,
                                BaFlags::default(),
                                None,
                            );
                        }
                    } else {
                        self.cn.handle_mh(&p, now);
                    }
                }
                _ => self.cn.handle_mh(&p, now),
            },
            Event::DadResult { hoa, ok } => self.dad_result(hoa, ok, now),
            other => self.cn.handle(other, now),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front().or_else(|| self.cn.poll_action())
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.cache.poll_timeout(), self.cn.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, _)) = self.cache.pop_due(now) {
            let Some(b) = self.cache.remove(&key) else {
                continue;
            };
            match b.state {
                HaState::Active => {
                    // §10.3.2 applies to expiry as well: undo everything.
                    debug!(hoa = %key.hoa, "home registration expired");
                    self.uninstall(key, &b);
                    self.remember_seq(key, b.seq, now);
                }
                HaState::Dad { .. } => {
                    debug!(hoa = %key.hoa, "no DAD result in time; registration forgotten");
                    self.dad_pending.remove(&key.hoa);
                }
            }
        }
        self.cn.handle_timeout(now);
    }

    fn home_bu(&mut self, p: &Inbound<'_>, now: Instant) {
        let Message::BindingUpdate {
            sequence,
            flags,
            lifetime_units: units,
        } = p.repr.message
        else {
            return;
        };
        let hoa = p.hao.unwrap_or(p.src);
        let coa = p
            .repr
            .options
            .iter()
            .find_map(|o| match o {
                MobilityOption::AlternateCareOf(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(p.src);
        if !is_unicast_routable(&hoa) || !is_unicast_routable(&coa) {
            debug!("home BU with a non-routable address dropped");
            return;
        }
        // §9.5.1: Nonce Indices MUST NOT be present in a home registration.
        if p.repr
            .options
            .iter()
            .any(|o| matches!(o, MobilityOption::NonceIndices { .. }))
        {
            debug!("home BU with nonce indices dropped");
            return;
        }
        let key = BindingKey::new(p.dst, hoa);
        let reply = reply_to(p, hoa);
        let seq = Seqno(sequence);
        let lifetime = units_to_duration(units);
        let delete = lifetime.is_zero() || coa == hoa;
        let no_flags = BaFlags::default();
        let reject =
            |ha: &mut Ha, st: u8| ha.send_ba(p.dst, reply, st, sequence, 0, no_flags, None);

        let last_accepted = match self.cache.get(&key) {
            Some(old) => Some(old.seq),
            None => self.remembered_seq(&key, now),
        };
        if let Some(last) = last_accepted {
            if !seq.is_newer_than(last) {
                // §9.5.1: 135 with the last accepted number.
                let last = last.get();
                return self.send_ba(
                    p.dst,
                    reply,
                    status::SEQUENCE_OUT_OF_WINDOW,
                    last,
                    0,
                    no_flags,
                    None,
                );
            }
        }
        if self.cn.binding(&p.dst, &hoa).is_some() {
            // §9.5.1: a route optimisation binding may not become a home registration.
            return reject(self, status::REGISTRATION_TYPE_CHANGE);
        }
        if delete {
            return self.deregister(key, reply, seq, now);
        }
        // §10.3.1: the home address must be on a home link prefix we serve, and the
        // lifetime may not exceed that prefix's remaining valid lifetime.
        let Some(prefix_left) = self.prefix_lifetime_left(&hoa, now) else {
            return reject(self, status::NOT_HOME_SUBNET);
        };
        if !self
            .policy
            .as_ref()
            .map_or(true, |pol| pol.allow(&hoa, &coa, flags))
        {
            return reject(self, status::ADMINISTRATIVELY_PROHIBITED);
        }
        if flags.r && !self.config.accept_mobile_router {
            // RFC 3963 §6.1: an HA that does not serve mobile routers answers 140.
            return reject(self, status::MOBILE_ROUTER_NOT_PERMITTED);
        }
        let granted = units_to_duration(lifetime_units(
            lifetime.min(self.config.max_binding_life).min(prefix_left),
        ));
        let entry = HaBinding {
            coa,
            seq,
            lifetime: granted,
            expires: now + granted,
            // §10.3.1: with L the HA also defends the link-local address.
            link_local: flags.l.then(|| link_local_of(&hoa)),
            mobile_router: flags.r,
            // §10.3.1: K is echoed only if we support key management mobility.
            key_mgmt: flags.k && self.config.key_mgmt_mobility,
            state: HaState::Active,
        };
        match self.cache.get(&key).map(|b| (b.state, b.clone())) {
            Some((HaState::Active, old)) => {
                self.reinstall(key, &old, &entry);
                let expires = entry.expires;
                self.cache.insert(key, entry.clone(), Some(expires));
                self.accepted(key, &entry, reply);
            }
            Some((HaState::Dad { .. }, old)) => {
                // Keep DAD running; answer the newest request when it ends.
                let pending = HaBinding {
                    expires: old.expires,
                    state: HaState::Dad { reply },
                    ..entry
                };
                self.cache.insert(key, pending, Some(old.expires));
            }
            None => {
                // §10.3.1: DAD for the home address (and link-local with L) before
                // the first registration is accepted; the BA waits for the result.
                let deadline = now + self.config.dad_timeout;
                let link_local = entry.link_local;
                let pending = HaBinding {
                    expires: deadline,
                    state: HaState::Dad { reply },
                    ..entry
                };
                self.cache.insert(key, pending, Some(deadline));
                if let Some(prev) = self.dad_pending.insert(hoa, key) {
                    // The same home address pending at another of our addresses: that
                    // one loses (only one can own the address on the link).
                    if prev != key {
                        self.cache.remove(&prev);
                    }
                }
                self.actions.push_back(Action::StartDad { hoa, link_local });
            }
        }
    }

    fn prefix_lifetime_left(&self, hoa: &Ipv6Addr, now: Instant) -> Option<Duration> {
        self.config
            .home_prefixes
            .iter()
            .filter(|p| p.contains(hoa))
            .map(|p| {
                p.valid_until
                    .map_or(Duration::MAX, |t| t.saturating_duration_since(now))
            })
            .max()
            .filter(|left| lifetime_units(*left) > 0)
    }

    fn dad_result(&mut self, hoa: Ipv6Addr, ok: bool, now: Instant) {
        let Some(key) = self.dad_pending.remove(&hoa) else {
            return;
        };
        let Some(b) = self.cache.get(&key).cloned() else {
            return;
        };
        let HaState::Dad { reply } = b.state else {
            return;
        };
        if !ok {
            // §10.3.1: DAD failed → 134, and nothing was installed.
            self.cache.remove(&key);
            return self.send_ba(
                key.local,
                reply,
                status::DAD_FAILED,
                b.seq.get(),
                0,
                BaFlags::default(),
                None,
            );
        }
        let entry = HaBinding {
            expires: now + b.lifetime,
            state: HaState::Active,
            ..b
        };
        self.install(key, &entry);
        let expires = entry.expires;
        self.cache.insert(key, entry.clone(), Some(expires));
        self.accepted(key, &entry, reply);
    }

    fn accepted(&mut self, key: BindingKey, b: &HaBinding, reply: ReplyTo) {
        self.actions.push_back(Action::BindingInstalled {
            local: key.local,
            hoa: key.hoa,
            coa: b.coa,
            lifetime: b.lifetime,
            home: true,
        });
        let flags = BaFlags {
            k: b.key_mgmt,
            // RFC 3963 §6.2: R set in the BA tells the MR its registration as a router
            // was accepted.
            r: b.mobile_router,
            p: false,
        };
        let units = lifetime_units(b.lifetime);
        let bra = self
            .config
            .refresh_advice
            .map(|r| lifetime_units(r.min(b.lifetime)));
        self.send_ba(
            key.local,
            reply,
            status::ACCEPTED,
            b.seq.get(),
            units,
            flags,
            bra,
        );
    }

    /// The sequence number of a binding that is gone, while [`SEQUENCE_GUARD`] lasts.
    fn remembered_seq(&self, key: &BindingKey, now: Instant) -> Option<Seqno> {
        self.recent
            .get(key)
            .and_then(|&(seq, until)| (now < until).then_some(seq))
    }

    fn remember_seq(&mut self, key: BindingKey, seq: Seqno, now: Instant) {
        if self.recent.len() >= MAX_SEQUENCE_GUARDS {
            self.recent.retain(|_, &mut (_, until)| until > now);
        }
        if self.recent.len() < MAX_SEQUENCE_GUARDS || self.recent.contains_key(&key) {
            self.recent.insert(key, (seq, now + SEQUENCE_GUARD));
        }
    }

    /// §10.3.2: deregistration.
    fn deregister(&mut self, key: BindingKey, reply: ReplyTo, seq: Seqno, now: Instant) {
        let Some(old) = self.cache.remove(&key) else {
            // §10.3.2: nothing to delete → 133.
            let st = status::NOT_HOME_AGENT_FOR_THIS_MN;
            return self.send_ba(key.local, reply, st, seq.get(), 0, BaFlags::default(), None);
        };
        self.remember_seq(key, seq, now);
        match old.state {
            HaState::Active => self.uninstall(key, &old),
            HaState::Dad { .. } => {
                self.dad_pending.remove(&key.hoa);
            }
        }
        self.send_ba(
            key.local,
            reply,
            status::ACCEPTED,
            seq.get(),
            0,
            BaFlags::default(),
            None,
        );
    }

    /// §10.4.1: tunnel first, then the route that uses it, then proxy ND so that the
    /// home link starts sending us the traffic only once we can forward it.
    fn install(&mut self, key: BindingKey, b: &HaBinding) {
        self.actions.push_back(Action::TunnelAdd {
            local: key.local,
            remote: b.coa,
        });
        self.actions.push_back(Action::RouteAdd {
            hoa: key.hoa,
            tunnel_local: key.local,
            tunnel_remote: b.coa,
        });
        self.actions.push_back(Action::ProxyNdAdd {
            addr: key.hoa,
            router: b.mobile_router,
        });
        if let Some(ll) = b.link_local {
            self.actions.push_back(Action::ProxyNdAdd {
                addr: ll,
                router: b.mobile_router,
            });
        }
    }

    /// A refresh: re-point the tunnel on a CoA change (new tunnel, route, then drop the
    /// old one so no packet is routed into nothing); follow L-flag changes.
    fn reinstall(&mut self, key: BindingKey, old: &HaBinding, new: &HaBinding) {
        if old.coa != new.coa {
            self.actions.push_back(Action::TunnelAdd {
                local: key.local,
                remote: new.coa,
            });
            self.actions.push_back(Action::RouteAdd {
                hoa: key.hoa,
                tunnel_local: key.local,
                tunnel_remote: new.coa,
            });
            self.actions.push_back(Action::TunnelDel {
                local: key.local,
                remote: old.coa,
            });
        }
        if old.mobile_router != new.mobile_router {
            self.actions.push_back(Action::ProxyNdAdd {
                addr: key.hoa,
                router: new.mobile_router,
            });
        }
        match (old.link_local, new.link_local) {
            (None, Some(ll)) => self.actions.push_back(Action::ProxyNdAdd {
                addr: ll,
                router: new.mobile_router,
            }),
            (Some(ll), None) => self.actions.push_back(Action::ProxyNdDel { addr: ll }),
            _ => {}
        }
    }

    /// Reverse of [`install`](Self::install): stop attracting traffic first.
    fn uninstall(&mut self, key: BindingKey, b: &HaBinding) {
        if let Some(ll) = b.link_local {
            self.actions.push_back(Action::ProxyNdDel { addr: ll });
        }
        self.actions.push_back(Action::ProxyNdDel { addr: key.hoa });
        self.actions.push_back(Action::RouteDel { hoa: key.hoa });
        self.actions.push_back(Action::TunnelDel {
            local: key.local,
            remote: b.coa,
        });
        self.actions.push_back(Action::BindingRemoved {
            local: key.local,
            hoa: key.hoa,
            home: true,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn send_ba(
        &mut self,
        local: Ipv6Addr,
        reply: ReplyTo,
        status: u8,
        seq: u16,
        units: u16,
        flags: BaFlags,
        refresh_units: Option<u16>,
    ) {
        let options = match refresh_units {
            Some(interval_units) if status < 128 && units > 0 => {
                vec![MobilityOption::BindingRefreshAdvice { interval_units }]
            }
            _ => vec![],
        };
        let repr = ba_repr(status, flags, seq, units, options, false);
        self.actions.push_back(Action::Send(transmit(
            local, reply.dst, reply.rh2, repr, None,
        )));
    }
}

/// §9.5.4: the BA goes to the BU's source, through a Type 2 Routing Header to the home
/// address when the BU carried a Home Address option.
fn reply_to(p: &Inbound<'_>, hoa: Ipv6Addr) -> ReplyTo {
    ReplyTo {
        dst: p.src,
        rh2: p.hao.filter(|h| *h != p.src).map(|_| hoa),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_contains() {
        let p = HomePrefix {
            prefix: "2001:db8:1::".parse().unwrap(),
            len: 64,
            valid_until: None,
        };
        assert!(p.contains(&"2001:db8:1::1234".parse().unwrap()));
        assert!(!p.contains(&"2001:db8:2::1234".parse().unwrap()));
        let all = HomePrefix { len: 0, ..p };
        assert!(all.contains(&"::1".parse().unwrap()));
        let odd = HomePrefix { len: 200, ..p };
        assert!(odd.contains(&p.prefix));
    }

    #[test]
    fn link_local_keeps_the_interface_identifier() {
        let hoa: Ipv6Addr = "2001:db8:1::a:b:c:d".parse().unwrap();
        assert_eq!(
            link_local_of(&hoa),
            "fe80::a:b:c:d".parse::<Ipv6Addr>().unwrap()
        );
    }
}
