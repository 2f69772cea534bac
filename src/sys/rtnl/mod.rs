//! rtnetlink (`NETLINK_ROUTE`): the links, IPv6 addresses, routes, rules and proxy
//! neighbour entries the daemon reads and installs, and the multicast events a mobile node
//! watches to detect movement.
//!
//! [`Rtnl`] is a request socket: every request waits for the kernel's ACK (an
//! `NLMSG_ERROR` with code 0) and turns a negative code into an [`io::Error`] carrying the
//! errno and the kernel's extended-ACK text; dumps read multipart replies up to
//! `NLMSG_DONE`. [`RtnlMonitor`] is a non-blocking multicast listener.
//!
//! Netlink input is untrusted like network input (umip's CVE-2010-2523 was a netlink
//! message from a local user process taken for the kernel's): every datagram is checked to
//! come from port 0 (the kernel), every reply to carry our sequence number, and every
//! length before use ([`parse::parse_datagram`], fuzzed by `fuzz_targets/rtnl.rs`). The
//! request socket is also `connect`ed to the kernel, which makes the kernel refuse unicasts
//! from other processes before they reach us.
//!
//! Requests are built with `netlink-packet-route` ([`msg`]); replies and events are decoded
//! by our own length-checked parser ([`parse`]). Both are pure.

pub mod msg;
pub mod parse;
pub mod seg6;

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use parse::Parsed;

// --- constants (uapi values) --------------------------------------------------------------

/// `IFA_F_*` address flags (`linux/if_addr.h`); the ones above 0x80 travel in `IFA_FLAGS`.
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_OPTIMISTIC: u32 = 0x04;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_HOMEADDRESS: u32 = 0x10;
pub const IFA_F_DEPRECATED: u32 = 0x20;
pub const IFA_F_TENTATIVE: u32 = 0x40;
pub const IFA_F_PERMANENT: u32 = 0x80;
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// Address scopes (`RT_SCOPE_*`).
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;

/// Route protocol of everything the daemon installs (umip's `RTPROT_MIP`), so a restart
/// after a crash can tell its leftovers from other routes.
pub const RTPROT_MIP: u8 = 16;
pub const RTPROT_KERNEL: u8 = 2;
pub const RTPROT_BOOT: u8 = 3;
pub const RTPROT_RA: u8 = 9;
/// umip's private routing table (`RT6_TABLE_MIP6`).
pub const MIP6D_TABLE: u32 = 252;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_TABLE_LOCAL: u32 = 255;

/// Neighbour flags (`NTF_*`) and states (`NUD_*`).
pub const NTF_PROXY: u8 = 0x08;
pub const NTF_ROUTER: u8 = 0x80;
pub const NUD_INCOMPLETE: u16 = 0x01;
pub const NUD_REACHABLE: u16 = 0x02;
pub const NUD_STALE: u16 = 0x04;
pub const NUD_PROBE: u16 = 0x10;
pub const NUD_NOARP: u16 = 0x40;
pub const NUD_PERMANENT: u16 = 0x80;

/// How long a request waits for the kernel's answer before giving up with `TimedOut`
/// (the kernel answers in microseconds; this only bounds a lost reply).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Large enough for the kernel's biggest dump datagram (it fills up to 32 KiB, or the
/// page size if larger); anything bigger is reported as truncated, not misread.
const RECV_BUF: usize = 64 * 1024;

// --- the objects --------------------------------------------------------------------------

/// A network interface (`RTM_NEWLINK`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_RUNNING`: operationally up (carrier).
    pub running: bool,
    pub mtu: u32,
    /// `IFLA_INFO_KIND` ("dummy", "veth", "tun", "ip6tnl", …); `None` for plain devices.
    pub kind: Option<String>,
    /// `IFLA_ADDRESS`, the link-layer address.
    pub mac: Option<Vec<u8>>,
}

/// An IPv6 address on an interface (`RTM_NEWADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    /// `IFA_F_*`, all 32 bits (from `IFA_FLAGS` when the kernel sends it).
    pub flags: u32,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// Seconds; `None` is forever.
    pub valid_lft: Option<u32>,
    pub preferred_lft: Option<u32>,
}

impl Default for Address {
    fn default() -> Self {
        Address {
            index: 0,
            addr: Ipv6Addr::UNSPECIFIED,
            prefix_len: 128,
            flags: 0,
            scope: RT_SCOPE_UNIVERSE,
            valid_lft: None,
            preferred_lft: None,
        }
    }
}

/// An IPv6 route (`RTM_NEWROUTE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv6Addr,
    pub dst_len: u8,
    /// `RTA_PREFSRC`.
    pub src: Option<Ipv6Addr>,
    pub gateway: Option<Ipv6Addr>,
    pub oif: Option<u32>,
    pub table: u32,
    /// `RTA_PRIORITY`, the metric; the kernel picks 1024 when a request leaves it out.
    pub priority: Option<u32>,
    /// `RTAX_MTU`.
    pub mtu: Option<u32>,
    /// `RTPROT_*`.
    pub protocol: u8,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            dst: Ipv6Addr::UNSPECIFIED,
            dst_len: 0,
            src: None,
            gateway: None,
            oif: None,
            table: MIP6D_TABLE,
            priority: None,
            mtu: None,
            protocol: RTPROT_MIP,
        }
    }
}

/// What a matching rule does (`FR_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleAction {
    /// Look the destination up in `table`.
    #[default]
    ToTable,
    Goto,
    Nop,
    /// Drop silently (umip's "HoA traffic never leaks natively" rule).
    Blackhole,
    Unreachable,
    Prohibit,
    Other(u8),
}

impl From<u8> for RuleAction {
    fn from(v: u8) -> Self {
        match v {
            1 => RuleAction::ToTable,
            2 => RuleAction::Goto,
            3 => RuleAction::Nop,
            6 => RuleAction::Blackhole,
            7 => RuleAction::Unreachable,
            8 => RuleAction::Prohibit,
            v => RuleAction::Other(v),
        }
    }
}

impl From<RuleAction> for u8 {
    fn from(a: RuleAction) -> u8 {
        match a {
            RuleAction::ToTable => 1,
            RuleAction::Goto => 2,
            RuleAction::Nop => 3,
            RuleAction::Blackhole => 6,
            RuleAction::Unreachable => 7,
            RuleAction::Prohibit => 8,
            RuleAction::Other(v) => v,
        }
    }
}

/// An IPv6 policy routing rule (`RTM_NEWRULE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    /// The table for [`RuleAction::ToTable`]; 0 otherwise.
    pub table: u32,
    pub src: Option<(Ipv6Addr, u8)>,
    pub dst: Option<(Ipv6Addr, u8)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// `FRA_PROTOCOL` (`RTPROT_*`).
    pub protocol: u8,
    pub action: RuleAction,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            priority: 0,
            table: MIP6D_TABLE,
            src: None,
            dst: None,
            iif: None,
            oif: None,
            protocol: RTPROT_MIP,
            action: RuleAction::ToTable,
        }
    }
}

/// An IPv6 neighbour cache or proxy entry (`RTM_NEWNEIGH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub addr: Ipv6Addr,
    pub lladdr: Option<Vec<u8>>,
    /// `NUD_*`.
    pub state: u16,
    /// `NTF_*` ([`NTF_PROXY`], [`NTF_ROUTER`]).
    pub flags: u8,
    /// `NDA_PROTOCOL` (`RTPROT_*`; 0 when absent). Proxy entries of ours carry
    /// [`RTPROT_MIP`], so a restart after a crash recognises them.
    pub protocol: u8,
}

/// What a [`RtnlMonitor`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtnlEvent {
    NewLink(Link),
    DelLink(Link),
    NewAddress(Address),
    DelAddress(Address),
    NewRoute(Route),
    DelRoute(Route),
    NewRule(Rule),
    DelRule(Rule),
    NewNeigh(Neighbour),
    DelNeigh(Neighbour),
    /// The kernel dropped events because we read too slowly (`ENOBUFS`): re-read the
    /// state that matters with [`Rtnl`].
    Overrun,
}

/// rtnetlink multicast groups (`RTNLGRP_*`) a monitor joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Groups(u64);

impl Groups {
    pub const LINK: Groups = Groups(1 << 1);
    pub const NEIGH: Groups = Groups(1 << 3);
    pub const IPV6_IFADDR: Groups = Groups(1 << 9);
    pub const IPV6_ROUTE: Groups = Groups(1 << 11);
    /// Per-interface IPv6 state (RA received, …), as `NewLink` events.
    pub const IPV6_IFINFO: Groups = Groups(1 << 12);
    pub const IPV6_RULE: Groups = Groups(1 << 19);

    pub const fn empty() -> Groups {
        Groups(0)
    }

    pub const fn union(self, other: Groups) -> Groups {
        Groups(self.0 | other.0)
    }

    fn numbers(self) -> impl Iterator<Item = u32> {
        (0..64u32).filter(move |n| self.0 & (1 << n) != 0)
    }
}

impl std::ops::BitOr for Groups {
    type Output = Groups;
    fn bitor(self, other: Groups) -> Groups {
        self.union(other)
    }
}

// --- the request socket -------------------------------------------------------------------

/// A request the kernel refused: the errno, what we asked, and the kernel's reason text
/// (extended ACK), if it gave one. It travels inside an [`io::Error`] whose kind is the
/// errno's; [`errno`] gets the number back.
#[derive(Debug)]
pub struct KernelError {
    pub errno: i32,
    pub what: &'static str,
    pub reason: Option<String>,
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.what,
            io::Error::from_raw_os_error(self.errno)
        )?;
        match &self.reason {
            Some(r) if !r.is_empty() => write!(f, ": {r}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for KernelError {}

/// The errno of an error from this module (a refused request or a failed system call).
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<KernelError>())
            .map(|k| k.errno)
    })
}

fn kernel_error(errno: i32, reason: Option<String>, what: &'static str) -> io::Error {
    let kind = io::Error::from_raw_os_error(errno).kind();
    io::Error::new(
        kind,
        KernelError {
            errno,
            what,
            reason,
        },
    )
}

/// A `NETLINK_ROUTE` request socket in the network namespace the calling thread was in
/// when it was opened.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Error messages with the kernel's reason text, and without the echoed request.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        super::raw::set_rcvtimeo(socket.as_raw_fd(), Some(REPLY_TIMEOUT))?;
        Ok(Rtnl {
            socket,
            // Start from the clock so a reply to a previous process's request on a reused
            // port id is unlikely to carry a sequence number we wait for.
            seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(1),
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// One datagram from the kernel, parsed; datagrams from anyone else are skipped.
    fn recv_parsed(&mut self) -> io::Result<Vec<Parsed>> {
        loop {
            self.buf.clear();
            let (n, from) = self.socket.recv_from(&mut self.buf, libc::MSG_TRUNC)?;
            if from.port_number() != 0 {
                tracing::warn!(
                    pid = from.port_number(),
                    "rtnetlink: dropped a message not from the kernel"
                );
                continue;
            }
            if n > self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("rtnetlink datagram of {n} bytes truncated"),
                ));
            }
            return parse::parse_datagram(&self.buf);
        }
    }

    /// Sends `m` with `NLM_F_ACK | flags` and waits for the ACK.
    fn request(
        &mut self,
        m: RouteNetlinkMessage,
        flags: u16,
        what: &'static str,
    ) -> io::Result<()> {
        let seq = self.next_seq();
        self.socket
            .send(&msg::encode(m, NLM_F_ACK | flags, seq), 0)?;
        loop {
            for p in self.recv_parsed()? {
                if p.seq() != seq {
                    continue;
                }
                match p {
                    Parsed::Ack { .. } => return Ok(()),
                    Parsed::Error { errno, msg, .. } => return Err(kernel_error(errno, msg, what)),
                    _ => {}
                }
            }
        }
    }

    /// Sends a dump request and collects the objects up to `NLMSG_DONE`.
    fn dump(&mut self, m: RouteNetlinkMessage, what: &'static str) -> io::Result<Vec<RtnlEvent>> {
        let seq = self.next_seq();
        self.socket.send(&msg::encode(m, NLM_F_DUMP, seq), 0)?;
        let mut out = Vec::new();
        loop {
            for p in self.recv_parsed()? {
                if p.seq() != seq {
                    continue;
                }
                match p {
                    Parsed::Done { .. } => return Ok(out),
                    Parsed::Error { errno, msg, .. } => return Err(kernel_error(errno, msg, what)),
                    Parsed::Object { event, .. } => out.push(event),
                    Parsed::Garbled { reason, .. } => {
                        // One object the parser does not understand must not hide all
                        // the others; say so and go on.
                        tracing::warn!(%reason, "rtnetlink: skipped an undecodable {what} entry");
                    }
                    Parsed::Ack { .. } | Parsed::Other { .. } => {}
                }
            }
        }
    }

    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        Ok(self
            .dump(msg::dump_links(), "dump links")?
            .into_iter()
            .filter_map(|e| match e {
                RtnlEvent::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    pub fn link_by_index(&mut self, index: u32) -> io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.index == index))
    }

    pub fn set_link_up(&mut self, index: u32, up: bool) -> io::Result<()> {
        self.request(msg::set_link(index, Some(up), None), 0, "set link up/down")
    }

    pub fn set_link_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        self.request(msg::set_link(index, None, Some(mtu)), 0, "set link MTU")
    }

    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        self.request(msg::delete_link(index), 0, "delete link")
    }

    fn create_link(
        &mut self,
        m: RouteNetlinkMessage,
        name: &str,
        what: &'static str,
    ) -> io::Result<u32> {
        self.request(m, NLM_F_CREATE | NLM_F_EXCL, what)?;
        self.link_by_name(name)?.map(|l| l.index).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name} vanished after {what}"),
            )
        })
    }

    /// A dummy interface (tests and the testbed use them as stand-in links).
    pub fn create_dummy(&mut self, name: &str) -> io::Result<u32> {
        self.create_link(msg::new_dummy(name), name, "create dummy link")
    }

    /// A veth pair; returns the index of `name` (the tests' stand-in for a real link,
    /// since not every kernel has `dummy`).
    pub fn create_veth(&mut self, name: &str, peer: &str) -> io::Result<u32> {
        self.create_link(msg::new_veth(name, peer), name, "create veth pair")
    }

    /// An IPv6-in-IPv6 tunnel `local` → `remote` (kind `ip6tnl`, proto 41), for the kernel
    /// data path. Kernels without `ip6_tunnel` answer `EOPNOTSUPP`; the error then says
    /// so in words, with kind `Unsupported`.
    pub fn create_ip6tnl(
        &mut self,
        name: &str,
        local: Ipv6Addr,
        remote: Ipv6Addr,
    ) -> io::Result<u32> {
        self.create_link(
            msg::new_ip6tnl(name, local, remote),
            name,
            "create ip6tnl link",
        )
        .map_err(
            |e| match e.get_ref().and_then(|i| i.downcast_ref::<KernelError>()) {
                Some(k) if k.errno == libc::EOPNOTSUPP => io::Error::new(
                    io::ErrorKind::Unsupported,
                    KernelError {
                        errno: k.errno,
                        what: "create ip6tnl link",
                        reason: Some(format!(
                        "this kernel has no ip6_tunnel (CONFIG_IPV6_TUNNEL) support; it said: {}",
                        k.reason.as_deref().unwrap_or("-")
                    )),
                    },
                ),
                _ => e,
            },
        )
    }

    /// Every IPv6 address of every interface.
    pub fn addresses(&mut self) -> io::Result<Vec<Address>> {
        Ok(self
            .dump(msg::dump_addresses(), "dump addresses")?
            .into_iter()
            .filter_map(|e| match e {
                RtnlEvent::NewAddress(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Adds (or updates, `NLM_F_REPLACE`) an address with `a.flags` and lifetimes.
    pub fn add_address(&mut self, a: &Address) -> io::Result<()> {
        self.request(
            msg::new_address(a),
            NLM_F_CREATE | NLM_F_REPLACE,
            "add address",
        )
    }

    pub fn del_address(&mut self, a: &Address) -> io::Result<()> {
        self.request(msg::del_address(a), 0, "delete address")
    }

    /// The IPv6 routes of `table`.
    pub fn routes(&mut self, table: u32) -> io::Result<Vec<Route>> {
        Ok(self
            .dump(msg::dump_routes(), "dump routes")?
            .into_iter()
            .filter_map(|e| match e {
                RtnlEvent::NewRoute(r) if r.table == table => Some(r),
                _ => None,
            })
            .collect())
    }

    pub fn add_route(&mut self, r: &Route) -> io::Result<()> {
        self.request(msg::new_route(r), NLM_F_CREATE | NLM_F_REPLACE, "add route")
    }

    /// Deletes the route matching `r` — protocol and (if given) metric, gateway and
    /// interface included.
    pub fn del_route(&mut self, r: &Route) -> io::Result<()> {
        self.request(msg::del_route(r), 0, "delete route")
    }

    /// Every IPv6 rule.
    pub fn rules(&mut self) -> io::Result<Vec<Rule>> {
        Ok(self
            .dump(msg::dump_rules(), "dump rules")?
            .into_iter()
            .filter_map(|e| match e {
                RtnlEvent::NewRule(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    pub fn add_rule(&mut self, r: &Rule) -> io::Result<()> {
        self.request(msg::new_rule(r), NLM_F_CREATE | NLM_F_EXCL, "add rule")
    }

    pub fn del_rule(&mut self, r: &Rule) -> io::Result<()> {
        self.request(msg::del_rule(r), 0, "delete rule")
    }

    /// Answer neighbour solicitations for `addr` on interface `ifindex` (needs the
    /// interface's `proxy_ndp` sysctl on). The entry is marked with [`RTPROT_MIP`].
    pub fn add_proxy_neigh(&mut self, ifindex: u32, addr: Ipv6Addr) -> io::Result<()> {
        self.request(
            msg::new_neighbour(&proxy(ifindex, addr)),
            NLM_F_CREATE | NLM_F_REPLACE,
            "add proxy neighbour",
        )
    }

    pub fn del_proxy_neigh(&mut self, ifindex: u32, addr: Ipv6Addr) -> io::Result<()> {
        self.request(
            msg::del_neighbour(&proxy(ifindex, addr)),
            0,
            "delete proxy neighbour",
        )
    }

    /// The IPv6 proxy neighbour entries.
    pub fn proxy_neighs(&mut self) -> io::Result<Vec<Neighbour>> {
        self.neighbours_of(true)
    }

    /// The IPv6 neighbour cache.
    pub fn neighbours(&mut self) -> io::Result<Vec<Neighbour>> {
        self.neighbours_of(false)
    }

    fn neighbours_of(&mut self, proxy: bool) -> io::Result<Vec<Neighbour>> {
        Ok(self
            .dump(msg::dump_neighbours(proxy), "dump neighbours")?
            .into_iter()
            .filter_map(|e| match e {
                RtnlEvent::NewNeigh(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// Adds or replaces a neighbour cache entry (e.g. a permanent one for a router).
    pub fn add_neigh(&mut self, n: &Neighbour) -> io::Result<()> {
        self.request(
            msg::new_neighbour(n),
            NLM_F_CREATE | NLM_F_REPLACE,
            "add neighbour",
        )
    }

    pub fn del_neigh(&mut self, n: &Neighbour) -> io::Result<()> {
        self.request(msg::del_neighbour(n), 0, "delete neighbour")
    }
}

fn proxy(index: u32, addr: Ipv6Addr) -> Neighbour {
    Neighbour {
        index,
        addr,
        lladdr: None,
        state: NUD_PERMANENT,
        flags: NTF_PROXY,
        protocol: RTPROT_MIP,
    }
}

// --- the monitor --------------------------------------------------------------------------

/// A non-blocking listener on rtnetlink multicast groups, for a poll loop: register it
/// with mio (it is an [`mio::event::Source`]) and call [`recv`](Self::recv) when readable.
pub struct RtnlMonitor {
    socket: Socket,
    buf: Vec<u8>,
    dropped: u64,
    overruns: u64,
    garbled: u64,
}

impl RtnlMonitor {
    pub fn open(groups: Groups) -> io::Result<RtnlMonitor> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for g in groups.numbers() {
            socket.add_membership(g)?;
        }
        socket.set_non_blocking(true)?;
        // Address churn on a move comes in bursts; a larger buffer makes overruns rare.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(RtnlMonitor {
            socket,
            buf: Vec::with_capacity(RECV_BUF),
            dropped: 0,
            overruns: 0,
            garbled: 0,
        })
    }

    /// Everything readable now, in order; an empty vector when nothing is. Datagrams not
    /// from the kernel are dropped and counted ([`dropped`](Self::dropped)).
    pub fn recv(&mut self) -> io::Result<Vec<RtnlEvent>> {
        let mut events = Vec::new();
        loop {
            self.buf.clear();
            match self.socket.recv_from(&mut self.buf, libc::MSG_TRUNC) {
                Ok((n, from)) => {
                    if from.port_number() != 0 {
                        self.dropped += 1;
                        tracing::warn!(
                            pid = from.port_number(),
                            "rtnetlink monitor: dropped a message not from the kernel"
                        );
                        continue;
                    }
                    if n > self.buf.len() {
                        // Part of the datagram is lost; treat it like an overrun.
                        self.overruns += 1;
                        events.push(RtnlEvent::Overrun);
                        continue;
                    }
                    match parse::parse_datagram(&self.buf) {
                        Ok(parsed) => {
                            for p in parsed {
                                match p {
                                    Parsed::Object { event, .. } => events.push(event),
                                    Parsed::Garbled { .. } => self.garbled += 1,
                                    _ => {}
                                }
                            }
                        }
                        Err(_) => self.garbled += 1,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(events),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    events.push(RtnlEvent::Overrun);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Datagrams dropped because they did not come from the kernel.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Times the kernel reported lost events.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Messages from the kernel that did not decode.
    pub fn garbled(&self) -> u64 {
        self.garbled
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl mio::event::Source for RtnlMonitor {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.as_raw_fd()).deregister(registry)
    }
}

#[cfg(test)]
mod tests;
