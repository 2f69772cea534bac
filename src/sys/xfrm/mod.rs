//! XFRM over netlink (`NETLINK_XFRM`): the kernel's IPsec / Mobile IPv6 transformation
//! tables — policies (SPD) and states (SAD) — and its reports.
//!
//! This is what the `kernel` data path programs, as umip does: route-optimisation states
//! (`XFRM_MODE_ROUTEOPTIMIZATION` with `IPPROTO_ROUTING` for the Type 2 Routing Header and
//! `IPPROTO_DSTOPTS` for the Home Address option, the care-of address in `XFRMA_COADDR`),
//! wildcard receive states (`XFRM_STATE_WILDRECV`), *sub*-policies (`XFRMA_POLICY_TYPE`,
//! `CONFIG_XFRM_SUB_POLICY`) with priorities and Mobility Header type selectors, and the
//! multicast reports: `XFRM_MSG_ACQUIRE` (a packet hit a trigger template: start route
//! optimisation) and `XFRM_MSG_REPORT` (a Home Address option arrived without binding:
//! send a Binding Error).
//!
//! Why hand-written: `netlink-packet-xfrm` 0.3.1 (the one message crate) is tied to
//! `netlink-packet-core` 0.7 / `netlink-packet-utils` 0.5, unmaintained since, and its
//! layouts would need checking against the kernel anyway. The structures are few and
//! fixed-size; [`codec`] writes them once, its tests pin every offset, and
//! `tests/xfrm_netlink.rs` checks the bytes are identical to what iproute2's `ip xfrm`
//! sends for the same objects and that the live kernel accepts and returns them.
//!
//! Only IPv6 (`AF_INET6`) objects are expressed. Everything read from the socket is
//! untrusted: messages whose sender is not the kernel (netlink port id 0) are dropped and
//! counted (umip's CVE-2010-2523), lengths are checked, and the parser has a fuzz target.

pub mod codec;

pub use codec::parse_datagram;

use std::fmt;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{protocols::NETLINK_XFRM, Socket};

pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_DSTOPTS: u8 = 60;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_MH: u8 = 135;
/// For flushes: the IPsec protocols only (AH, ESP, IPComp) — *not* the route-optimisation
/// states; 0 flushes every protocol (the kernel's `xfrm_id_proto_match`).
pub const IPSEC_PROTO_ANY: u8 = 255;

pub const XFRM_MODE_TRANSPORT: u8 = 0;
pub const XFRM_MODE_TUNNEL: u8 = 1;
pub const XFRM_MODE_ROUTEOPTIMIZATION: u8 = 2;
pub const XFRM_MODE_IN_TRIGGER: u8 = 3;

/// `xfrm_usersa_info.flags`: the state matches any source/destination on receipt (umip's
/// "accept a Home Address option / Routing Header from anyone" states).
pub const XFRM_STATE_WILDRECV: u8 = 8;

/// `XFRM_INF`: no limit.
pub const XFRM_INF: u64 = u64::MAX;

/// Multicast group numbers (`enum xfrm_nlgroups`).
const XFRMNLGRP_ACQUIRE: u32 = 1;
const XFRMNLGRP_EXPIRE: u32 = 2;
const XFRMNLGRP_REPORT: u32 = 6;

const RECV_BUF: usize = 64 * 1024;

/// Which way a policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    In = 0,
    Out = 1,
    Fwd = 2,
}

/// Main policies are IPsec's; Mobile IPv6 lives in the sub-policy table so that its
/// policies combine with, instead of replacing, whatever IPsec policy an administrator
/// has (the kernel looks up sub first, then main).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    Main = 0,
    Sub = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyAction {
    Allow = 0,
    Block = 1,
}

/// `xfrm_selector`, IPv6 only. For `proto` = Mobility Header the MH type is matched as the
/// source "port" (`sport`, mask 0xffff), for ICMPv6 the type as `sport` and the code as
/// `dport`, as the kernel's flow keys do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    pub src: Ipv6Addr,
    pub src_len: u8,
    pub dst: Ipv6Addr,
    pub dst_len: u8,
    /// 0 = any protocol.
    pub proto: u8,
    pub sport: u16,
    pub sport_mask: u16,
    pub dport: u16,
    pub dport_mask: u16,
    pub ifindex: i32,
}

impl Selector {
    /// Matches every IPv6 packet.
    pub fn any() -> Selector {
        Selector::prefixes(Ipv6Addr::UNSPECIFIED, 0, Ipv6Addr::UNSPECIFIED, 0)
    }

    pub fn prefixes(src: Ipv6Addr, src_len: u8, dst: Ipv6Addr, dst_len: u8) -> Selector {
        Selector {
            src,
            src_len,
            dst,
            dst_len,
            proto: 0,
            sport: 0,
            sport_mask: 0,
            dport: 0,
            dport_mask: 0,
            ifindex: 0,
        }
    }

    /// Between two hosts (/128 each); `::` stands for "any" on that side.
    pub fn hosts(src: Ipv6Addr, dst: Ipv6Addr) -> Selector {
        let len = |a: Ipv6Addr| if a.is_unspecified() { 0 } else { 128 };
        Selector::prefixes(src, len(src), dst, len(dst))
    }

    pub fn proto(mut self, proto: u8) -> Selector {
        self.proto = proto;
        self
    }

    /// Mobility Header messages of one type.
    pub fn mh_type(mut self, mh_type: u8) -> Selector {
        self.proto = IPPROTO_MH;
        self.sport = u16::from(mh_type);
        self.sport_mask = 0xffff;
        self
    }

    /// One transport flow: `proto` (TCP, UDP) from source port `sport` to `dport`, both
    /// matched exactly (the acceptor's per-connection binding names one connection).
    pub fn ports(mut self, proto: u8, sport: u16, dport: u16) -> Selector {
        self.proto = proto;
        self.sport = sport;
        self.sport_mask = 0xffff;
        self.dport = dport;
        self.dport_mask = 0xffff;
        self
    }

    /// ICMPv6 messages of one type (any code).
    pub fn icmp6_type(mut self, icmp_type: u8) -> Selector {
        self.proto = IPPROTO_ICMPV6;
        self.sport = u16::from(icmp_type);
        self.sport_mask = 0xffff;
        self
    }
}

/// `xfrm_lifetime_cfg`. The default is what iproute2 sends: no byte or packet limit, no
/// time limit (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lifetime {
    pub soft_byte_limit: u64,
    pub hard_byte_limit: u64,
    pub soft_packet_limit: u64,
    pub hard_packet_limit: u64,
    pub soft_add_expires_seconds: u64,
    pub hard_add_expires_seconds: u64,
    pub soft_use_expires_seconds: u64,
    pub hard_use_expires_seconds: u64,
}

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime {
            soft_byte_limit: XFRM_INF,
            hard_byte_limit: XFRM_INF,
            soft_packet_limit: XFRM_INF,
            hard_packet_limit: XFRM_INF,
            soft_add_expires_seconds: 0,
            hard_add_expires_seconds: 0,
            soft_use_expires_seconds: 0,
            hard_use_expires_seconds: 0,
        }
    }
}

/// `xfrm_lifetime_cur`, as the kernel reports it: times in seconds since the epoch, 0 =
/// never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifetimeCur {
    pub bytes: u64,
    pub packets: u64,
    pub add_time: u64,
    pub use_time: u64,
}

/// `xfrm_user_tmpl`: one transformation a policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Template {
    pub proto: u8,
    pub mode: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub spi: u32,
    pub reqid: u32,
    pub share: u8,
    /// `level use`: a packet without a matching state passes (or, outbound, goes out
    /// untransformed) instead of being dropped.
    pub optional: bool,
    pub aalgos: u32,
    pub ealgos: u32,
    pub calgos: u32,
}

impl Template {
    /// A route-optimisation template for `proto` ([`IPPROTO_ROUTING`] or
    /// [`IPPROTO_DSTOPTS`]), endpoints left to the state; all algorithms allowed as
    /// iproute2 does by default.
    pub fn ro(proto: u8, optional: bool) -> Template {
        Template {
            proto,
            mode: XFRM_MODE_ROUTEOPTIMIZATION,
            src: Ipv6Addr::UNSPECIFIED,
            dst: Ipv6Addr::UNSPECIFIED,
            spi: 0,
            reqid: 0,
            share: 0,
            optional,
            aalgos: u32::MAX,
            ealgos: u32::MAX,
            calgos: u32::MAX,
        }
    }

    /// umip's inbound trigger (`XFRM_MODE_IN_TRIGGER`). Linux 6.1 neither sends
    /// `XFRM_MSG_ACQUIRE` for it nor lets a matching packet in (measured in the VM), so
    /// the daemon triggers on the way out instead (an optional template); this stays
    /// for the codec.
    pub fn trigger(proto: u8) -> Template {
        Template {
            mode: XFRM_MODE_IN_TRIGGER,
            ..Template::ro(proto, false)
        }
    }
}

/// `xfrm_userpolicy_info` + `XFRMA_POLICY_TYPE` + `XFRMA_TMPL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub sel: Selector,
    pub dir: Dir,
    pub ptype: PolicyType,
    /// Lower wins.
    pub priority: u32,
    pub action: PolicyAction,
    /// 0 on add: the kernel picks one.
    pub index: u32,
    pub flags: u8,
    pub share: u8,
    pub lifetime: Lifetime,
    /// Filled in by the kernel on read.
    pub current: Option<LifetimeCur>,
    pub templates: Vec<Template>,
}

impl Policy {
    /// An allow sub-policy (the Mobile IPv6 kind) with the iproute2 defaults.
    pub fn sub(sel: Selector, dir: Dir, priority: u32, templates: Vec<Template>) -> Policy {
        Policy {
            sel,
            dir,
            ptype: PolicyType::Sub,
            priority,
            action: PolicyAction::Allow,
            index: 0,
            flags: 0,
            share: 0,
            lifetime: Lifetime::default(),
            current: None,
            templates,
        }
    }

    /// What the kernel identifies the policy by (selector, direction, type).
    pub fn id(&self) -> PolicyId {
        PolicyId {
            sel: self.sel,
            dir: self.dir,
            ptype: self.ptype,
            index: 0,
        }
    }
}

/// `xfrm_userpolicy_id` + type: the key for delete and get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId {
    pub sel: Selector,
    pub dir: Dir,
    pub ptype: PolicyType,
    /// Non-zero: look up by the kernel's index instead of the selector.
    pub index: u32,
}

/// The key of a state: destination, SPI, protocol, and the source (route-optimisation
/// states have no SPI; the kernel finds them by addresses and protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId {
    pub dst: Ipv6Addr,
    pub src: Ipv6Addr,
    pub spi: u32,
    pub proto: u8,
}

/// `xfrm_usersa_info` + `XFRMA_COADDR` (+ `XFRMA_LASTUSED` on read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub sel: Selector,
    pub id: StateId,
    pub mode: u8,
    pub reqid: u32,
    pub seq: u32,
    pub replay_window: u8,
    pub flags: u8,
    pub coaddr: Option<Ipv6Addr>,
    pub lifetime: Lifetime,
    /// Filled in by the kernel on read.
    pub current: Option<LifetimeCur>,
    /// `XFRMA_LASTUSED` on read: when a packet last used the state (seconds since the
    /// epoch). umip's correspondent sends a Binding Refresh Request only for bindings used
    /// recently; this is where it learns that.
    pub last_used: Option<u64>,
}

impl State {
    /// A route-optimisation state for packets `src` → `dst` (a /128 selector on both,
    /// any protocol): `proto` [`IPPROTO_ROUTING`] puts a Type 2 Routing Header / expects
    /// one, [`IPPROTO_DSTOPTS`] a Home Address option, both naming `coa`.
    pub fn ro(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, coa: Ipv6Addr) -> State {
        State {
            sel: Selector::hosts(src, dst),
            id: StateId {
                dst,
                src,
                spi: 0,
                proto,
            },
            mode: XFRM_MODE_ROUTEOPTIMIZATION,
            reqid: 0,
            seq: 0,
            replay_window: 0,
            flags: 0,
            coaddr: Some(coa),
            lifetime: Lifetime::default(),
            current: None,
            last_used: None,
        }
    }

    /// A wildcard receive state: accepts `proto`'s header from any peer (the kernel checks
    /// nothing but its presence; the daemon checks the binding).
    pub fn wildcard_receive(proto: u8) -> State {
        State {
            sel: Selector::any(),
            id: StateId {
                dst: Ipv6Addr::UNSPECIFIED,
                src: Ipv6Addr::UNSPECIFIED,
                spi: 0,
                proto,
            },
            flags: XFRM_STATE_WILDRECV,
            coaddr: Some(Ipv6Addr::UNSPECIFIED),
            ..State::ro(
                Ipv6Addr::UNSPECIFIED,
                Ipv6Addr::UNSPECIFIED,
                proto,
                Ipv6Addr::UNSPECIFIED,
            )
        }
    }
}

/// `XFRM_MSG_ACQUIRE`: a packet matched a template with no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquire {
    pub dst: Ipv6Addr,
    pub src: Ipv6Addr,
    pub spi: u32,
    pub proto: u8,
    /// The packet's flow.
    pub sel: Selector,
    /// The policy it matched.
    pub policy: Policy,
    pub seq: u32,
}

/// `XFRM_MSG_REPORT`: the kernel's MIP6 code refused a packet (a Home Address option
/// without a binding), with the packet's flow and the option's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub proto: u8,
    pub sel: Selector,
    pub coaddr: Option<Ipv6Addr>,
}

/// One decoded netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ack {
        seq: u32,
    },
    Error {
        seq: u32,
        errno: i32,
        /// The extended-ack reason, when the kernel gave one.
        reason: Option<String>,
    },
    Done {
        seq: u32,
    },
    Policy {
        seq: u32,
        policy: Policy,
    },
    State {
        seq: u32,
        state: State,
    },
    Acquire(Acquire),
    Report(Report),
    Other {
        msg_type: u16,
    },
}

/// A refusal from the kernel: the errno and, on current kernels, its reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfrmError {
    pub op: &'static str,
    pub errno: i32,
    pub reason: Option<String>,
}

impl fmt::Display for XfrmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.op,
            io::Error::from_raw_os_error(self.errno)
        )?;
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

impl std::error::Error for XfrmError {}

impl From<XfrmError> for io::Error {
    fn from(e: XfrmError) -> io::Error {
        io::Error::new(io::Error::from_raw_os_error(e.errno).kind(), e)
    }
}

/// The errno behind an error from this module (kernel refusals carry it inside).
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|i| i.downcast_ref::<XfrmError>())
            .map(|x| x.errno)
    })
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one datagram; `None` when it did not come from the kernel (dropped).
fn recv_from_kernel(socket: &Socket, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    buf.clear();
    buf.reserve(RECV_BUF);
    let (n, from) = socket.recv_from(buf, 0)?;
    if from.port_number() != 0 {
        return Ok(None);
    }
    if n > buf.len() {
        return Err(invalid("netlink datagram truncated"));
    }
    Ok(Some(n))
}

/// A request socket for XFRM, in the network namespace the calling thread is in.
pub struct Xfrm {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// Datagrams dropped because their sender was not the kernel.
    pub foreign_dropped: u64,
}

impl Xfrm {
    /// Fails with `EPROTONOSUPPORT` on a kernel without `CONFIG_XFRM_USER`.
    pub fn open() -> io::Result<Xfrm> {
        let mut socket = Socket::new(NETLINK_XFRM)?;
        socket.bind_auto()?;
        // The reason in words ("Requested type not found") makes errors and the MIP6
        // probe explain themselves; older kernels without it still answer with errno.
        let _ = socket.set_ext_ack(true);
        Ok(Xfrm {
            socket,
            seq: std::process::id().wrapping_mul(7919),
            buf: Vec::with_capacity(RECV_BUF),
            foreign_dropped: 0,
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn recv_messages(&mut self) -> io::Result<Vec<Message>> {
        loop {
            match recv_from_kernel(&self.socket, &mut self.buf)? {
                Some(_) => return parse_datagram(&self.buf),
                None => self.foreign_dropped += 1,
            }
        }
    }

    /// Sends a request that asks for an ACK and waits for it.
    fn request(&mut self, op: &'static str, encode: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        let seq = self.next_seq();
        self.socket.send(&encode(seq), 0)?;
        loop {
            for m in self.recv_messages()? {
                match m {
                    Message::Ack { seq: s } if s == seq => return Ok(()),
                    Message::Error {
                        seq: s,
                        errno,
                        reason,
                    } if s == seq => return Err(XfrmError { op, errno, reason }.into()),
                    _ => {}
                }
            }
        }
    }

    /// Sends a request answered by messages (a dump ends with `NLMSG_DONE`, a get with one
    /// message) and collects them.
    fn query(
        &mut self,
        op: &'static str,
        dump: bool,
        encode: impl FnOnce(u32) -> Vec<u8>,
    ) -> io::Result<Vec<Message>> {
        let seq = self.next_seq();
        self.socket.send(&encode(seq), 0)?;
        let mut out = Vec::new();
        loop {
            for m in self.recv_messages()? {
                match m {
                    Message::Done { seq: s } if s == seq => return Ok(out),
                    Message::Error {
                        seq: s,
                        errno,
                        reason,
                    } if s == seq => return Err(XfrmError { op, errno, reason }.into()),
                    Message::Policy { seq: s, .. } | Message::State { seq: s, .. } if s == seq => {
                        out.push(m);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn add_policy(&mut self, p: &Policy) -> io::Result<()> {
        self.request("XFRM_MSG_NEWPOLICY", |s| {
            codec::encode_new_policy(s, p, false)
        })
    }

    /// Adds or replaces.
    pub fn update_policy(&mut self, p: &Policy) -> io::Result<()> {
        self.request("XFRM_MSG_UPDPOLICY", |s| {
            codec::encode_new_policy(s, p, true)
        })
    }

    pub fn del_policy(&mut self, id: &PolicyId) -> io::Result<()> {
        self.request("XFRM_MSG_DELPOLICY", |s| codec::encode_del_policy(s, id))
    }

    /// `Ok(None)` when there is no such policy.
    pub fn get_policy(&mut self, id: &PolicyId) -> io::Result<Option<Policy>> {
        match self.query("XFRM_MSG_GETPOLICY", false, |s| {
            codec::encode_get_policy(s, id)
        }) {
            Ok(ms) => Ok(ms.into_iter().find_map(|m| match m {
                Message::Policy { policy, .. } => Some(policy),
                _ => None,
            })),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every policy, main and sub.
    pub fn policies(&mut self) -> io::Result<Vec<Policy>> {
        let ms = self.query("XFRM_MSG_GETPOLICY dump", true, codec::encode_dump_policies)?;
        Ok(ms
            .into_iter()
            .filter_map(|m| match m {
                Message::Policy { policy, .. } => Some(policy),
                _ => None,
            })
            .collect())
    }

    pub fn add_state(&mut self, st: &State) -> io::Result<()> {
        self.request("XFRM_MSG_NEWSA", |s| codec::encode_new_sa(s, st, false))
    }

    /// Adds or replaces (a binding's new care-of address).
    pub fn update_state(&mut self, st: &State) -> io::Result<()> {
        self.request("XFRM_MSG_UPDSA", |s| codec::encode_new_sa(s, st, true))
    }

    pub fn del_state(&mut self, id: &StateId) -> io::Result<()> {
        self.request("XFRM_MSG_DELSA", |s| codec::encode_del_sa(s, id))
    }

    /// One state with its current lifetime and last use; `Ok(None)` when absent.
    pub fn get_state(&mut self, id: &StateId) -> io::Result<Option<State>> {
        match self.query("XFRM_MSG_GETSA", false, |s| codec::encode_get_sa(s, id)) {
            Ok(ms) => Ok(ms.into_iter().find_map(|m| match m {
                Message::State { state, .. } => Some(state),
                _ => None,
            })),
            Err(e) if errno(&e) == Some(libc::ESRCH) || errno(&e) == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn states(&mut self) -> io::Result<Vec<State>> {
        let ms = self.query("XFRM_MSG_GETSA dump", true, codec::encode_dump_states)?;
        Ok(ms
            .into_iter()
            .filter_map(|m| match m {
                Message::State { state, .. } => Some(state),
                _ => None,
            })
            .collect())
    }

    /// Removes every state of `proto` (0: all, route-optimisation states included; see
    /// [`IPSEC_PROTO_ANY`]) in this namespace — other programs' too: for test
    /// namespaces, never for a daemon on a shared host (it removes its own objects one by
    /// one through its registry).
    pub fn flush_states(&mut self, proto: u8) -> io::Result<()> {
        self.request("XFRM_MSG_FLUSHSA", |s| codec::encode_flush_sa(s, proto))
    }

    /// Removes every policy of `ptype`; same caveat as [`Xfrm::flush_states`].
    pub fn flush_policies(&mut self, ptype: PolicyType) -> io::Result<()> {
        self.request("XFRM_MSG_FLUSHPOLICY", |s| {
            codec::encode_flush_policy(s, ptype)
        })
    }
}

/// Which reports a [`XfrmMonitor`] listens to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Groups {
    pub acquire: bool,
    pub report: bool,
    pub expire: bool,
}

/// A report from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XfrmEvent {
    Acquire(Box<Acquire>),
    Report(Report),
    /// A state reached its lifetime (`XFRM_MSG_EXPIRE`; not decoded further).
    Expire,
}

/// The multicast listener, non-blocking, for the daemon's event loop.
pub struct XfrmMonitor {
    socket: Socket,
    buf: Vec<u8>,
    /// Datagrams dropped because their sender was not the kernel (CVE-2010-2523).
    pub foreign_dropped: u64,
    /// Datagrams dropped because they did not parse.
    pub malformed: u64,
}

impl XfrmMonitor {
    pub fn open(groups: Groups) -> io::Result<XfrmMonitor> {
        let mut socket = Socket::new(NETLINK_XFRM)?;
        socket.bind_auto()?;
        for (on, g) in [
            (groups.acquire, XFRMNLGRP_ACQUIRE),
            (groups.report, XFRMNLGRP_REPORT),
            (groups.expire, XFRMNLGRP_EXPIRE),
        ] {
            if on {
                socket.add_membership(g)?;
            }
        }
        socket.set_non_blocking(true)?;
        // A burst of reports must not make recv fail; lost ones are lost either way.
        let _ = socket.set_no_enobufs(true);
        Ok(XfrmMonitor {
            socket,
            buf: Vec::with_capacity(RECV_BUF),
            foreign_dropped: 0,
            malformed: 0,
        })
    }

    /// The socket's netlink port id (what a sender would address).
    pub fn port_id(&self) -> io::Result<u32> {
        let mut addr = netlink_sys::SocketAddr::new(0, 0);
        self.socket.get_address(&mut addr)?;
        Ok(addr.port_number())
    }

    /// Drains what is readable; nothing readable is `Ok(empty)`.
    pub fn recv(&mut self) -> io::Result<Vec<XfrmEvent>> {
        let mut out = Vec::new();
        loop {
            match recv_from_kernel(&self.socket, &mut self.buf) {
                Ok(None) => self.foreign_dropped += 1,
                Ok(Some(_)) => match parse_datagram(&self.buf) {
                    Ok(ms) => out.extend(ms.into_iter().filter_map(|m| match m {
                        Message::Acquire(a) => Some(XfrmEvent::Acquire(Box::new(a))),
                        Message::Report(r) => Some(XfrmEvent::Report(r)),
                        Message::Other {
                            msg_type: codec::XFRM_MSG_EXPIRE,
                        } => Some(XfrmEvent::Expire),
                        _ => None,
                    })),
                    Err(_) => self.malformed += 1,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for XfrmMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests;
