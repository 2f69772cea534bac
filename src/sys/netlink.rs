//! Netlink framing shared by the hand-written protocols in `sys/` (ipset for now):
//! building a request with (nested) attributes, splitting replies into messages, walking
//! attributes — all pure functions over bytes that never panic on what the kernel, or
//! anyone able to send to our socket, hands us — and a request/acknowledge/dump socket
//! that only believes messages from the kernel.
//!
//! ```text
//! nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid }   host byte order
//! attribute { u16 nla_len; u16 nla_type (| NLA_F_NESTED | NLA_F_NET_BYTEORDER); value; pad to 4 }
//! ```

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};

pub const NLMSG_HDRLEN: usize = 16;
pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A request under construction: header, a fixed family header, attributes. Nested
/// attributes are opened with [`begin_nested`](Self::begin_nested) and closed with
/// [`end_nested`](Self::end_nested), which patches their length.
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    open: Vec<usize>,
}

impl MsgBuilder {
    pub fn new(msg_type: u16, flags: u16, seq: u32, family_header: &[u8]) -> MsgBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
        buf.extend_from_slice(family_header);
        buf.resize(align4(buf.len()), 0);
        MsgBuilder {
            buf,
            open: Vec::new(),
        }
    }

    /// Appends one attribute. Values longer than an attribute can describe are an error
    /// for the caller to have prevented; they are refused by [`finish`](Self::finish).
    pub fn attr(&mut self, attr_type: u16, value: &[u8]) -> &mut MsgBuilder {
        let len = NLA_HDRLEN + value.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(0).to_ne_bytes());
        self.buf.extend_from_slice(&attr_type.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, attr_type: u16, s: &str) -> &mut MsgBuilder {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(attr_type, &v)
    }

    pub fn begin_nested(&mut self, attr_type: u16) -> &mut MsgBuilder {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(attr_type | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end_nested(&mut self) -> &mut MsgBuilder {
        if let Some(at) = self.open.pop() {
            let len = u16::try_from(self.buf.len() - at).unwrap_or(0);
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    pub fn finish(&mut self) -> io::Result<Vec<u8>> {
        if !self.open.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nested attribute left open",
            ));
        }
        let len = u32::try_from(self.buf.len()).map_err(|_| invalid("message too long"))?;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        Ok(std::mem::take(&mut self.buf))
    }
}

/// One message of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// Everything after the header.
    pub body: &'a [u8],
}

/// What a message means for a request in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `NLMSG_ERROR` with 0: acknowledged.
    Ack {
        seq: u32,
    },
    /// `NLMSG_ERROR` with a (positive) errno.
    Error {
        seq: u32,
        errno: i32,
    },
    /// `NLMSG_DONE`: the end of a dump.
    Done {
        seq: u32,
    },
    Data(Message<'a>),
}

/// Splits a datagram into its messages.
pub fn messages(data: &[u8]) -> io::Result<Vec<Message<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while data.len().saturating_sub(at) >= NLMSG_HDRLEN {
        let h = &data[at..];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDRLEN || len > h.len() {
            return Err(invalid("netlink message length"));
        }
        out.push(Message {
            msg_type: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            pid: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
            body: &h[NLMSG_HDRLEN..len],
        });
        at = at.saturating_add(align4(len));
    }
    Ok(out)
}

/// Classifies a message.
pub fn reply<'a>(m: &Message<'a>) -> io::Result<Reply<'a>> {
    match m.msg_type {
        NLMSG_ERROR => {
            let b = m.body.get(..4).ok_or(invalid("nlmsgerr"))?;
            let err = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            // i32::MIN has no positive counterpart and cannot come from a kernel.
            match err {
                0 => Ok(Reply::Ack { seq: m.seq }),
                e => Ok(Reply::Error {
                    seq: m.seq,
                    errno: e.checked_neg().ok_or(invalid("nlmsgerr errno"))?,
                }),
            }
        }
        NLMSG_DONE => Ok(Reply::Done { seq: m.seq }),
        _ => Ok(Reply::Data(*m)),
    }
}

/// One attribute: its type without the flag bits, whether it is nested, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub attr_type: u16,
    pub nested: bool,
    pub value: &'a [u8],
}

/// The attributes in `data` (a message body after its family header, or a nested
/// attribute's value).
pub fn attrs(mut data: &[u8]) -> io::Result<Vec<Attr<'_>>> {
    let mut out = Vec::new();
    while data.len() >= NLA_HDRLEN {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let t = u16::from_ne_bytes([data[2], data[3]]);
        if len < NLA_HDRLEN || len > data.len() {
            return Err(invalid("netlink attribute length"));
        }
        out.push(Attr {
            attr_type: t & NLA_TYPE_MASK,
            nested: t & NLA_F_NESTED != 0,
            value: &data[NLA_HDRLEN..len],
        });
        data = data.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

/// A request socket for one netlink protocol, in the network namespace the calling
/// thread was in when it was opened.
pub struct Requester {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// Messages not from the kernel (port id ≠ 0), ignored and counted: another process
    /// can send to our port (CVE-2010-2523 was umip believing such messages).
    pub spoofed: u64,
}

impl Requester {
    pub fn open(protocol: isize) -> io::Result<Requester> {
        let mut socket = Socket::new(protocol)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        super::raw::set_rcvtimeo(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            Some(Duration::from_secs(5)),
        )?;
        Ok(Requester {
            socket,
            seq: 0,
            buf: Vec::with_capacity(1 << 16),
            spoofed: 0,
        })
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `msg` (built with sequence number `seq` and `NLM_F_ACK` or `NLM_F_DUMP`) and
    /// collects the data messages answering it until the ACK, the error or the end of the
    /// dump. Each data message's body is passed to `each`.
    pub fn transact(
        &mut self,
        seq: u32,
        msg: &[u8],
        mut each: impl FnMut(&Message<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.socket.send(msg, 0)?;
        loop {
            self.buf.clear();
            self.buf.reserve(1 << 16);
            let (n, from) = self.socket.recv_from(&mut self.buf, 0)?;
            if from.port_number() != 0 {
                self.spoofed += 1;
                continue;
            }
            if n > self.buf.len() {
                return Err(invalid("netlink datagram truncated"));
            }
            let data = std::mem::take(&mut self.buf);
            let result = (|| {
                for m in messages(&data)? {
                    if m.seq != seq {
                        continue;
                    }
                    match reply(&m)? {
                        Reply::Ack { .. } | Reply::Done { .. } => return Ok(true),
                        Reply::Error { errno, .. } => {
                            return Err(io::Error::from_raw_os_error(errno))
                        }
                        Reply::Data(m) => {
                            each(&m)?;
                            if m.flags & NLM_F_MULTI == 0 && msg_flags(msg) & NLM_F_ACK == 0 {
                                return Ok(true);
                            }
                        }
                    }
                }
                Ok(false)
            })();
            self.buf = data;
            if result? {
                return Ok(());
            }
        }
    }
}

fn msg_flags(msg: &[u8]) -> u16 {
    msg.get(6..8)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_layout_and_nesting() {
        let mut b = MsgBuilder::new(0x0609, NLM_F_ACK, 7, &[10, 0, 0, 0]);
        b.attr(1, &[7]).begin_nested(7);
        b.begin_nested(1).attr(2 | NLA_F_NET_BYTEORDER, &[0xaa; 16]);
        b.end_nested().end_nested();
        let m = b.finish().unwrap();
        let msgs = messages(&m).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].msg_type, 0x0609);
        assert_eq!(msgs[0].flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(msgs[0].seq, 7);
        let top = attrs(&msgs[0].body[4..]).unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].attr_type, top[0].value), (1, &[7u8][..]));
        assert!(top[1].nested);
        // 4 (DATA) + 4 (IP) + 4 + 16 (IPV6) bytes.
        assert_eq!(top[1].value.len(), 24);
        let inner = attrs(top[1].value).unwrap();
        let leaf = attrs(inner[0].value).unwrap();
        assert_eq!((leaf[0].attr_type, leaf[0].value), (2, &[0xaa; 16][..]));
        assert!(MsgBuilder::new(1, 0, 1, &[])
            .begin_nested(1)
            .finish()
            .is_err());
    }

    #[test]
    fn errors_and_garbage() {
        let mut e = Vec::new();
        e.extend_from_slice(&36u32.to_ne_bytes());
        e.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e.extend_from_slice(&0u16.to_ne_bytes());
        e.extend_from_slice(&5u32.to_ne_bytes());
        e.extend_from_slice(&0u32.to_ne_bytes());
        e.extend_from_slice(&(-17i32).to_ne_bytes());
        e.extend_from_slice(&[0; 16]);
        let m = messages(&e).unwrap();
        assert_eq!(reply(&m[0]).unwrap(), Reply::Error { seq: 5, errno: 17 });
        e[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert!(reply(&messages(&e).unwrap()[0]).is_err());
        // Lengths that lie are errors, never panics.
        let mut rng = crate::testutil::XorShift(99);
        for _ in 0..20_000 {
            let n = (rng.next() % 64) as usize;
            let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if let Ok(ms) = messages(&data) {
                for m in ms {
                    let _ = reply(&m);
                    let _ = attrs(m.body);
                }
            }
            let _ = attrs(&data);
        }
    }
}
