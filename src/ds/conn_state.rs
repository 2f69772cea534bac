//! The state of one frozen TCP connection, as the donor dumps it with `TCP_REPAIR`
//! (`sys::tcp_repair::extract`) and the acceptor rebuilds it (`sys::tcp_repair::restore`),
//! and its compact binary encoding for the control channel.
//!
//! The encoding is the seed's "about 100 bytes plus queue contents": a drained connection
//! (both queues empty) with its extraction time is 102 bytes. It arrives from another node,
//! so decoding is strict — exact length, every length bounded by [`Limits`], reserved bits
//! zero, values the kernel would refuse rejected here — and never panics; what decodes
//! re-encodes to the same bytes (`fuzz/fuzz_targets/conn_state.rs`).
//!
//! ```text
//!  0      version (1)
//!  1      flags: 0x01 SACK, 0x02 timestamps, 0x04 window scaling, 0x08 BU sequence present,
//!         0x10 home keygen token present
//!  2      window scales: send in the low nibble, receive in the high nibble (0 without 0x04)
//!  3      reserved (0)
//!  4..20  local (service) address     20..22 local port
//! 22..38  peer (client) address       38..40 peer port
//! 40      write_seq (send queue's TCP_QUEUE_SEQ: the sequence after the last queued byte)
//! 44      rcv_nxt   (receive queue's TCP_QUEUE_SEQ)
//! 48      unsent: bytes at the send queue's tail never transmitted (SIOCOUTQNSD)
//! 52      MSS clamp (u16)           54  BU sequence (u16; 0 without flag 0x08)
//! 56      TCP_TIMESTAMP (u32, passed back unchanged)
//! 60..80  TCP_REPAIR_WINDOW: snd_wl1 snd_wnd max_window rcv_wnd rcv_wup
//! 80      SO_SNDBUF   84 SO_RCVBUF
//! 88      phase map (u16): 2 bits per phase, 0 pending, 1 skipped, 2 measured
//! 90      one u32 (microseconds) per measured phase, in phase order
//!  …      with flag 0x10: home nonce index (u16), home keygen token (8 bytes)
//!  …      send queue length (u32), receive queue length (u32), the send queue, the receive queue
//! ```
//! All integers big-endian.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};

use super::phases::{PhaseTime, Phases};

pub const VERSION: u8 = 1;

const FLAG_SACK: u8 = 0x01;
const FLAG_TIMESTAMPS: u8 = 0x02;
const FLAG_WSCALE: u8 = 0x04;
const FLAG_BU_SEQUENCE: u8 = 0x08;
const FLAG_HOME_KEYGEN: u8 = 0x10;
const FLAGS_KNOWN: u8 =
    FLAG_SACK | FLAG_TIMESTAMPS | FLAG_WSCALE | FLAG_BU_SEQUENCE | FLAG_HOME_KEYGEN;
/// Nonce index and token.
const HOME_KEYGEN_LEN: usize = 10;

/// The fixed part before the phase values.
const FIXED_LEN: usize = 90;

/// The largest window scale TCP allows (RFC 7323 §2.3); the kernel answers EFBIG above it.
pub const MAX_WSCALE: u8 = 14;

/// TCP options negotiated at the handshake, which the acceptor must set again
/// (`TCP_REPAIR_OPTIONS`) or it misreads every window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub sack: bool,
    pub timestamps: bool,
    /// (send scale, receive scale), when window scaling was negotiated.
    pub wscale: Option<(u8, u8)>,
}

/// `TCP_REPAIR_WINDOW` (struct tcp_repair_window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepairWindow {
    pub snd_wl1: u32,
    pub snd_wnd: u32,
    pub max_window: u32,
    pub rcv_wnd: u32,
    pub rcv_wup: u32,
}

/// One frozen connection.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnState {
    /// The service address (the DSA) and port: what the acceptor binds to.
    pub local: SocketAddrV6,
    /// The client.
    pub peer: SocketAddrV6,
    /// The sequence number after the last byte in the send queue.
    pub write_seq: u32,
    /// The next sequence number expected from the client.
    pub rcv_nxt: u32,
    /// How many bytes at the end of `send_queue` were never transmitted.
    pub unsent: u32,
    pub mss_clamp: u16,
    pub options: TcpOptions,
    /// `TCP_TIMESTAMP`: the socket's timestamp clock (low bit: microsecond timestamps).
    pub timestamp: u32,
    pub window: RepairWindow,
    pub sndbuf: u32,
    pub rcvbuf: u32,
    /// The highest Binding Update sequence number the donor side used with this client
    /// for the DSA: the acceptor's binding must be newer.
    pub bu_sequence: Option<u16>,
    /// The home keygen token the client (as correspondent node) gave the DSA, obtained by
    /// the contact node's home test through the home agent's tunnel
    /// ([`crate::ds::redirect`]): the acceptor needs it for its Binding Update.
    pub home_keygen: Option<HomeKeygen>,
    /// Phases measured so far (the donor fills socket extraction).
    pub phases: Phases,
    /// Bytes written by the application and not yet acknowledged by the client.
    pub send_queue: Vec<u8>,
    /// Bytes received from the client and not yet read by the application.
    pub recv_queue: Vec<u8>,
}

impl fmt::Debug for ConnState {
    /// Queue lengths, not contents: they are application data and can be large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnState")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("write_seq", &self.write_seq)
            .field("rcv_nxt", &self.rcv_nxt)
            .field("unsent", &self.unsent)
            .field("mss_clamp", &self.mss_clamp)
            .field("options", &self.options)
            .field("timestamp", &self.timestamp)
            .field("window", &self.window)
            .field("sndbuf", &self.sndbuf)
            .field("rcvbuf", &self.rcvbuf)
            .field("bu_sequence", &self.bu_sequence)
            .field("home_keygen", &self.home_keygen.is_some())
            .field("phases", &self.phases)
            .field("send_queue_len", &self.send_queue.len())
            .field("recv_queue_len", &self.recv_queue.len())
            .finish()
    }
}

/// A home keygen token with the index of the nonce it was made from (RFC 6275 §5.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeKeygen {
    pub nonce_index: u16,
    pub token: [u8; 8],
}

/// Bounds a decoder applies to what another node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest send queue accepted, in bytes.
    pub max_send_queue: u32,
    /// Largest receive queue accepted, in bytes.
    pub max_recv_queue: u32,
}

impl Default for Limits {
    /// Generous for today's defaults (net.ipv4.tcp_wmem / tcp_rmem maxima are 4 MiB and
    /// 6 MiB), small enough that a forged length cannot make us allocate much.
    fn default() -> Limits {
        Limits {
            max_send_queue: 16 << 20,
            max_recv_queue: 16 << 20,
        }
    }
}

/// Why bytes are not a connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Truncated {
        needed: usize,
        have: usize,
    },
    Version(u8),
    /// A reserved bit or byte is set, or a field that must be zero is not.
    Reserved(&'static str),
    /// A value the kernel would refuse.
    Invalid(&'static str),
    QueueTooLong {
        queue: &'static str,
        len: u32,
        max: u32,
    },
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, have } => {
                write!(
                    f,
                    "connection state truncated: need {needed} bytes, have {have}"
                )
            }
            DecodeError::Version(v) => {
                write!(f, "connection state version {v}, expected {VERSION}")
            }
            DecodeError::Reserved(what) => write!(f, "connection state: {what} must be zero"),
            DecodeError::Invalid(what) => write!(f, "connection state: invalid {what}"),
            DecodeError::QueueTooLong { queue, len, max } => write!(
                f,
                "connection state: {queue} queue of {len} bytes exceeds the limit of {max}"
            ),
            DecodeError::TrailingBytes(n) => {
                write!(f, "connection state: {n} bytes after the end")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl ConnState {
    /// The encoded length.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN
            + 4 * self
                .phases
                .0
                .iter()
                .filter(|t| t.micros().is_some())
                .count()
            + if self.home_keygen.is_some() {
                HOME_KEYGEN_LEN
            } else {
                0
            }
            + 8
            + self.send_queue.len()
            + self.recv_queue.len()
    }

    /// The wire form. Queue lengths beyond `u32::MAX` cannot come from a kernel socket;
    /// `extract` never produces them.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.encoded_len());
        b.push(VERSION);
        let mut flags = 0;
        if self.options.sack {
            flags |= FLAG_SACK;
        }
        if self.options.timestamps {
            flags |= FLAG_TIMESTAMPS;
        }
        let mut scales = 0;
        if let Some((snd, rcv)) = self.options.wscale {
            flags |= FLAG_WSCALE;
            scales = (snd & 0x0f) | (rcv << 4);
        }
        if self.bu_sequence.is_some() {
            flags |= FLAG_BU_SEQUENCE;
        }
        if self.home_keygen.is_some() {
            flags |= FLAG_HOME_KEYGEN;
        }
        b.extend([flags, scales, 0]);
        for sa in [&self.local, &self.peer] {
            b.extend(sa.ip().octets());
            b.extend(sa.port().to_be_bytes());
        }
        for v in [self.write_seq, self.rcv_nxt, self.unsent] {
            b.extend(v.to_be_bytes());
        }
        b.extend(self.mss_clamp.to_be_bytes());
        b.extend(self.bu_sequence.unwrap_or(0).to_be_bytes());
        b.extend(self.timestamp.to_be_bytes());
        let w = &self.window;
        for v in [w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup] {
            b.extend(v.to_be_bytes());
        }
        b.extend(self.sndbuf.to_be_bytes());
        b.extend(self.rcvbuf.to_be_bytes());
        let mut map = 0u16;
        for (i, t) in self.phases.0.iter().enumerate() {
            let code = match t {
                PhaseTime::Pending => 0,
                PhaseTime::Skipped => 1,
                PhaseTime::Took(_) => 2,
            };
            map |= code << (2 * i);
        }
        b.extend(map.to_be_bytes());
        for us in self.phases.0.iter().filter_map(|t| t.micros()) {
            b.extend(us.to_be_bytes());
        }
        if let Some(h) = &self.home_keygen {
            b.extend(h.nonce_index.to_be_bytes());
            b.extend(h.token);
        }
        b.extend((self.send_queue.len() as u32).to_be_bytes());
        b.extend((self.recv_queue.len() as u32).to_be_bytes());
        b.extend(&self.send_queue);
        b.extend(&self.recv_queue);
        b
    }

    /// Strict decoding of [`encode`](Self::encode)'s output.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<ConnState, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = r.u8()?;
        if flags & !FLAGS_KNOWN != 0 {
            return Err(DecodeError::Reserved("unknown flags"));
        }
        let scales = r.u8()?;
        if r.u8()? != 0 {
            return Err(DecodeError::Reserved("byte 3"));
        }
        let wscale = if flags & FLAG_WSCALE != 0 {
            let (snd, rcv) = (scales & 0x0f, scales >> 4);
            if snd > MAX_WSCALE || rcv > MAX_WSCALE {
                return Err(DecodeError::Invalid("window scale (above 14)"));
            }
            Some((snd, rcv))
        } else if scales != 0 {
            return Err(DecodeError::Reserved(
                "window scales without window scaling",
            ));
        } else {
            None
        };
        let local = r.sockaddr()?;
        let peer = r.sockaddr()?;
        let write_seq = r.u32()?;
        let rcv_nxt = r.u32()?;
        let unsent = r.u32()?;
        let mss_clamp = r.u16()?;
        if mss_clamp == 0 {
            return Err(DecodeError::Invalid("MSS (zero)"));
        }
        let bu = r.u16()?;
        let bu_sequence = if flags & FLAG_BU_SEQUENCE != 0 {
            Some(bu)
        } else if bu != 0 {
            return Err(DecodeError::Reserved("BU sequence without its flag"));
        } else {
            None
        };
        let timestamp = r.u32()?;
        let window = RepairWindow {
            snd_wl1: r.u32()?,
            snd_wnd: r.u32()?,
            max_window: r.u32()?,
            rcv_wnd: r.u32()?,
            rcv_wup: r.u32()?,
        };
        if window.max_window < window.snd_wnd {
            // The kernel's EINVAL, caught before the acceptor builds half a socket.
            return Err(DecodeError::Invalid("window (max_window below snd_wnd)"));
        }
        if window.rcv_wup.wrapping_sub(rcv_nxt) as i32 > 0 {
            return Err(DecodeError::Invalid("window (rcv_wup beyond rcv_nxt)"));
        }
        let sndbuf = r.u32()?;
        let rcvbuf = r.u32()?;
        let map = r.u16()?;
        if map >> 14 != 0 {
            return Err(DecodeError::Reserved("phase map bits 14-15"));
        }
        let mut phases = Phases::default();
        for i in 0..7 {
            phases.0[i] = match (map >> (2 * i)) & 3 {
                0 => PhaseTime::Pending,
                1 => PhaseTime::Skipped,
                2 => PhaseTime::Took(r.u32()?),
                _ => return Err(DecodeError::Reserved("phase code 3")),
            };
        }
        let home_keygen = if flags & FLAG_HOME_KEYGEN != 0 {
            let nonce_index = r.u16()?;
            let mut token = [0; 8];
            token.copy_from_slice(r.take(8)?);
            Some(HomeKeygen { nonce_index, token })
        } else {
            None
        };
        let send_len = r.u32()?;
        let recv_len = r.u32()?;
        if send_len > limits.max_send_queue {
            return Err(DecodeError::QueueTooLong {
                queue: "send",
                len: send_len,
                max: limits.max_send_queue,
            });
        }
        if recv_len > limits.max_recv_queue {
            return Err(DecodeError::QueueTooLong {
                queue: "receive",
                len: recv_len,
                max: limits.max_recv_queue,
            });
        }
        if unsent > send_len {
            return Err(DecodeError::Invalid("unsent (more than the send queue)"));
        }
        let send_queue = r.take(send_len as usize)?.to_vec();
        let recv_queue = r.take(recv_len as usize)?.to_vec();
        if r.pos != bytes.len() {
            return Err(DecodeError::TrailingBytes(bytes.len() - r.pos));
        }
        Ok(ConnState {
            local,
            peer,
            write_seq,
            rcv_nxt,
            unsent,
            mss_clamp,
            options: TcpOptions {
                sack: flags & FLAG_SACK != 0,
                timestamps: flags & FLAG_TIMESTAMPS != 0,
                wscale,
            },
            timestamp,
            window,
            sndbuf,
            rcvbuf,
            bu_sequence,
            home_keygen,
            phases,
            send_queue,
            recv_queue,
        })
    }

    /// The part of the send queue the client has seen at least once (restored in repair
    /// mode as in flight), and the never-sent tail (written after activation).
    pub fn send_queue_split(&self) -> (&[u8], &[u8]) {
        let sent = self.send_queue.len().saturating_sub(self.unsent as usize);
        self.send_queue.split_at(sent)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(DecodeError::Truncated {
                needed: self.pos.saturating_add(n),
                have: self.bytes.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn sockaddr(&mut self) -> Result<SocketAddrV6, DecodeError> {
        let ip = Ipv6Addr::from(self.array::<16>()?);
        let port = self.u16()?;
        Ok(SocketAddrV6::new(ip, port, 0, 0))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ds::phases::Phase;

    /// What `extract` returns for a connection whose queues were drained (values from a
    /// real dump on this kernel).
    pub(crate) fn drained() -> ConnState {
        let mut phases = Phases::default();
        phases.set(Phase::SocketExtraction, PhaseTime::Took(780));
        ConnState {
            local: "[fd00:5e::1]:8000".parse().unwrap(),
            peer: "[fd00:c::1]:41234".parse().unwrap(),
            write_seq: 0x9a3c_0001,
            rcv_nxt: 0x1200_0310,
            unsent: 0,
            mss_clamp: 1428,
            options: TcpOptions {
                sack: true,
                timestamps: true,
                wscale: Some((7, 7)),
            },
            timestamp: 0x0abc_def1,
            window: RepairWindow {
                snd_wl1: 0x1200_0310,
                snd_wnd: 64768,
                max_window: 65536,
                rcv_wnd: 65483,
                rcv_wup: 0x1200_0310,
            },
            sndbuf: 87040,
            rcvbuf: 131072,
            bu_sequence: Some(0xfff0),
            home_keygen: None,
            phases,
            send_queue: vec![],
            recv_queue: vec![],
        }
    }

    #[test]
    fn drained_state_is_about_a_hundred_bytes() {
        let s = drained();
        let bytes = s.encode();
        println!("encoded drained connection state: {} bytes", bytes.len());
        assert_eq!(bytes.len(), s.encoded_len());
        assert!(bytes.len() <= 128, "drained state is {} bytes", bytes.len());
        assert_eq!(ConnState::decode(&bytes, &Limits::default()), Ok(s));
    }

    #[test]
    fn queues_round_trip_and_split_at_the_unsent_tail() {
        let mut s = drained();
        s.send_queue = (0..3000u32).map(|i| i as u8).collect();
        s.unsent = 1000;
        s.recv_queue = b"the client's request the server never read".to_vec();
        s.options.wscale = None;
        s.bu_sequence = None;
        s.phases.set(Phase::ReturnRoutability, PhaseTime::Skipped);
        let bytes = s.encode();
        assert_eq!(bytes.len(), s.encoded_len());
        let back = ConnState::decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(back, s);
        let (sent, tail) = back.send_queue_split();
        assert_eq!((sent.len(), tail.len()), (2000, 1000));
        assert_eq!(tail[0], 2000u32 as u8);
    }

    #[test]
    fn the_home_keygen_token_travels_in_ten_bytes() {
        let mut s = drained();
        let without = s.encoded_len();
        s.home_keygen = Some(HomeKeygen {
            nonce_index: 0x1234,
            token: *b"homekeyg",
        });
        let bytes = s.encode();
        assert_eq!((bytes.len(), s.encoded_len()), (without + 10, without + 10));
        assert_eq!(ConnState::decode(&bytes, &Limits::default()), Ok(s));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut s = drained();
        s.recv_queue = vec![7; 10];
        s.home_keygen = Some(HomeKeygen {
            nonce_index: 1,
            token: [9; 8],
        });
        let bytes = s.encode();
        for n in 0..bytes.len() {
            assert!(
                ConnState::decode(&bytes[..n], &Limits::default()).is_err(),
                "{n}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            ConnState::decode(&long, &Limits::default()),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn limits_bound_the_queues_before_allocating() {
        let mut s = drained();
        s.send_queue = vec![1; 100];
        let bytes = s.encode();
        let tight = Limits {
            max_send_queue: 99,
            max_recv_queue: 0,
        };
        assert_eq!(
            ConnState::decode(&bytes, &tight),
            Err(DecodeError::QueueTooLong {
                queue: "send",
                len: 100,
                max: 99
            })
        );
        // A forged 4 GB length in a short message is refused by the limit, not by an
        // attempt to read it.
        let mut forged = drained().encode();
        let at = forged.len() - 8;
        forged[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            ConnState::decode(&forged, &Limits::default()),
            Err(DecodeError::QueueTooLong { .. })
        ));
    }

    #[test]
    fn refuses_what_the_kernel_would_refuse_and_reserved_bits() {
        let ok = drained().encode();
        let cases: [(usize, u8, &str); 5] = [
            (0, 2, "version"),
            (1, 0x20, "unknown flag"),
            (2, 0xf7, "wscale 15"),
            (3, 1, "reserved byte"),
            (89, 0xff, "phase code 3"),
        ];
        for (at, v, what) in cases {
            let mut b = ok.clone();
            b[at] = v;
            assert!(ConnState::decode(&b, &Limits::default()).is_err(), "{what}");
        }
        let mut s = drained();
        s.window.max_window = s.window.snd_wnd - 1;
        assert_eq!(
            ConnState::decode(&s.encode(), &Limits::default()),
            Err(DecodeError::Invalid("window (max_window below snd_wnd)"))
        );
        let mut s = drained();
        s.unsent = 1;
        assert!(ConnState::decode(&s.encode(), &Limits::default()).is_err());
    }
}
