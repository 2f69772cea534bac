//! Netfilter queue (`NFQUEUE`): the kernel hands us packets a netfilter rule selected, we
//! answer each with a verdict, optionally with a rewritten packet.
//!
//! This is how the `user` data path sees what the host *receives* (RFC 6275 headers the
//! kernel would otherwise reject) and can reshape it before the kernel's own extension
//! header processing runs.
//!
//! Only the small part of the nfnetlink_queue protocol we need is here (see the kernel's
//! `include/uapi/linux/netfilter/nfnetlink_queue.h`):
//!
//! ```text
//! netlink message  = nlmsghdr (16 bytes, host byte order)
//!                    nfgenmsg { u8 family; u8 version = 0; be16 res_id = queue number }
//!                    attributes: { u16 nla_len; u16 nla_type; value; pad to 4 }
//! type             = NFNL_SUBSYS_QUEUE (3) << 8 | NFQNL_MSG_{PACKET 0, VERDICT 1, CONFIG 2}
//! config  attrs    : NFQA_CFG_CMD    { u8 command; u8 pad; be16 pf }
//!                    NFQA_CFG_PARAMS { be32 copy_range; u8 copy_mode }   (packed, 5 bytes)
//!                    NFQA_CFG_QUEUE_MAXLEN be32, NFQA_CFG_MASK be32, NFQA_CFG_FLAGS be32
//! packet  attrs    : NFQA_PACKET_HDR { be32 packet_id; be16 hw_protocol; u8 hook } (7 bytes)
//!                    NFQA_MARK be32, NFQA_IFINDEX_INDEV/OUTDEV be32, NFQA_PAYLOAD bytes, …
//! verdict attrs    : NFQA_VERDICT_HDR { be32 verdict; be32 id }, NFQA_PAYLOAD bytes
//! ```
//!
//! Attribute *values* defined by nfnetlink are big-endian; the netlink framing (`nlmsghdr`,
//! `nla_len`, `nla_type`) is in host byte order. The encoders and the parser are pure
//! functions over bytes, unit-tested below; [`NfQueue`] is the socket around them, built
//! on `netlink-sys`, with no `unsafe` of its own.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

// --- constants (uapi values) --------------------------------------------------------------

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
/// `nla_type` carries two flag bits (nested, network byte order) above the type proper.
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;

const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;

const NFQNL_COPY_PACKET: u8 = 2;

const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_IFINDEX_INDEV: u16 = 5;
const NFQA_IFINDEX_OUTDEV: u16 = 6;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CAP_LEN: u16 = 13;
const NFQA_SKB_INFO: u16 = 14;

/// `NFQA_CFG_F_FAIL_OPEN`: when the queue is full, accept instead of dropping.
pub const CFG_F_FAIL_OPEN: u32 = 1;
/// `NFQA_CFG_F_GSO`: hand over GSO packets whole instead of segmenting them first.
/// Segments the kernel cut for the queue keep the transport header offset of the packet
/// they came from, so one rewritten to a different header length (a decapsulated tunnel
/// packet, one with its Type 2 Routing Header removed) is delivered to TCP at the wrong
/// offset and fails its checksum; whole packets keep the offset `ip6_rcv` set.
pub const CFG_F_GSO: u32 = 4;

/// `NFQA_SKB_INFO` bits, in [`QueuedPacket::skb_info`].
pub mod skb_info {
    /// `NFQA_SKB_CSUMNOTREADY`: the upper-layer checksum is not computed yet
    /// (`CHECKSUM_PARTIAL`); a rewritten packet must carry a complete one.
    pub const CSUM_NOT_READY: u32 = 1;
    /// `NFQA_SKB_GSO`: a GSO packet, larger than the link's MTU.
    pub const GSO: u32 = 2;
}

/// Netfilter hook numbers (`enum nf_inet_hooks`), as reported in [`QueuedPacket::hook`].
pub mod hook {
    pub const PRE_ROUTING: u8 = 0;
    pub const LOCAL_IN: u8 = 1;
    pub const FORWARD: u8 = 2;
    pub const LOCAL_OUT: u8 = 3;
    pub const POST_ROUTING: u8 = 4;
}

/// The largest payload the kernel will copy to us (`copy_range`); it caps it at
/// 0xffff minus an attribute header anyway.
const COPY_RANGE: u32 = 0xffff;
/// Receive buffer: one packet of up to 64 KiB plus the metadata attributes.
const RECV_BUF: usize = 0x10000 + 1024;
/// Verdicts held back on a non-blocking queue are sent, several netlink messages in one
/// datagram (the kernel walks every message of a datagram), once this many bytes or
/// messages wait, or when the queue runs dry. One `sendmsg` then answers a burst.
const BATCH_BYTES: usize = 48 * 1024;
const BATCH_MSGS: usize = 32;

/// What to do with a queued packet (`NF_*` in `linux/netfilter.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop = 0,
    Accept = 1,
    /// Re-inject at the same hook, running the whole chain again (with the new payload).
    Repeat = 4,
}

// --- encoding ----------------------------------------------------------------------------

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink message under construction: header, nfgenmsg, then attributes.
struct MsgBuilder(Vec<u8>);

impl MsgBuilder {
    fn new(msg_type: u16, flags: u16, seq: u32, family: u8, queue: u16) -> MsgBuilder {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        v.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg_type).to_ne_bytes());
        v.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
        v.push(family);
        v.push(0); // NFNETLINK_V0
        v.extend_from_slice(&queue.to_be_bytes());
        MsgBuilder(v)
    }

    fn attr(mut self, attr_type: u16, value: &[u8]) -> MsgBuilder {
        let len = NLA_HDRLEN + value.len();
        // A value that does not fit nla_len (u16) cannot be sent; callers bound it first.
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&attr_type.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// `NFQNL_MSG_CONFIG` with `NFQA_CFG_CMD` (bind / unbind a queue number to this socket).
/// `pf` is the address family the command applies to (`AF_INET6`; ignored by current
/// kernels for bind, which bind all families).
pub fn encode_config_cmd(seq: u32, queue: u16, command: u8, pf: u16) -> Vec<u8> {
    let mut cmd = [0u8; 4];
    cmd[0] = command;
    cmd[2..4].copy_from_slice(&pf.to_be_bytes());
    MsgBuilder::new(NFQNL_MSG_CONFIG, NLM_F_ACK, seq, 0, queue)
        .attr(NFQA_CFG_CMD, &cmd)
        .finish()
}

/// `NFQNL_MSG_CONFIG` asking for whole packets (`NFQNL_COPY_PACKET`, up to `copy_range`
/// bytes), an optional queue length and optional `NFQA_CFG_FLAGS` (`flags` under `mask`).
pub fn encode_config_params(
    seq: u32,
    queue: u16,
    copy_range: u32,
    max_len: Option<u32>,
    flags: Option<(u32, u32)>,
) -> Vec<u8> {
    let mut params = [0u8; 5];
    params[..4].copy_from_slice(&copy_range.to_be_bytes());
    params[4] = NFQNL_COPY_PACKET;
    let mut m =
        MsgBuilder::new(NFQNL_MSG_CONFIG, NLM_F_ACK, seq, 0, queue).attr(NFQA_CFG_PARAMS, &params);
    if let Some(n) = max_len {
        m = m.attr(NFQA_CFG_QUEUE_MAXLEN, &n.to_be_bytes());
    }
    if let Some((flags, mask)) = flags {
        m = m
            .attr(NFQA_CFG_MASK, &mask.to_be_bytes())
            .attr(NFQA_CFG_FLAGS, &flags.to_be_bytes());
    }
    m.finish()
}

/// `NFQNL_MSG_VERDICT` for packet `id`, with a replacement packet when `payload` is
/// given. No ACK is requested: a verdict is the hot path, and the kernel reports a bad one
/// as an `NLMSG_ERROR` we read on the next receive anyway.
pub fn encode_verdict(
    seq: u32,
    queue: u16,
    id: u32,
    verdict: Verdict,
    payload: Option<&[u8]>,
) -> io::Result<Vec<u8>> {
    let mut hdr = [0u8; 8];
    hdr[..4].copy_from_slice(&(verdict as u32).to_be_bytes());
    hdr[4..].copy_from_slice(&id.to_be_bytes());
    let mut m = MsgBuilder::new(NFQNL_MSG_VERDICT, 0, seq, 0, queue).attr(NFQA_VERDICT_HDR, &hdr);
    if let Some(p) = payload {
        if p.len() > usize::from(u16::MAX) - NLA_HDRLEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "replacement packet larger than a netlink attribute can carry",
            ));
        }
        m = m.attr(NFQA_PAYLOAD, p);
    }
    Ok(m.finish())
}

// --- parsing -----------------------------------------------------------------------------

/// A packet the kernel queued to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPacket {
    /// Queue-local id the verdict must name.
    pub id: u32,
    /// Link-layer protocol (`ETH_P_IPV6` = 0x86dd for IPv6).
    pub hw_protocol: u16,
    /// Netfilter hook the packet was queued from ([`hook`]).
    pub hook: u8,
    pub mark: Option<u32>,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    /// The packet from its network header on (the IPv6 header for IPv6).
    pub payload: Vec<u8>,
    /// `NFQA_SKB_INFO` ([`skb_info`] bits; 0 when absent).
    pub skb_info: u32,
    /// `NFQA_CAP_LEN`: the packet's real length when `payload` holds only its first
    /// `copy_range` bytes. Such a packet cannot be handed back rewritten.
    pub cap_len: Option<u32>,
}

impl QueuedPacket {
    /// Whether a rewritten copy must have its upper-layer checksum completed.
    pub fn checksum_not_ready(&self) -> bool {
        self.skb_info & skb_info::CSUM_NOT_READY != 0
    }
}

/// One netlink message from the queue socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Packet(QueuedPacket),
    /// `NLMSG_ERROR` with error 0: the kernel acknowledges request `seq`.
    Ack {
        seq: u32,
    },
    /// `NLMSG_ERROR` with a (positive) errno for request `seq`.
    Error {
        seq: u32,
        errno: i32,
    },
    /// Anything else (`NLMSG_DONE`, other nfqueue message types): nothing to do.
    Other,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Splits a datagram from the netlink socket into its messages and decodes each. Never
/// panics: a malformed message is an `InvalidData` error.
pub fn parse_datagram(data: &[u8]) -> io::Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= data.len() {
        let len = ne_u32(data, at).ok_or(invalid("netlink header"))? as usize;
        if len < NLMSG_HDRLEN || at + len > data.len() {
            return Err(invalid("netlink message length"));
        }
        let msg = &data[at..at + len];
        events.push(parse_message(msg)?);
        at += align4(len);
    }
    Ok(events)
}

fn parse_message(msg: &[u8]) -> io::Result<Event> {
    let msg_type = ne_u16(msg, 4).ok_or(invalid("netlink header"))?;
    let body = &msg[NLMSG_HDRLEN..];
    match msg_type {
        NLMSG_ERROR => {
            // struct nlmsgerr { int error; struct nlmsghdr msg; … }: the header of the
            // request it answers follows the error code; its seq is at offset 8 there.
            let err = ne_u32(body, 0).ok_or(invalid("nlmsgerr"))? as i32;
            let seq = ne_u32(body, 4 + 8).ok_or(invalid("nlmsgerr"))?;
            // The kernel sends a negative errno; i32::MIN has no positive counterpart and
            // cannot come from a kernel, so it is malformed input (found by cargo fuzz).
            Ok(if err == 0 {
                Event::Ack { seq }
            } else {
                let errno = err.checked_neg().ok_or(invalid("nlmsgerr errno"))?;
                Event::Error { seq, errno }
            })
        }
        NLMSG_DONE => Ok(Event::Other),
        t if t == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET => {
            let attrs = body.get(NFGENMSG_LEN..).ok_or(invalid("nfgenmsg"))?;
            parse_packet(attrs).map(Event::Packet)
        }
        _ => Ok(Event::Other),
    }
}

fn parse_packet(mut attrs: &[u8]) -> io::Result<QueuedPacket> {
    let mut hdr = None;
    let mut p = QueuedPacket {
        id: 0,
        hw_protocol: 0,
        hook: 0,
        mark: None,
        indev: None,
        outdev: None,
        payload: Vec::new(),
        skb_info: 0,
        cap_len: None,
    };
    while attrs.len() >= NLA_HDRLEN {
        let len = usize::from(ne_u16(attrs, 0).ok_or(invalid("attribute"))?);
        let attr_type = ne_u16(attrs, 2).ok_or(invalid("attribute"))? & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > attrs.len() {
            return Err(invalid("attribute length"));
        }
        let value = &attrs[NLA_HDRLEN..len];
        match attr_type {
            NFQA_PACKET_HDR => {
                let v = value.get(..7).ok_or(invalid("packet header"))?;
                hdr = Some((
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                    u16::from_be_bytes([v[4], v[5]]),
                    v[6],
                ));
            }
            NFQA_MARK => p.mark = be_u32(value),
            NFQA_IFINDEX_INDEV => p.indev = be_u32(value),
            NFQA_IFINDEX_OUTDEV => p.outdev = be_u32(value),
            NFQA_PAYLOAD => p.payload = value.to_vec(),
            NFQA_SKB_INFO => p.skb_info = be_u32(value).unwrap_or(0),
            NFQA_CAP_LEN => p.cap_len = be_u32(value),
            _ => {}
        }
        attrs = attrs.get(align4(len)..).unwrap_or(&[]);
    }
    let (id, hw_protocol, hook) = hdr.ok_or(invalid("packet without NFQA_PACKET_HDR"))?;
    p.id = id;
    p.hw_protocol = hw_protocol;
    p.hook = hook;
    Ok(p)
}

// --- the socket --------------------------------------------------------------------------

/// One netfilter queue bound to this process, in the network namespace the calling thread
/// was in when it was opened.
pub struct NfQueue {
    socket: Socket,
    queue: u16,
    seq: u32,
    buf: Vec<u8>,
    /// Packets that arrived while we waited for an ACK, handed out by the next `recv`.
    pending: std::collections::VecDeque<QueuedPacket>,
    /// Verdicts not sent yet (non-blocking mode only), and how many.
    out: Vec<u8>,
    out_msgs: usize,
    nonblocking: bool,
}

impl NfQueue {
    /// Binds queue number `queue` (the `--queue-num` of an `NFQUEUE` rule) in copy-packet
    /// mode. Fails with `EBUSY` when another socket holds the queue, `EPERM` without
    /// `CAP_NET_ADMIN`.
    pub fn bind(queue: u16) -> io::Result<NfQueue> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        // Under load the kernel would otherwise make recv fail with ENOBUFS once; the
        // lost packets are counted in /proc/net/netfilter/nfnetlink_queue instead.
        socket.set_no_enobufs(true)?;
        let mut q = NfQueue {
            socket,
            queue,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            pending: Default::default(),
            out: Vec::new(),
            out_msgs: 0,
            nonblocking: false,
        };
        let seq = q.next_seq();
        q.request(
            seq,
            &encode_config_cmd(seq, queue, NFQNL_CFG_CMD_BIND, libc::AF_INET6 as u16),
        )?;
        let seq = q.next_seq();
        q.request(
            seq,
            &encode_config_params(seq, queue, COPY_RANGE, None, None),
        )?;
        Ok(q)
    }

    /// Sets the kernel-side queue length (`NFQA_CFG_QUEUE_MAXLEN`; default 1024).
    pub fn set_max_len(&mut self, max_len: u32) -> io::Result<()> {
        let seq = self.next_seq();
        self.request(
            seq,
            &encode_config_params(seq, self.queue, COPY_RANGE, Some(max_len), None),
        )
    }

    /// Sets or clears `NFQA_CFG_FLAGS` bits (e.g. [`CFG_F_FAIL_OPEN`]) under `mask`.
    pub fn set_flags(&mut self, flags: u32, mask: u32) -> io::Result<()> {
        let seq = self.next_seq();
        self.request(
            seq,
            &encode_config_params(seq, self.queue, COPY_RANGE, None, Some((flags, mask))),
        )
    }

    /// The socket's receive buffer (`SO_RCVBUF`); raise it for bursts.
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        self.socket
            .set_rx_buf_sz(i32::try_from(bytes).unwrap_or(i32::MAX))
    }

    /// Bounds how long [`recv`](Self::recv) blocks; `None` blocks forever. A timeout shows
    /// as an error of kind `WouldBlock`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        super::raw::set_rcvtimeo(self.socket.as_raw_fd(), timeout)
    }

    /// Makes [`recv`](Self::recv) return `WouldBlock` instead of waiting, as an
    /// edge-triggered poll loop needs: it reads until the socket is drained.
    ///
    /// In this mode [`verdict`](Self::verdict) batches: verdicts wait (a few dozen at
    /// most) and go out together when `recv` finds the socket empty, so a caller that
    /// reads until `WouldBlock` never leaves one behind.
    pub fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        if !on {
            self.flush()?;
        }
        self.socket.set_non_blocking(on)?;
        self.nonblocking = on;
        Ok(())
    }

    /// The raw fd, for a poll loop (mio registration in the daemon).
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    /// Waits for the next queued packet. Error messages about earlier verdicts surface
    /// here as errors.
    pub fn recv(&mut self) -> io::Result<QueuedPacket> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Ok(p);
            }
            let events = match self.recv_events() {
                Ok(ev) => ev,
                Err(e) => {
                    // Nothing more to read now: the held-back verdicts go before we
                    // report it (and before the caller sleeps in poll).
                    self.flush()?;
                    return Err(e);
                }
            };
            for ev in events {
                match ev {
                    Event::Packet(p) => self.pending.push_back(p),
                    Event::Error { errno, .. } => {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    Event::Ack { .. } | Event::Other => {}
                }
            }
        }
    }

    /// Answers packet `id`; with `payload`, the kernel continues with that packet
    /// instead (it may be longer or shorter than the original). For packets queued in
    /// `LOCAL_OUT`, a changed source, destination or mark makes the kernel route the
    /// packet again (`nf_reroute`).
    ///
    /// On a non-blocking queue the verdict may be held back until the next `recv` that
    /// finds the socket empty (see [`set_nonblocking`](Self::set_nonblocking)), or
    /// [`flush`](Self::flush).
    pub fn verdict(&mut self, id: u32, verdict: Verdict, payload: Option<&[u8]>) -> io::Result<()> {
        let seq = self.next_seq();
        let msg = encode_verdict(seq, self.queue, id, verdict, payload)?;
        if !self.nonblocking {
            self.socket.send(&msg, 0)?;
            return Ok(());
        }
        if self.out.len() + msg.len() > BATCH_BYTES {
            self.flush()?;
        }
        self.out.extend_from_slice(&msg);
        self.out_msgs += 1;
        if self.out_msgs >= BATCH_MSGS {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the verdicts held back, all in one datagram.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.socket.send(&self.out, 0);
        // Sent or not, they are not sent twice: the kernel has taken them or refused
        // them (and a refused verdict leaves the packet queued until the queue closes).
        self.out.clear();
        self.out_msgs = 0;
        r.map(|_| ())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn recv_events(&mut self) -> io::Result<Vec<Event>> {
        self.buf.clear();
        self.buf.reserve(RECV_BUF);
        let n = self.socket.recv(&mut self.buf, 0)?;
        if n > self.buf.len() {
            return Err(invalid("netlink datagram truncated"));
        }
        parse_datagram(&self.buf)
    }

    /// Sends a request that asks for an ACK and waits for it.
    fn request(&mut self, seq: u32, msg: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.socket.send(msg, 0)?;
        loop {
            for ev in self.recv_events()? {
                match ev {
                    Event::Ack { seq: s } if s == seq => return Ok(()),
                    Event::Error { seq: s, errno } if s == seq => {
                        return Err(io::Error::from_raw_os_error(errno))
                    }
                    Event::Packet(p) => self.pending.push_back(p),
                    _ => {}
                }
            }
        }
    }
}

impl Drop for NfQueue {
    fn drop(&mut self) {
        // Closing the socket unbinds too; saying so first lets the kernel stop queueing
        // to us at once. Nothing useful to do if it fails.
        let _ = self.flush();
        let seq = self.next_seq();
        let msg = encode_config_cmd(seq, self.queue, NFQNL_CFG_CMD_UNBIND, libc::AF_INET6 as u16);
        let _ = self.socket.send(&msg, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsghdr(len: u32, t: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&t.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v
    }

    #[test]
    fn config_bind_layout() {
        let m = encode_config_cmd(7, 0x0102, NFQNL_CFG_CMD_BIND, 10);
        // nlmsghdr: 28 bytes total, type 0x0302 (queue subsystem, CONFIG), REQUEST|ACK.
        let mut want = nlmsghdr(28, 0x0302, 0x0005, 7);
        want.extend_from_slice(&[0, 0, 0x01, 0x02]); // nfgenmsg: AF_UNSPEC, v0, be16 queue
        want.extend_from_slice(&8u16.to_ne_bytes()); // nla_len
        want.extend_from_slice(&1u16.to_ne_bytes()); // NFQA_CFG_CMD
        want.extend_from_slice(&[1, 0, 0, 10]); // BIND, pad, be16 AF_INET6
        assert_eq!(m, want);
    }

    #[test]
    fn config_params_layout_with_maxlen_and_flags() {
        let m = encode_config_params(1, 5, 0xffff, Some(4096), Some((1, 1)));
        let mut want = nlmsghdr(0, 0x0302, 0x0005, 1);
        want.extend_from_slice(&[0, 0, 0, 5]);
        // NFQA_CFG_PARAMS: 4 + 5 bytes, padded to 12.
        want.extend_from_slice(&9u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0xff, 0xff, 2, 0, 0, 0]);
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&3u16.to_ne_bytes());
        want.extend_from_slice(&4096u32.to_be_bytes());
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&4u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_be_bytes());
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&1u32.to_be_bytes());
        let len = want.len() as u32;
        want[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(m, want);
    }

    #[test]
    fn verdict_layout_with_payload() {
        let m = encode_verdict(9, 3, 0xdeadbeef, Verdict::Accept, Some(&[1, 2, 3])).unwrap();
        let mut want = nlmsghdr(40, 0x0301, 0x0001, 9);
        want.extend_from_slice(&[0, 0, 0, 3]);
        want.extend_from_slice(&12u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        want.extend_from_slice(&7u16.to_ne_bytes()); // nla_len counts the unpadded value
        want.extend_from_slice(&10u16.to_ne_bytes());
        want.extend_from_slice(&[1, 2, 3, 0]);
        assert_eq!(m, want);
        let drop = encode_verdict(1, 3, 1, Verdict::Drop, None).unwrap();
        assert_eq!(drop.len(), 16 + 4 + 12);
        assert_eq!(&drop[24..28], &[0, 0, 0, 0]);
    }

    #[test]
    fn verdict_payload_too_large_is_an_error() {
        assert!(encode_verdict(1, 0, 1, Verdict::Accept, Some(&vec![0; 0xfffc])).is_err());
        assert!(encode_verdict(1, 0, 1, Verdict::Accept, Some(&vec![0; 0xfffb])).is_ok());
    }

    fn packet_message(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = MsgBuilder::new(NFQNL_MSG_PACKET, 0, 0, 10, 3);
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&0x86ddu16.to_be_bytes());
        hdr.push(hook::PRE_ROUTING);
        m = m.attr(NFQA_PACKET_HDR, &hdr);
        m = m.attr(NFQA_IFINDEX_INDEV, &7u32.to_be_bytes());
        m = m.attr(NFQA_MARK | 0x4000, &0x55u32.to_be_bytes());
        m = m.attr(NFQA_PAYLOAD, payload);
        m.finish()
    }

    #[test]
    fn reads_the_skb_info_and_the_captured_length() {
        let mut m = MsgBuilder::new(NFQNL_MSG_PACKET, 0, 0, 10, 3);
        let mut hdr = 9u32.to_be_bytes().to_vec();
        hdr.extend_from_slice(&0x86ddu16.to_be_bytes());
        hdr.push(hook::PRE_ROUTING);
        m = m.attr(NFQA_PACKET_HDR, &hdr);
        m = m.attr(NFQA_SKB_INFO, &3u32.to_be_bytes());
        m = m.attr(NFQA_CAP_LEN, &70000u32.to_be_bytes());
        m = m.attr(NFQA_PAYLOAD, &[0x60]);
        let ev = parse_datagram(&m.finish()).unwrap();
        let Event::Packet(p) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert!(p.checksum_not_ready());
        assert_eq!(p.skb_info & skb_info::GSO, skb_info::GSO);
        assert_eq!(p.cap_len, Some(70000));
        let Event::Packet(q) = &parse_datagram(&packet_message(1, &[0x60])).unwrap()[0] else {
            panic!()
        };
        assert!(!q.checksum_not_ready() && q.cap_len.is_none());
    }

    #[test]
    fn parses_two_packets_in_one_datagram() {
        let mut d = packet_message(1, &[0x60, 1, 2, 3, 4]);
        d.extend(packet_message(2, &[0x60]));
        let ev = parse_datagram(&d).unwrap();
        assert_eq!(
            ev[0],
            Event::Packet(QueuedPacket {
                id: 1,
                hw_protocol: 0x86dd,
                hook: 0,
                mark: Some(0x55),
                indev: Some(7),
                outdev: None,
                payload: vec![0x60, 1, 2, 3, 4],
                skb_info: 0,
                cap_len: None,
            })
        );
        assert!(matches!(&ev[1], Event::Packet(p) if p.id == 2 && p.payload == [0x60]));
    }

    #[test]
    fn parses_ack_and_error() {
        for (err, want) in [
            (0i32, Event::Ack { seq: 42 }),
            (-16, Event::Error { seq: 42, errno: 16 }),
        ] {
            let mut d = nlmsghdr(36, NLMSG_ERROR, 0, 0);
            d.extend_from_slice(&err.to_ne_bytes());
            d.extend(nlmsghdr(28, 0x0302, 5, 42));
            assert_eq!(parse_datagram(&d).unwrap(), vec![want]);
        }
    }

    /// Regression (cargo fuzz): an error code of i32::MIN has no errno; negating it
    /// overflowed.
    #[test]
    fn error_code_without_an_errno_is_malformed() {
        let mut d = nlmsghdr(36, NLMSG_ERROR, 0, 0);
        d.extend_from_slice(&i32::MIN.to_ne_bytes());
        d.extend(nlmsghdr(28, 0x0302, 5, 42));
        let e = parse_datagram(&d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = packet_message(1, &[0x60; 40]);
        for cut in 0..good.len() {
            let mut d = good[..cut].to_vec();
            if d.len() >= 4 {
                // Keep the header's own claim consistent so the attribute walk is reached.
                let l = d.len() as u32;
                d[..4].copy_from_slice(&l.to_ne_bytes());
            }
            let _ = parse_datagram(&d);
        }
        let mut rng = crate::testutil::XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let n = (rng.next() % 96) as usize;
            let mut d: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if d.len() >= 8 && rng.next() % 2 == 0 {
                let l = d.len() as u32;
                d[..4].copy_from_slice(&l.to_ne_bytes());
                d[4..6].copy_from_slice(&0x0300u16.to_ne_bytes());
            }
            let _ = parse_datagram(&d);
        }
    }
}
