//! The bytes of XFRM netlink messages: pure encoders and a parser that never panics.
//!
//! The kernel structures (`include/uapi/linux/xfrm.h`) are written out field by field at
//! their x86-64 / aarch64 offsets, which the tests pin (sizes and offsets measured with
//! `offsetof` against the 6.x uapi header). Addresses, SPIs and ports are big-endian as
//! on the wire; every other integer, and the netlink framing, is host byte order.
//!
//! ```text
//! xfrm_selector (56)   daddr 0, saddr 16, dport 32, dport_mask 34, sport 36,
//!                      sport_mask 38, family 40, prefixlen_d 42, prefixlen_s 43,
//!                      proto 44, ifindex 48, user 52
//! xfrm_id (24)         daddr 0, spi 16, proto 20
//! xfrm_lifetime_cfg    8 × u64 (64)            xfrm_lifetime_cur   4 × u64 (32)
//! xfrm_usersa_info     sel 0, id 56, saddr 80, lft 96, curlft 160, stats 192, seq 204,
//!   (224)              reqid 208, family 212, mode 214, replay_window 215, flags 216
//! xfrm_usersa_id (24)  daddr 0, spi 16, family 20, proto 22
//! xfrm_userpolicy_info sel 0, lft 56, curlft 120, priority 152, index 156, dir 160,
//!   (168)              action 161, flags 162, share 163
//! xfrm_userpolicy_id   sel 0, index 56, dir 60 (64)
//! xfrm_user_tmpl (64)  id 0, family 24, saddr 28, reqid 44, mode 48, share 49,
//!                      optional 50, aalgos 52, ealgos 56, calgos 60
//! xfrm_userpolicy_type type 0, reserved 1..6 (6)
//! xfrm_user_acquire    id 0, saddr 24, sel 40, policy 96, aalgos 264, ealgos 268,
//!   (280)              calgos 272, seq 276
//! xfrm_user_report     proto 0, sel 4 (60)
//! xfrm_usersa_flush    proto 0 (1)
//! ```

use super::{
    Acquire, Dir, Lifetime, LifetimeCur, Message, Policy, PolicyAction, PolicyId, PolicyType,
    Report, Selector, State, StateId, Template,
};
use std::io;
use std::net::Ipv6Addr;

// --- constants (uapi values) ---------------------------------------------------------------

pub(super) const XFRM_MSG_NEWSA: u16 = 0x10;
pub(super) const XFRM_MSG_DELSA: u16 = 0x11;
pub(super) const XFRM_MSG_GETSA: u16 = 0x12;
pub(super) const XFRM_MSG_NEWPOLICY: u16 = 0x13;
pub(super) const XFRM_MSG_DELPOLICY: u16 = 0x14;
pub(super) const XFRM_MSG_GETPOLICY: u16 = 0x15;
pub(super) const XFRM_MSG_ACQUIRE: u16 = 0x17;
pub(super) const XFRM_MSG_EXPIRE: u16 = 0x18;
pub(super) const XFRM_MSG_UPDPOLICY: u16 = 0x19;
pub(super) const XFRM_MSG_UPDSA: u16 = 0x1a;
pub(super) const XFRM_MSG_FLUSHSA: u16 = 0x1c;
pub(super) const XFRM_MSG_FLUSHPOLICY: u16 = 0x1d;
pub(super) const XFRM_MSG_REPORT: u16 = 0x20;

const XFRMA_TMPL: u16 = 5;
const XFRMA_SRCADDR: u16 = 13;
const XFRMA_COADDR: u16 = 14;
const XFRMA_LASTUSED: u16 = 15;
const XFRMA_POLICY_TYPE: u16 = 16;

const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
/// `nla_type` carries two flag bits (nested, network byte order) above the type proper.
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_CAPPED` on an error: only the header of the request is echoed back.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` on an error: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: a human-readable reason (`"Requested type not found"`).
const NLMSGERR_ATTR_MSG: u16 = 1;

const AF_INET6: u16 = 10;

pub(super) const SELECTOR_LEN: usize = 56;
const LIFETIME_CFG_LEN: usize = 64;
pub(super) const USERSA_INFO_LEN: usize = 224;
pub(super) const USERSA_ID_LEN: usize = 24;
pub(super) const USERPOLICY_INFO_LEN: usize = 168;
pub(super) const USERPOLICY_ID_LEN: usize = 64;
pub(super) const USER_TMPL_LEN: usize = 64;
const USERPOLICY_TYPE_LEN: usize = 6;
pub(super) const USER_ACQUIRE_LEN: usize = 280;
pub(super) const USER_REPORT_LEN: usize = 60;

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

// --- encoding ------------------------------------------------------------------------------

/// A netlink message under construction: header, fixed part, then attributes.
pub(super) struct MsgBuilder(Vec<u8>);

impl MsgBuilder {
    pub(super) fn new(msg_type: u16, flags: u16, seq: u32) -> MsgBuilder {
        let mut v = Vec::with_capacity(256);
        v.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        v.extend_from_slice(&msg_type.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel knows ours
        MsgBuilder(v)
    }

    /// Appends a fixed structure, padded to 4 as netlink aligns everything.
    pub(super) fn body(mut self, b: &[u8]) -> MsgBuilder {
        self.0.extend_from_slice(b);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    pub(super) fn attr(mut self, attr_type: u16, value: &[u8]) -> MsgBuilder {
        // Every attribute we send is a fixed structure or a few templates: far below u16.
        let len = NLA_HDRLEN + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&attr_type.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

pub(super) fn selector_bytes(s: &Selector) -> [u8; SELECTOR_LEN] {
    let mut b = [0u8; SELECTOR_LEN];
    put(&mut b, 0, &s.dst.octets());
    put(&mut b, 16, &s.src.octets());
    put(&mut b, 32, &s.dport.to_be_bytes());
    put(&mut b, 34, &s.dport_mask.to_be_bytes());
    put(&mut b, 36, &s.sport.to_be_bytes());
    put(&mut b, 38, &s.sport_mask.to_be_bytes());
    put(&mut b, 40, &AF_INET6.to_ne_bytes());
    b[42] = s.dst_len;
    b[43] = s.src_len;
    b[44] = s.proto;
    put(&mut b, 48, &s.ifindex.to_ne_bytes());
    b
}

fn lifetime_bytes(l: &Lifetime) -> [u8; LIFETIME_CFG_LEN] {
    let mut b = [0u8; LIFETIME_CFG_LEN];
    let fields = [
        l.soft_byte_limit,
        l.hard_byte_limit,
        l.soft_packet_limit,
        l.hard_packet_limit,
        l.soft_add_expires_seconds,
        l.hard_add_expires_seconds,
        l.soft_use_expires_seconds,
        l.hard_use_expires_seconds,
    ];
    for (i, f) in fields.iter().enumerate() {
        put(&mut b, i * 8, &f.to_ne_bytes());
    }
    b
}

fn tmpl_bytes(t: &Template) -> [u8; USER_TMPL_LEN] {
    let mut b = [0u8; USER_TMPL_LEN];
    put(&mut b, 0, &t.dst.octets());
    put(&mut b, 16, &t.spi.to_be_bytes());
    b[20] = t.proto;
    put(&mut b, 24, &AF_INET6.to_ne_bytes());
    put(&mut b, 28, &t.src.octets());
    put(&mut b, 44, &t.reqid.to_ne_bytes());
    b[48] = t.mode;
    b[49] = t.share;
    b[50] = u8::from(t.optional);
    put(&mut b, 52, &t.aalgos.to_ne_bytes());
    put(&mut b, 56, &t.ealgos.to_ne_bytes());
    put(&mut b, 60, &t.calgos.to_ne_bytes());
    b
}

fn policy_type_bytes(t: PolicyType) -> [u8; USERPOLICY_TYPE_LEN] {
    [t as u8, 0, 0, 0, 0, 0]
}

fn userpolicy_info(p: &Policy) -> [u8; USERPOLICY_INFO_LEN] {
    let mut b = [0u8; USERPOLICY_INFO_LEN];
    put(&mut b, 0, &selector_bytes(&p.sel));
    put(&mut b, 56, &lifetime_bytes(&p.lifetime));
    // curlft (120..152) is the kernel's to fill.
    put(&mut b, 152, &p.priority.to_ne_bytes());
    put(&mut b, 156, &p.index.to_ne_bytes());
    b[160] = p.dir as u8;
    b[161] = p.action as u8;
    b[162] = p.flags;
    b[163] = p.share;
    b
}

/// `XFRM_MSG_NEWPOLICY` (or `UPDPOLICY` with `update`): the policy, its type (`main` or
/// `sub`) and its templates.
pub fn encode_new_policy(seq: u32, p: &Policy, update: bool) -> Vec<u8> {
    let t = if update {
        XFRM_MSG_UPDPOLICY
    } else {
        XFRM_MSG_NEWPOLICY
    };
    let mut m = MsgBuilder::new(t, NLM_F_REQUEST | NLM_F_ACK, seq)
        .body(&userpolicy_info(p))
        .attr(XFRMA_POLICY_TYPE, &policy_type_bytes(p.ptype));
    if !p.templates.is_empty() {
        let mut v = Vec::with_capacity(p.templates.len() * USER_TMPL_LEN);
        for t in &p.templates {
            v.extend_from_slice(&tmpl_bytes(t));
        }
        m = m.attr(XFRMA_TMPL, &v);
    }
    m.finish()
}

fn userpolicy_id(id: &PolicyId) -> [u8; USERPOLICY_ID_LEN] {
    let mut b = [0u8; USERPOLICY_ID_LEN];
    put(&mut b, 0, &selector_bytes(&id.sel));
    put(&mut b, 56, &id.index.to_ne_bytes());
    b[60] = id.dir as u8;
    b
}

/// `XFRM_MSG_DELPOLICY` for the policy with this selector, direction and type.
pub fn encode_del_policy(seq: u32, id: &PolicyId) -> Vec<u8> {
    MsgBuilder::new(XFRM_MSG_DELPOLICY, NLM_F_REQUEST | NLM_F_ACK, seq)
        .body(&userpolicy_id(id))
        .attr(XFRMA_POLICY_TYPE, &policy_type_bytes(id.ptype))
        .finish()
}

/// `XFRM_MSG_GETPOLICY` for one policy; the answer is an `XFRM_MSG_NEWPOLICY`.
pub fn encode_get_policy(seq: u32, id: &PolicyId) -> Vec<u8> {
    MsgBuilder::new(XFRM_MSG_GETPOLICY, NLM_F_REQUEST, seq)
        .body(&userpolicy_id(id))
        .attr(XFRMA_POLICY_TYPE, &policy_type_bytes(id.ptype))
        .finish()
}

/// `XFRM_MSG_GETPOLICY` with `NLM_F_DUMP`: every policy, main and sub, ends with
/// `NLMSG_DONE`.
pub fn encode_dump_policies(seq: u32) -> Vec<u8> {
    MsgBuilder::new(XFRM_MSG_GETPOLICY, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .body(&[0u8; USERPOLICY_ID_LEN])
        .finish()
}

fn usersa_info(s: &State) -> [u8; USERSA_INFO_LEN] {
    let mut b = [0u8; USERSA_INFO_LEN];
    put(&mut b, 0, &selector_bytes(&s.sel));
    put(&mut b, 56, &s.id.dst.octets());
    put(&mut b, 72, &s.id.spi.to_be_bytes());
    b[76] = s.id.proto;
    put(&mut b, 80, &s.id.src.octets());
    put(&mut b, 96, &lifetime_bytes(&s.lifetime));
    // curlft and stats (160..204) are the kernel's to fill.
    put(&mut b, 204, &s.seq.to_ne_bytes());
    put(&mut b, 208, &s.reqid.to_ne_bytes());
    put(&mut b, 212, &AF_INET6.to_ne_bytes());
    b[214] = s.mode;
    b[215] = s.replay_window;
    b[216] = s.flags;
    b
}

/// `XFRM_MSG_NEWSA` (or `UPDSA` with `update`), with `XFRMA_COADDR` when the state has a
/// care-of address (route optimisation).
pub fn encode_new_sa(seq: u32, s: &State, update: bool) -> Vec<u8> {
    let t = if update {
        XFRM_MSG_UPDSA
    } else {
        XFRM_MSG_NEWSA
    };
    let mut m = MsgBuilder::new(t, NLM_F_REQUEST | NLM_F_ACK, seq).body(&usersa_info(s));
    if let Some(coa) = s.coaddr {
        m = m.attr(XFRMA_COADDR, &coa.octets());
    }
    m.finish()
}

fn usersa_id(id: &StateId) -> [u8; USERSA_ID_LEN] {
    let mut b = [0u8; USERSA_ID_LEN];
    put(&mut b, 0, &id.dst.octets());
    put(&mut b, 16, &id.spi.to_be_bytes());
    put(&mut b, 20, &AF_INET6.to_ne_bytes());
    b[22] = id.proto;
    b
}

/// Route-optimisation states carry no SPI: the kernel finds them by (destination,
/// source, protocol), the source travelling as `XFRMA_SRCADDR`.
fn sa_id_msg(msg_type: u16, flags: u16, seq: u32, id: &StateId) -> Vec<u8> {
    MsgBuilder::new(msg_type, flags, seq)
        .body(&usersa_id(id))
        .attr(XFRMA_SRCADDR, &id.src.octets())
        .finish()
}

/// `XFRM_MSG_DELSA`.
pub fn encode_del_sa(seq: u32, id: &StateId) -> Vec<u8> {
    sa_id_msg(XFRM_MSG_DELSA, NLM_F_REQUEST | NLM_F_ACK, seq, id)
}

/// `XFRM_MSG_GETSA` for one state; the answer is an `XFRM_MSG_NEWSA` with its current
/// lifetime and `XFRMA_LASTUSED`.
pub fn encode_get_sa(seq: u32, id: &StateId) -> Vec<u8> {
    sa_id_msg(XFRM_MSG_GETSA, NLM_F_REQUEST, seq, id)
}

/// `XFRM_MSG_GETSA` with `NLM_F_DUMP`: every state, ends with `NLMSG_DONE`.
pub fn encode_dump_states(seq: u32) -> Vec<u8> {
    MsgBuilder::new(XFRM_MSG_GETSA, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .body(&[0u8; USERSA_ID_LEN])
        .finish()
}

/// `XFRM_MSG_FLUSHSA` for one protocol; 0 for all (what `ip xfrm state flush` sends).
pub fn encode_flush_sa(seq: u32, proto: u8) -> Vec<u8> {
    let mut m = MsgBuilder::new(XFRM_MSG_FLUSHSA, NLM_F_REQUEST | NLM_F_ACK, seq)
        .body(&[proto])
        .finish();
    // The last (only) message of a datagram needs no padding; iproute2 sends 17 bytes,
    // and so do we, so the two stay byte-identical.
    m.truncate(NLMSG_HDRLEN + 1);
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// `XFRM_MSG_FLUSHPOLICY` for one policy type.
pub fn encode_flush_policy(seq: u32, ptype: PolicyType) -> Vec<u8> {
    MsgBuilder::new(XFRM_MSG_FLUSHPOLICY, NLM_F_REQUEST | NLM_F_ACK, seq)
        .attr(XFRMA_POLICY_TYPE, &policy_type_bytes(ptype))
        .finish()
}

// --- parsing -------------------------------------------------------------------------------

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// The selector at the start of `b` (which the caller checked holds [`SELECTOR_LEN`]).
fn parse_selector(b: &[u8]) -> Option<Selector> {
    Some(Selector {
        dst: addr(b, 0)?,
        src: addr(b, 16)?,
        dport: be_u16(b, 32)?,
        dport_mask: be_u16(b, 34)?,
        sport: be_u16(b, 36)?,
        sport_mask: be_u16(b, 38)?,
        dst_len: *b.get(42)?,
        src_len: *b.get(43)?,
        proto: *b.get(44)?,
        ifindex: i32::from_ne_bytes(b.get(48..52)?.try_into().ok()?),
    })
}

fn parse_lifetime(b: &[u8]) -> Option<Lifetime> {
    Some(Lifetime {
        soft_byte_limit: ne_u64(b, 0)?,
        hard_byte_limit: ne_u64(b, 8)?,
        soft_packet_limit: ne_u64(b, 16)?,
        hard_packet_limit: ne_u64(b, 24)?,
        soft_add_expires_seconds: ne_u64(b, 32)?,
        hard_add_expires_seconds: ne_u64(b, 40)?,
        soft_use_expires_seconds: ne_u64(b, 48)?,
        hard_use_expires_seconds: ne_u64(b, 56)?,
    })
}

fn parse_lifetime_cur(b: &[u8]) -> Option<LifetimeCur> {
    Some(LifetimeCur {
        bytes: ne_u64(b, 0)?,
        packets: ne_u64(b, 8)?,
        add_time: ne_u64(b, 16)?,
        use_time: ne_u64(b, 24)?,
    })
}

fn parse_tmpl(b: &[u8]) -> Option<Template> {
    Some(Template {
        dst: addr(b, 0)?,
        spi: be_u32(b, 16)?,
        proto: *b.get(20)?,
        src: addr(b, 28)?,
        reqid: ne_u32(b, 44)?,
        mode: *b.get(48)?,
        share: *b.get(49)?,
        optional: *b.get(50)? != 0,
        aalgos: ne_u32(b, 52)?,
        ealgos: ne_u32(b, 56)?,
        calgos: ne_u32(b, 60)?,
    })
}

fn dir_from(v: u8) -> Option<Dir> {
    match v {
        0 => Some(Dir::In),
        1 => Some(Dir::Out),
        2 => Some(Dir::Fwd),
        _ => None,
    }
}

/// The attributes after a fixed part, as (type, value) pairs. A length that runs past
/// the end or is shorter than the header is an error, not a panic.
fn attributes(mut b: &[u8]) -> io::Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while b.len() >= NLA_HDRLEN {
        let len = usize::from(ne_u16(b, 0).ok_or(invalid("attribute"))?);
        let t = ne_u16(b, 2).ok_or(invalid("attribute"))? & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > b.len() {
            return Err(invalid("attribute length"));
        }
        out.push((t, &b[NLA_HDRLEN..len]));
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

fn parse_policy_type(v: &[u8]) -> io::Result<PolicyType> {
    match v.first() {
        Some(0) => Ok(PolicyType::Main),
        Some(1) => Ok(PolicyType::Sub),
        _ => Err(invalid("XFRMA_POLICY_TYPE")),
    }
}

fn parse_templates(v: &[u8]) -> io::Result<Vec<Template>> {
    if v.len() % USER_TMPL_LEN != 0 {
        return Err(invalid("XFRMA_TMPL length"));
    }
    v.chunks_exact(USER_TMPL_LEN)
        .map(|c| parse_tmpl(c).ok_or(invalid("XFRMA_TMPL")))
        .collect()
}

/// A `xfrm_userpolicy_info` and the attributes after it.
fn parse_policy(info: &[u8], attrs: &[u8]) -> io::Result<Policy> {
    let bad = || invalid("xfrm_userpolicy_info");
    if info.len() < USERPOLICY_INFO_LEN {
        return Err(bad());
    }
    let mut p = Policy {
        sel: parse_selector(info).ok_or_else(bad)?,
        lifetime: parse_lifetime(&info[56..]).ok_or_else(bad)?,
        current: parse_lifetime_cur(&info[120..]),
        priority: ne_u32(info, 152).ok_or_else(bad)?,
        index: ne_u32(info, 156).ok_or_else(bad)?,
        dir: dir_from(info[160]).ok_or(invalid("policy direction"))?,
        action: match info[161] {
            0 => PolicyAction::Allow,
            1 => PolicyAction::Block,
            _ => return Err(invalid("policy action")),
        },
        flags: info[162],
        share: info[163],
        ptype: PolicyType::Main,
        templates: Vec::new(),
    };
    for (t, v) in attributes(attrs)? {
        match t {
            XFRMA_POLICY_TYPE => p.ptype = parse_policy_type(v)?,
            XFRMA_TMPL => p.templates = parse_templates(v)?,
            _ => {}
        }
    }
    Ok(p)
}

fn parse_state(body: &[u8]) -> io::Result<State> {
    let bad = || invalid("xfrm_usersa_info");
    let info = body.get(..USERSA_INFO_LEN).ok_or_else(bad)?;
    let mut s = State {
        sel: parse_selector(info).ok_or_else(bad)?,
        id: StateId {
            dst: addr(info, 56).ok_or_else(bad)?,
            spi: be_u32(info, 72).ok_or_else(bad)?,
            proto: info[76],
            src: addr(info, 80).ok_or_else(bad)?,
        },
        lifetime: parse_lifetime(&info[96..]).ok_or_else(bad)?,
        current: parse_lifetime_cur(&info[160..]),
        seq: ne_u32(info, 204).ok_or_else(bad)?,
        reqid: ne_u32(info, 208).ok_or_else(bad)?,
        mode: info[214],
        replay_window: info[215],
        flags: info[216],
        coaddr: None,
        last_used: None,
    };
    let attrs = body.get(align4(USERSA_INFO_LEN)..).unwrap_or(&[]);
    for (t, v) in attributes(attrs)? {
        match t {
            XFRMA_COADDR => s.coaddr = Some(addr(v, 0).ok_or(invalid("XFRMA_COADDR"))?),
            XFRMA_LASTUSED => s.last_used = Some(ne_u64(v, 0).ok_or(invalid("XFRMA_LASTUSED"))?),
            _ => {}
        }
    }
    Ok(s)
}

fn parse_acquire(body: &[u8]) -> io::Result<Acquire> {
    let bad = || invalid("xfrm_user_acquire");
    let b = body.get(..USER_ACQUIRE_LEN).ok_or_else(bad)?;
    let attrs = body.get(align4(USER_ACQUIRE_LEN)..).unwrap_or(&[]);
    // The embedded policy is followed by the message's attributes (templates, type).
    let policy = parse_policy(&b[96..96 + USERPOLICY_INFO_LEN], attrs)?;
    Ok(Acquire {
        dst: addr(b, 0).ok_or_else(bad)?,
        spi: be_u32(b, 16).ok_or_else(bad)?,
        proto: b[20],
        src: addr(b, 24).ok_or_else(bad)?,
        sel: parse_selector(&b[40..]).ok_or_else(bad)?,
        policy,
        seq: ne_u32(b, 276).ok_or_else(bad)?,
    })
}

fn parse_report(body: &[u8]) -> io::Result<Report> {
    let bad = || invalid("xfrm_user_report");
    let b = body.get(..USER_REPORT_LEN).ok_or_else(bad)?;
    let mut r = Report {
        proto: b[0],
        sel: parse_selector(&b[4..]).ok_or_else(bad)?,
        coaddr: None,
    };
    let attrs = body.get(align4(USER_REPORT_LEN)..).unwrap_or(&[]);
    for (t, v) in attributes(attrs)? {
        if t == XFRMA_COADDR {
            r.coaddr = Some(addr(v, 0).ok_or(invalid("XFRMA_COADDR"))?);
        }
    }
    Ok(r)
}

/// The extended-ack reason of an error message, if the kernel gave one.
fn ext_ack_msg(flags: u16, body: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // struct nlmsgerr { int error; struct nlmsghdr msg; [request payload unless capped] }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        usize::try_from(ne_u32(body, 4)?).ok()?
    };
    let tlvs = body.get(4usize.checked_add(align4(echoed))?..)?;
    let (_, v) = attributes(tlvs)
        .ok()?
        .into_iter()
        .find(|(t, _)| *t == NLMSGERR_ATTR_MSG)?;
    let s = v.split(|&c| c == 0).next().unwrap_or(&[]);
    Some(String::from_utf8_lossy(s).into_owned())
}

fn parse_message(msg: &[u8]) -> io::Result<Message> {
    let msg_type = ne_u16(msg, 4).ok_or(invalid("netlink header"))?;
    let flags = ne_u16(msg, 6).ok_or(invalid("netlink header"))?;
    let seq = ne_u32(msg, 8).ok_or(invalid("netlink header"))?;
    let body = &msg[NLMSG_HDRLEN..];
    match msg_type {
        NLMSG_ERROR => {
            let err = ne_u32(body, 0).ok_or(invalid("nlmsgerr"))? as i32;
            // The echoed request's sequence number is what the answer is for.
            let req_seq = ne_u32(body, 4 + 8).ok_or(invalid("nlmsgerr"))?;
            if err == 0 {
                return Ok(Message::Ack { seq: req_seq });
            }
            // The kernel sends a negative errno; i32::MIN has no positive counterpart.
            let errno = err.checked_neg().ok_or(invalid("nlmsgerr errno"))?;
            if errno < 0 {
                return Err(invalid("nlmsgerr errno"));
            }
            Ok(Message::Error {
                seq: req_seq,
                errno,
                reason: ext_ack_msg(flags, body),
            })
        }
        NLMSG_DONE => Ok(Message::Done { seq }),
        XFRM_MSG_NEWPOLICY | XFRM_MSG_UPDPOLICY => {
            let info = body
                .get(..USERPOLICY_INFO_LEN)
                .ok_or(invalid("xfrm_userpolicy_info"))?;
            let attrs = body.get(align4(USERPOLICY_INFO_LEN)..).unwrap_or(&[]);
            Ok(Message::Policy {
                seq,
                policy: parse_policy(info, attrs)?,
            })
        }
        XFRM_MSG_NEWSA | XFRM_MSG_UPDSA => Ok(Message::State {
            seq,
            state: parse_state(body)?,
        }),
        XFRM_MSG_ACQUIRE => Ok(Message::Acquire(parse_acquire(body)?)),
        XFRM_MSG_REPORT => Ok(Message::Report(parse_report(body)?)),
        other => Ok(Message::Other { msg_type: other }),
    }
}

/// Splits a datagram from an XFRM netlink socket into its messages and decodes each. Never
/// panics: a malformed message is an `InvalidData` error.
pub fn parse_datagram(data: &[u8]) -> io::Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + NLMSG_HDRLEN <= data.len() {
        let len = ne_u32(data, at).ok_or(invalid("netlink header"))? as usize;
        if len < NLMSG_HDRLEN || len > data.len() - at {
            return Err(invalid("netlink message length"));
        }
        out.push(parse_message(&data[at..at + len])?);
        at += align4(len);
    }
    Ok(out)
}
