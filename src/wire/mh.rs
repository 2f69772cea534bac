//! The Mobility Header and its messages (RFC 6275 §6.1; flag bits from RFC 3963, RFC 4140
//! and RFC 5213 as listed in the IANA Mobility Header registries).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Payload Proto |  Header Len   |   MH Type     |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
//! .                                                               .
//! .                       Message Data                            .
//! .                                                               .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Header Len counts 8-octet units after the first 8 octets, so a header is at most
//! (255 + 1) * 8 = 2048 bytes; that bounds every allocation the parser makes.
//!
//! # What a receiver learns from [`MhRepr::parse`]
//! The checks run in this order, each with the duty RFC 6275 §9.2 attaches to it:
//! 1. fewer bytes than Header Len announces → drop ([`ErrorKind::Truncated`]);
//! 2. Payload Proto ≠ 59 → Parameter Problem code 0, pointer 0;
//! 3. Header Len below the message type's minimum → Parameter Problem code 0, pointer 1;
//! 4. options (see [`parse_options`]) → drop.
//!
//! [`MhRepr::parse_checked`] verifies the checksum between 1 and 2: a corrupted packet is
//! dropped silently rather than answered with an ICMP error about a field that may be the
//! very bit that was flipped. This is also what a Linux receiver sees in practice, since
//! the kernel verifies the checksum of a raw MH socket before the daemon reads it.
//!
//! An unknown MH type is *not* an error: it parses as [`Message::Unknown`], and
//! [`MhRepr::receiver_error`] tells the caller to answer with Binding Error status 2.
//!
//! Only the first Header Len bytes are parsed; anything after them in the buffer belongs
//! to whoever handed it over (normally nothing, since Payload Proto is 59) and is ignored.

use std::fmt;
use std::net::Ipv6Addr;

use nom::bytes::complete::take;
use nom::number::complete::{be_u128, be_u16, be_u64, be_u8};
use nom::sequence::tuple;
use nom::IResult;

use super::checksum;
use super::error::{Error, ErrorKind, Result};
use super::mh_option::{emit_options, options_end, parse_options, write_hex, MobilityOption};
use super::proto;

/// MH Type numbers (RFC 6275 §6.1).
pub mod mh_type {
    pub const BINDING_REFRESH_REQUEST: u8 = 0;
    pub const HOME_TEST_INIT: u8 = 1;
    pub const CARE_OF_TEST_INIT: u8 = 2;
    pub const HOME_TEST: u8 = 3;
    pub const CARE_OF_TEST: u8 = 4;
    pub const BINDING_UPDATE: u8 = 5;
    pub const BINDING_ACK: u8 = 6;
    pub const BINDING_ERROR: u8 = 7;
}

/// Binding Error status codes (RFC 6275 §6.1.9).
pub mod be_status {
    pub const UNKNOWN_BINDING_FOR_HOME_ADDRESS: u8 = 1;
    pub const UNRECOGNIZED_MH_TYPE: u8 = 2;
}

/// The largest Mobility Header: Header Len 255.
pub const MAX_LEN: usize = (255 + 1) * 8;

/// Lifetimes and refresh intervals are carried in units of 4 seconds.
pub const TIME_UNIT_SECS: u32 = 4;

const FIXED_HEADER_LEN: usize = 6;
const CHECKSUM_RANGE: std::ops::Range<usize> = 4..6;

/// The smallest whole Mobility Header (Header Len included) a known type may have:
/// the common header plus the type's fixed fields (RFC 6275 §6.1.2–§6.1.9). `None` for
/// types this implementation does not know.
pub fn min_len(t: u8) -> Option<usize> {
    match t {
        mh_type::BINDING_REFRESH_REQUEST => Some(8),
        mh_type::HOME_TEST_INIT | mh_type::CARE_OF_TEST_INIT => Some(16),
        mh_type::HOME_TEST | mh_type::CARE_OF_TEST => Some(24),
        mh_type::BINDING_UPDATE | mh_type::BINDING_ACK => Some(12),
        mh_type::BINDING_ERROR => Some(24),
        _ => None,
    }
}

/// A stable kebab-case name for logs and JSON.
pub fn mh_type_name(t: u8) -> &'static str {
    match t {
        mh_type::BINDING_REFRESH_REQUEST => "binding-refresh-request",
        mh_type::HOME_TEST_INIT => "home-test-init",
        mh_type::CARE_OF_TEST_INIT => "care-of-test-init",
        mh_type::HOME_TEST => "home-test",
        mh_type::CARE_OF_TEST => "care-of-test",
        mh_type::BINDING_UPDATE => "binding-update",
        mh_type::BINDING_ACK => "binding-acknowledgement",
        mh_type::BINDING_ERROR => "binding-error",
        _ => "unknown",
    }
}

/// Kebab-case names of the Binding Acknowledgement status codes in the IANA registry:
/// RFC 6275 §6.1.8 (0, 1, 128–139) and the extensions that share the field
/// (RFC 3963 NEMO 140–143, RFC 4285 144–146, RFC 4866 147–150, RFC 5149 151,
/// RFC 5213 PMIPv6 152–162, RFC 5845 GRE 2, 3, 163, RFC 5648 MCoA 4, 5, 164–169,
/// RFC 5844 170–173, RFC 6058 6, 174). Values below 128 mean the binding was accepted.
pub fn ba_status_name(status: u8) -> Option<&'static str> {
    Some(match status {
        0 => "binding-update-accepted",
        1 => "accepted-but-prefix-discovery-necessary",
        2 => "gre-key-option-not-required",
        3 => "gre-tunneling-but-tlv-header-not-supported",
        4 => "mcoa-notcomplete",
        5 => "mcoa-returnhome-wo-ndp",
        6 => "pbu-accepted-tb-ignored-settingsmismatch",
        128 => "reason-unspecified",
        129 => "administratively-prohibited",
        130 => "insufficient-resources",
        131 => "home-registration-not-supported",
        132 => "not-home-subnet",
        133 => "not-home-agent-for-this-mobile-node",
        134 => "duplicate-address-detection-failed",
        135 => "sequence-number-out-of-window",
        136 => "expired-home-nonce-index",
        137 => "expired-care-of-nonce-index",
        138 => "expired-nonces",
        139 => "registration-type-change-disallowed",
        140 => "mobile-router-operation-not-permitted",
        141 => "invalid-prefix",
        142 => "not-authorized-for-prefix",
        143 => "forwarding-setup-failed",
        144 => "mipv6-id-mismatch",
        145 => "mipv6-mesg-id-reqd",
        146 => "mipv6-auth-fail",
        147 => "permanent-home-keygen-token-unavailable",
        148 => "cga-and-signature-verification-failed",
        149 => "permanent-home-keygen-token-exists",
        150 => "non-null-home-nonce-index-expected",
        151 => "service-authorization-failed",
        152 => "proxy-reg-not-enabled",
        153 => "not-lma-for-this-mobile-node",
        154 => "mag-not-authorized-for-proxy-reg",
        155 => "not-authorized-for-home-network-prefix",
        156 => "timestamp-mismatch",
        157 => "timestamp-lower-than-prev-accepted",
        158 => "missing-home-network-prefix-option",
        159 => "bce-pbu-prefix-set-do-not-match",
        160 => "missing-mn-identifier-option",
        161 => "missing-handoff-indicator-option",
        162 => "missing-access-tech-type-option",
        163 => "gre-key-option-required",
        164 => "mcoa-malformed",
        165 => "mcoa-non-mcoa-binding-exists",
        166 => "mcoa-prohibited",
        167 => "mcoa-unknown-coa",
        168 => "mcoa-bulk-registration-prohibited",
        169 => "mcoa-simultaneous-home-and-foreign-prohibited",
        170 => "not-authorized-for-ipv4-mobility-service",
        171 => "not-authorized-for-ipv4-home-address",
        172 => "not-authorized-for-ipv6-mobility-service",
        173 => "multiple-ipv4-home-address-assignment-not-supported",
        174 => "invalid-care-of-address",
        _ => return None,
    })
}

/// Kebab-case names of the Binding Error status codes (RFC 6275 §6.1.9).
pub fn be_status_name(status: u8) -> Option<&'static str> {
    match status {
        be_status::UNKNOWN_BINDING_FOR_HOME_ADDRESS => {
            Some("unknown-binding-for-home-address-destination-option")
        }
        be_status::UNRECOGNIZED_MH_TYPE => Some("unrecognized-mh-type-value"),
        _ => None,
    }
}

/// Binding Update flags: the 16-bit word after Sequence #.
///
/// ```text
/// |A|H|L|K|M|R|P|      Reserved       |
/// ```
/// A, H, L, K: RFC 6275 §6.1.7; M: RFC 4140 (HMIPv6 MAP registration); R: RFC 3963
/// (mobile router); P: RFC 5213 (proxy registration). Reserved bits are ignored on
/// receipt and sent as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BuFlags {
    pub a: bool,
    pub h: bool,
    pub l: bool,
    pub k: bool,
    pub m: bool,
    pub r: bool,
    pub p: bool,
}

impl BuFlags {
    pub const A: u16 = 0x8000;
    pub const H: u16 = 0x4000;
    pub const L: u16 = 0x2000;
    pub const K: u16 = 0x1000;
    pub const M: u16 = 0x0800;
    pub const R: u16 = 0x0400;
    pub const P: u16 = 0x0200;

    pub fn from_bits(w: u16) -> BuFlags {
        BuFlags {
            a: w & Self::A != 0,
            h: w & Self::H != 0,
            l: w & Self::L != 0,
            k: w & Self::K != 0,
            m: w & Self::M != 0,
            r: w & Self::R != 0,
            p: w & Self::P != 0,
        }
    }

    pub fn bits(self) -> u16 {
        [
            (self.a, Self::A),
            (self.h, Self::H),
            (self.l, Self::L),
            (self.k, Self::K),
            (self.m, Self::M),
            (self.r, Self::R),
            (self.p, Self::P),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .fold(0, |w, (_, bit)| w | bit)
    }
}

impl fmt::Display for BuFlags {
    /// Set flags as letters joined by `|`, or `-` when none is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(
            f,
            &[
                (self.a, "A"),
                (self.h, "H"),
                (self.l, "L"),
                (self.k, "K"),
                (self.m, "M"),
                (self.r, "R"),
                (self.p, "P"),
            ],
        )
    }
}

/// Binding Acknowledgement flags: the byte after Status.
///
/// ```text
/// |K|R|P|Reserved |
/// ```
/// K: RFC 6275 §6.1.8; R: RFC 3963; P: RFC 5213. Reserved bits are ignored and sent as
/// zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BaFlags {
    pub k: bool,
    pub r: bool,
    pub p: bool,
}

impl BaFlags {
    pub const K: u8 = 0x80;
    pub const R: u8 = 0x40;
    pub const P: u8 = 0x20;

    pub fn from_bits(b: u8) -> BaFlags {
        BaFlags {
            k: b & Self::K != 0,
            r: b & Self::R != 0,
            p: b & Self::P != 0,
        }
    }

    pub fn bits(self) -> u8 {
        (if self.k { Self::K } else { 0 })
            | (if self.r { Self::R } else { 0 })
            | (if self.p { Self::P } else { 0 })
    }
}

impl fmt::Display for BaFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, &[(self.k, "K"), (self.r, "R"), (self.p, "P")])
    }
}

fn write_flags(f: &mut fmt::Formatter<'_>, flags: &[(bool, &str)]) -> fmt::Result {
    let mut any = false;
    for (_, name) in flags.iter().filter(|(set, _)| *set) {
        if any {
            f.write_str("|")?;
        }
        f.write_str(name)?;
        any = true;
    }
    if !any {
        f.write_str("-")?;
    }
    Ok(())
}

/// The message data of a Mobility Header: the fixed fields after the 6-byte common header.
///
/// ```text
/// Binding Refresh Request (§6.1.2)         Home / Care-of Test Init (§6.1.3, §6.1.4)
/// +-------------------------------+        +-------------------------------+
/// |           Reserved            |        |           Reserved            |
/// +-------------------------------+        +-------------------------------+
///                                          |   Home / Care-of Init Cookie  |
///                                          |           (64 bits)           |
///                                          +-------------------------------+
///
/// Home / Care-of Test (§6.1.5, §6.1.6)     Binding Update (§6.1.7)
/// +-------------------------------+        +-------------------------------+
/// | Home / Care-of Nonce Index    |        |          Sequence #           |
/// +-------------------------------+        +-+-+-+-+-+-+-+-----------------+
/// |   Home / Care-of Init Cookie  |        |A|H|L|K|M|R|P|    Reserved     |
/// |           (64 bits)           |        +-+-+-+-+-+-+-+-----------------+
/// +-------------------------------+        |           Lifetime            |
/// |  Home / Care-of Keygen Token  |        +-------------------------------+
/// |           (64 bits)           |
/// +-------------------------------+
///
/// Binding Acknowledgement (§6.1.8)         Binding Error (§6.1.9)
/// +---------------+-+-+-+---------+        +---------------+---------------+
/// |    Status     |K|R|P|Reserved |        |    Status     |   Reserved    |
/// +---------------+-+-+-+---------+        +---------------+---------------+
/// |          Sequence #           |        |        Home Address           |
/// +-------------------------------+        |         (128 bits)            |
/// |           Lifetime            |        +-------------------------------+
/// +-------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    BindingRefreshRequest,
    HomeTestInit {
        cookie: [u8; 8],
    },
    CareOfTestInit {
        cookie: [u8; 8],
    },
    HomeTest {
        nonce_index: u16,
        cookie: [u8; 8],
        keygen_token: [u8; 8],
    },
    CareOfTest {
        nonce_index: u16,
        cookie: [u8; 8],
        keygen_token: [u8; 8],
    },
    /// `lifetime_units` counts 4-second units ([`TIME_UNIT_SECS`]).
    BindingUpdate {
        sequence: u16,
        flags: BuFlags,
        lifetime_units: u16,
    },
    /// `lifetime_units` counts 4-second units ([`TIME_UNIT_SECS`]).
    BindingAck {
        status: u8,
        flags: BaFlags,
        sequence: u16,
        lifetime_units: u16,
    },
    BindingError {
        status: u8,
        home_address: Ipv6Addr,
    },
    /// A type this implementation does not know. `data` is everything after the common
    /// header, kept raw: without knowing the type nobody can tell where options begin.
    /// Emitting one pads `data` with zero bytes to a multiple of 8; `mh_type` must not be
    /// one of the known types (see [`MhRepr::is_encodable`]).
    Unknown {
        mh_type: u8,
        data: Vec<u8>,
    },
}

impl Message {
    pub fn mh_type(&self) -> u8 {
        match self {
            Message::BindingRefreshRequest => mh_type::BINDING_REFRESH_REQUEST,
            Message::HomeTestInit { .. } => mh_type::HOME_TEST_INIT,
            Message::CareOfTestInit { .. } => mh_type::CARE_OF_TEST_INIT,
            Message::HomeTest { .. } => mh_type::HOME_TEST,
            Message::CareOfTest { .. } => mh_type::CARE_OF_TEST,
            Message::BindingUpdate { .. } => mh_type::BINDING_UPDATE,
            Message::BindingAck { .. } => mh_type::BINDING_ACK,
            Message::BindingError { .. } => mh_type::BINDING_ERROR,
            Message::Unknown { mh_type, .. } => *mh_type,
        }
    }

    /// Offset of the first option: the common header plus this message's fixed fields.
    pub fn fixed_len(&self) -> usize {
        match self {
            Message::Unknown { data, .. } => FIXED_HEADER_LEN + data.len(),
            other => min_len(other.mh_type()).unwrap_or(FIXED_HEADER_LEN),
        }
    }

    /// Parse the fields after the common header. `body` is at least as long as the fixed
    /// part, because the caller checked Header Len against [`min_len`] first.
    fn parse_body(t: u8, body: &[u8]) -> IResult<&[u8], Message> {
        match t {
            mh_type::BINDING_REFRESH_REQUEST => {
                let (r, _reserved) = take(2usize)(body)?;
                Ok((r, Message::BindingRefreshRequest))
            }
            mh_type::HOME_TEST_INIT | mh_type::CARE_OF_TEST_INIT => {
                let (r, (_reserved, cookie)) = tuple((be_u16, be_u64))(body)?;
                let cookie = cookie.to_be_bytes();
                let m = if t == mh_type::HOME_TEST_INIT {
                    Message::HomeTestInit { cookie }
                } else {
                    Message::CareOfTestInit { cookie }
                };
                Ok((r, m))
            }
            mh_type::HOME_TEST | mh_type::CARE_OF_TEST => {
                let (r, (nonce_index, cookie, token)) = tuple((be_u16, be_u64, be_u64))(body)?;
                let (cookie, keygen_token) = (cookie.to_be_bytes(), token.to_be_bytes());
                let m = if t == mh_type::HOME_TEST {
                    Message::HomeTest {
                        nonce_index,
                        cookie,
                        keygen_token,
                    }
                } else {
                    Message::CareOfTest {
                        nonce_index,
                        cookie,
                        keygen_token,
                    }
                };
                Ok((r, m))
            }
            mh_type::BINDING_UPDATE => {
                let (r, (sequence, flags, lifetime_units)) = tuple((be_u16, be_u16, be_u16))(body)?;
                let flags = BuFlags::from_bits(flags);
                Ok((
                    r,
                    Message::BindingUpdate {
                        sequence,
                        flags,
                        lifetime_units,
                    },
                ))
            }
            mh_type::BINDING_ACK => {
                let (r, (status, flags, sequence, lifetime_units)) =
                    tuple((be_u8, be_u8, be_u16, be_u16))(body)?;
                let flags = BaFlags::from_bits(flags);
                Ok((
                    r,
                    Message::BindingAck {
                        status,
                        flags,
                        sequence,
                        lifetime_units,
                    },
                ))
            }
            mh_type::BINDING_ERROR => {
                let (r, (status, _reserved, home)) = tuple((be_u8, be_u8, be_u128))(body)?;
                Ok((
                    r,
                    Message::BindingError {
                        status,
                        home_address: Ipv6Addr::from(home),
                    },
                ))
            }
            _ => Ok((
                &body[body.len()..],
                Message::Unknown {
                    mh_type: t,
                    data: body.to_vec(),
                },
            )),
        }
    }

    /// Write the fields after the common header into `body` (reserved bytes must already
    /// be zero).
    fn emit_body(&self, body: &mut [u8]) {
        match self {
            Message::BindingRefreshRequest => {}
            Message::HomeTestInit { cookie } | Message::CareOfTestInit { cookie } => {
                body[2..10].copy_from_slice(cookie);
            }
            Message::HomeTest {
                nonce_index,
                cookie,
                keygen_token,
            }
            | Message::CareOfTest {
                nonce_index,
                cookie,
                keygen_token,
            } => {
                body[0..2].copy_from_slice(&nonce_index.to_be_bytes());
                body[2..10].copy_from_slice(cookie);
                body[10..18].copy_from_slice(keygen_token);
            }
            Message::BindingUpdate {
                sequence,
                flags,
                lifetime_units,
            } => {
                body[0..2].copy_from_slice(&sequence.to_be_bytes());
                body[2..4].copy_from_slice(&flags.bits().to_be_bytes());
                body[4..6].copy_from_slice(&lifetime_units.to_be_bytes());
            }
            Message::BindingAck {
                status,
                flags,
                sequence,
                lifetime_units,
            } => {
                body[0] = *status;
                body[1] = flags.bits();
                body[2..4].copy_from_slice(&sequence.to_be_bytes());
                body[4..6].copy_from_slice(&lifetime_units.to_be_bytes());
            }
            Message::BindingError {
                status,
                home_address,
            } => {
                body[0] = *status;
                body[2..18].copy_from_slice(&home_address.octets());
            }
            Message::Unknown { data, .. } => body[..data.len()].copy_from_slice(data),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(mh_type_name(self.mh_type()))?;
        match self {
            Message::BindingRefreshRequest => Ok(()),
            Message::HomeTestInit { cookie } | Message::CareOfTestInit { cookie } => {
                f.write_str(" cookie=")?;
                write_hex(f, cookie)
            }
            Message::HomeTest {
                nonce_index,
                cookie,
                keygen_token,
            }
            | Message::CareOfTest {
                nonce_index,
                cookie,
                keygen_token,
            } => {
                write!(f, " nonce-index={nonce_index} cookie=")?;
                write_hex(f, cookie)?;
                f.write_str(" keygen-token=")?;
                write_hex(f, keygen_token)
            }
            Message::BindingUpdate {
                sequence,
                flags,
                lifetime_units,
            } => write!(
                f,
                " seq={sequence} flags={flags} lifetime={lifetime_units} ({}s)",
                u32::from(*lifetime_units) * TIME_UNIT_SECS
            ),
            Message::BindingAck {
                status,
                flags,
                sequence,
                lifetime_units,
            } => write!(
                f,
                " status={status} ({}) seq={sequence} flags={flags} lifetime={lifetime_units} ({}s)",
                ba_status_name(*status).unwrap_or("unknown"),
                u32::from(*lifetime_units) * TIME_UNIT_SECS
            ),
            Message::BindingError {
                status,
                home_address,
            } => write!(
                f,
                " status={status} ({}) home-address={home_address}",
                be_status_name(*status).unwrap_or("unknown")
            ),
            Message::Unknown { mh_type, data } => {
                write!(f, " type={mh_type} len={}", data.len())
            }
        }
    }
}

/// A whole Mobility Header: one message and its options (padding excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhRepr {
    pub message: Message,
    pub options: Vec<MobilityOption>,
}

/// The first Header Len bytes of `data`, or a drop if the buffer is shorter.
fn header_bytes(data: &[u8]) -> Result<&[u8]> {
    let hl = *data.get(1).ok_or(Error::drop(ErrorKind::Truncated))?;
    let total = (usize::from(hl) + 1) * 8;
    data.get(..total).ok_or(Error::drop(ErrorKind::Truncated))
}

/// Parse and also report where the authenticator is, for [`auth_data_region`].
fn parse_inner(data: &[u8]) -> Result<(MhRepr, Option<usize>)> {
    let mh = header_bytes(data)?;
    let (body, (payload_proto, _hl, t, _reserved, _checksum)) =
        tuple((be_u8, be_u8, be_u8, be_u8, be_u16))(mh)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| Error::drop(ErrorKind::Truncated))?;
    if payload_proto != proto::NO_NEXT_HEADER {
        return Err(Error::param_problem(ErrorKind::BadPayloadProto, 0));
    }
    if min_len(t).is_some_and(|min| mh.len() < min) {
        return Err(Error::param_problem(ErrorKind::BadHeaderLength, 1));
    }
    let (_, message) =
        Message::parse_body(t, body).map_err(|_| Error::drop(ErrorKind::Truncated))?;
    if let Message::Unknown { .. } = message {
        return Ok((
            MhRepr {
                message,
                options: Vec::new(),
            },
            None,
        ));
    }
    let parsed = parse_options(mh, message.fixed_len())?;
    Ok((
        MhRepr {
            message,
            options: parsed.options,
        },
        parsed.auth_offset,
    ))
}

impl MhRepr {
    /// Parse the structure of a Mobility Header without looking at the checksum. See the
    /// module documentation for the checks and their order.
    pub fn parse(data: &[u8]) -> Result<MhRepr> {
        parse_inner(data).map(|(repr, _)| repr)
    }

    /// [`MhRepr::parse`], after verifying the checksum over the pseudo-header with these
    /// addresses (the home address, not the care-of address, when a Home Address option
    /// or Type 2 Routing Header is present). A bad checksum is a silent drop.
    pub fn parse_checked(data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<MhRepr> {
        let mh = header_bytes(data)?;
        if !checksum::verify(src, dst, proto::MOBILITY, mh) {
            return Err(Error::drop(ErrorKind::BadChecksum));
        }
        MhRepr::parse(mh)
    }

    /// What RFC 6275 asks of a receiver of this successfully parsed message, if anything:
    /// an unknown MH type must be answered with Binding Error status 2 (§9.2, §9.3.3).
    pub fn receiver_error(&self) -> Option<Error> {
        match self.message {
            Message::Unknown { .. } => Some(Error::binding_error(
                ErrorKind::UnknownMhType,
                be_status::UNRECOGNIZED_MH_TYPE,
            )),
            _ => None,
        }
    }

    pub fn mh_type(&self) -> u8 {
        self.message.mh_type()
    }

    /// Bytes [`MhRepr::emit`] writes: a multiple of 8, padding included.
    pub fn buffer_len(&self) -> usize {
        options_end(self.message.fixed_len(), &self.options)
    }

    /// Whether this repr can be emitted so that it parses back as itself: at most
    /// [`MAX_LEN`] bytes, an `Unknown` message only with an unknown type and no options,
    /// encodable options, and Binding Authorization Data, if any, last.
    pub fn is_encodable(&self) -> bool {
        let message_ok = match &self.message {
            Message::Unknown { mh_type, .. } => {
                min_len(*mh_type).is_none() && self.options.is_empty()
            }
            _ => true,
        };
        let auth_last = self
            .options
            .iter()
            .position(|o| matches!(o, MobilityOption::BindingAuthData(_)))
            .map_or(true, |i| i + 1 == self.options.len());
        message_ok
            && auth_last
            && self.options.iter().all(MobilityOption::is_encodable)
            && self.buffer_len() <= MAX_LEN
    }

    /// Everything but the checksum; returns the authenticator offset, if any.
    fn emit_unchecksummed(&self, buf: &mut [u8]) -> Option<usize> {
        assert!(
            self.is_encodable(),
            "Mobility Header cannot be encoded: {self:?}"
        );
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf.fill(0);
        buf[0] = proto::NO_NEXT_HEADER;
        buf[1] = (len / 8 - 1) as u8;
        buf[2] = self.mh_type();
        self.message.emit_body(&mut buf[FIXED_HEADER_LEN..]);
        let (_, auth) = emit_options(buf, self.message.fixed_len(), &self.options);
        auth
    }

    fn fill_checksum(buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        buf[CHECKSUM_RANGE].fill(0);
        let c = checksum::compute(src, dst, proto::MOBILITY, buf);
        buf[CHECKSUM_RANGE].copy_from_slice(&c.to_be_bytes());
    }

    /// Write the header into the front of `buf` and fill in the checksum.
    ///
    /// # Panics
    /// If `buf` is shorter than [`MhRepr::buffer_len`] or the repr is not
    /// [encodable](MhRepr::is_encodable) — caller bugs that must not reach the wire.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.emit_unchecksummed(buf);
        Self::fill_checksum(&mut buf[..self.buffer_len()], src, dst);
    }

    /// Emit a message that carries Binding Authorization Data, computing its
    /// authenticator on the way (RFC 6275 §5.2.6).
    ///
    /// The header is laid out with the authenticator and checksum zeroed, then
    /// `authenticate` is called with the bytes the authenticator covers — the header from
    /// its first byte up to, not including, the authenticator, checksum zero — and must
    /// return the 12-byte authenticator (the caller prepends the care-of and
    /// correspondent addresses to those bytes for the HMAC). The result is written in
    /// place and then the checksum is computed over the finished header, as §5.2.6
    /// requires. The authenticator stored in `self.options` is ignored.
    ///
    /// Returns the offset of the authenticator in `buf`; `None` — without calling
    /// `authenticate` — if there is no Binding Authorization Data option, in which case
    /// this is plain [`MhRepr::emit`].
    ///
    /// # Panics
    /// As [`MhRepr::emit`].
    pub fn emit_with_authenticator(
        &self,
        buf: &mut [u8],
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        authenticate: impl FnOnce(&[u8]) -> [u8; 12],
    ) -> Option<usize> {
        let len = self.buffer_len();
        let auth = self.emit_unchecksummed(buf);
        if let Some(at) = auth {
            buf[at..at + 12].fill(0);
            let a = authenticate(&buf[..at]);
            buf[at..at + 12].copy_from_slice(&a);
        }
        Self::fill_checksum(&mut buf[..len], src, dst);
        auth
    }

    /// [`MhRepr::emit`] into a new vector of exactly [`MhRepr::buffer_len`] bytes.
    pub fn to_bytes(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v, src, dst);
        v
    }
}

impl fmt::Display for MhRepr {
    /// One line: the message, then its options in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for (i, o) in self.options.iter().enumerate() {
            f.write_str(if i == 0 { " [" } else { "; " })?;
            write!(f, "{o}")?;
        }
        if !self.options.is_empty() {
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// Whether the checksum of the Mobility Header at the front of `data` (Header Len bytes)
/// verifies; false if `data` is shorter than Header Len says.
pub fn checksum_ok(data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
    header_bytes(data).is_ok_and(|mh| checksum::verify(src, dst, proto::MOBILITY, mh))
}

/// For verifying Binding Authorization Data (RFC 6275 §6.2.7, §5.2.6): from a whole
/// Mobility Header as received, the bytes the authenticator covers — the header with its
/// checksum zeroed, from the first byte up to but excluding the authenticator, so the
/// option's type and length bytes are included — and the authenticator itself.
///
/// `None` if the message has no Binding Authorization Data option or does not parse
/// (a message that fails [`MhRepr::parse`] must be dropped before any authentication).
/// The caller prepends the care-of and correspondent addresses before computing the HMAC.
pub fn auth_data_region(data: &[u8]) -> Option<(Vec<u8>, [u8; 12])> {
    let (_, at) = parse_inner(data).ok()?;
    let at = at?;
    let mut covered = data.get(..at)?.to_vec();
    covered[CHECKSUM_RANGE].fill(0);
    let auth = <[u8; 12]>::try_from(data.get(at..at + 12)?).ok()?;
    Some((covered, auth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ReceiverAction;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn src() -> Ipv6Addr {
        a("2001:db8:0:1::10")
    }

    fn dst() -> Ipv6Addr {
        a("2001:db8:0:2::1")
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn zero_checksum(mut v: Vec<u8>) -> Vec<u8> {
        v[4..6].fill(0);
        v
    }

    fn repr(message: Message, options: Vec<MobilityOption>) -> MhRepr {
        MhRepr { message, options }
    }

    fn all_messages() -> Vec<MhRepr> {
        let cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let token = [0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87];
        vec![
            repr(Message::BindingRefreshRequest, vec![]),
            repr(Message::HomeTestInit { cookie }, vec![]),
            repr(Message::CareOfTestInit { cookie }, vec![]),
            repr(
                Message::HomeTest {
                    nonce_index: 0x0102,
                    cookie,
                    keygen_token: token,
                },
                vec![],
            ),
            repr(
                Message::CareOfTest {
                    nonce_index: 0xfffe,
                    cookie,
                    keygen_token: token,
                },
                vec![],
            ),
            repr(
                Message::BindingUpdate {
                    sequence: 0x1234,
                    flags: BuFlags {
                        a: true,
                        h: true,
                        l: true,
                        k: true,
                        m: true,
                        r: true,
                        p: true,
                    },
                    lifetime_units: 105,
                },
                vec![
                    MobilityOption::AlternateCareOf(a("2001:db8:9::5")),
                    MobilityOption::MobileNetworkPrefix {
                        prefix_len: 48,
                        prefix: a("2001:db8:1::"),
                    },
                    MobilityOption::NonceIndices {
                        home: 1,
                        care_of: 2,
                    },
                    MobilityOption::BindingAuthData([9; 12]),
                ],
            ),
            repr(
                Message::BindingAck {
                    status: 135,
                    flags: BaFlags {
                        k: true,
                        r: true,
                        p: true,
                    },
                    sequence: 7,
                    lifetime_units: 0xffff,
                },
                vec![
                    MobilityOption::BindingRefreshAdvice { interval_units: 15 },
                    MobilityOption::BindingAuthData([7; 12]),
                ],
            ),
            repr(
                Message::BindingError {
                    status: 1,
                    home_address: a("2001:db8::77"),
                },
                vec![],
            ),
            repr(
                Message::Unknown {
                    mh_type: 200,
                    data: vec![0xaa; 10],
                },
                vec![],
            ),
            // A known message with an option the parser does not know.
            repr(
                Message::BindingRefreshRequest,
                vec![MobilityOption::Unknown {
                    opt_type: 0x42,
                    data: vec![1, 2, 3, 4, 5],
                }],
            ),
        ]
    }

    #[test]
    fn every_message_round_trips_with_a_valid_checksum() {
        for m in all_messages() {
            let bytes = m.to_bytes(&src(), &dst());
            assert_eq!(bytes.len(), m.buffer_len());
            assert_eq!(bytes.len() % 8, 0);
            assert_eq!(usize::from(bytes[1]), bytes.len() / 8 - 1);
            assert!(checksum_ok(&bytes, &src(), &dst()));
            assert_eq!(MhRepr::parse_checked(&bytes, &src(), &dst()).unwrap(), m);
            assert_eq!(MhRepr::parse(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn fixed_messages_exact_bytes() {
        let cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let token = [9, 10, 11, 12, 13, 14, 15, 16];
        let cases: Vec<(Message, Vec<u8>)> = vec![
            (
                Message::BindingRefreshRequest,
                vec![0x3b, 0, 0, 0, 0, 0, 0, 0],
            ),
            (
                Message::HomeTestInit { cookie },
                vec![0x3b, 1, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            ),
            (
                Message::CareOfTestInit { cookie },
                vec![0x3b, 1, 2, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            ),
            (
                Message::HomeTest {
                    nonce_index: 0x0a0b,
                    cookie,
                    keygen_token: token,
                },
                vec![
                    0x3b, 2, 3, 0, 0, 0, 0x0a, 0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                    15, 16,
                ],
            ),
            (
                Message::CareOfTest {
                    nonce_index: 0x0a0b,
                    cookie,
                    keygen_token: token,
                },
                vec![
                    0x3b, 2, 4, 0, 0, 0, 0x0a, 0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                    15, 16,
                ],
            ),
            (
                // BA with K and R, 12 fixed bytes then a 4-byte PadN to reach 16.
                Message::BindingAck {
                    status: 0,
                    flags: BaFlags {
                        k: true,
                        r: true,
                        p: false,
                    },
                    sequence: 0x1234,
                    lifetime_units: 105,
                },
                vec![
                    0x3b, 1, 6, 0, 0, 0, 0, 0xc0, 0x12, 0x34, 0, 0x69, 1, 2, 0, 0,
                ],
            ),
            (
                Message::BindingError {
                    status: 2,
                    home_address: a("2001:db8::1"),
                },
                vec![
                    0x3b, 2, 7, 0, 0, 0, 2, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 1,
                ],
            ),
        ];
        for (m, want) in cases {
            let r = repr(m, vec![]);
            assert_eq!(zero_checksum(r.to_bytes(&src(), &dst())), want, "{r}");
            assert_eq!(MhRepr::parse(&want).unwrap(), r);
        }
    }

    /// BU with A|H, seq 0x1234, lifetime 105 and an Alternate Care-of Address. The fixed
    /// part ends at 12; the option must start at 8n+6 = 14, so a 2-byte PadN (length 0)
    /// fills 12..14 and the address ends exactly at 32: Header Len 3.
    #[test]
    fn bu_with_alternate_care_of_exact_bytes() {
        let r = repr(
            Message::BindingUpdate {
                sequence: 0x1234,
                flags: BuFlags {
                    a: true,
                    h: true,
                    ..BuFlags::default()
                },
                lifetime_units: 105,
            },
            vec![MobilityOption::AlternateCareOf(a("2001:db8::5"))],
        );
        let want: Vec<u8> = vec![
            0x3b, 0x03, 0x05, 0x00, 0x00, 0x00, 0x12, 0x34, // common header, seq
            0xc0, 0x00, 0x00, 0x69, 0x01, 0x00, 0x03, 0x10, // A|H, lifetime, PadN, ACoA
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        ];
        let bytes = r.to_bytes(&src(), &dst());
        assert!(checksum_ok(&bytes, &src(), &dst()));
        assert_eq!(zero_checksum(bytes), want);
        assert_eq!(MhRepr::parse(&want).unwrap(), r);
    }

    /// BU as a mobile router (A|H|R) with a Mobile Network Prefix: 8n+4 = 12 is exactly
    /// where the fixed part ends, so no padding at all.
    #[test]
    fn bu_with_mobile_network_prefix_exact_bytes() {
        let r = repr(
            Message::BindingUpdate {
                sequence: 1,
                flags: BuFlags {
                    a: true,
                    h: true,
                    r: true,
                    ..BuFlags::default()
                },
                lifetime_units: 0x100,
            },
            vec![MobilityOption::MobileNetworkPrefix {
                prefix_len: 48,
                prefix: a("2001:db8:1::"),
            }],
        );
        let want: Vec<u8> = vec![
            0x3b, 0x03, 0x05, 0x00, 0x00, 0x00, 0x00, 0x01, //
            0xc4, 0x00, 0x01, 0x00, 0x06, 0x12, 0x00, 0x30, //
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(zero_checksum(r.to_bytes(&src(), &dst())), want);
        assert_eq!(MhRepr::parse(&want).unwrap(), r);
    }

    /// BA with a Binding Refresh Advice (2n: at 12) and Binding Authorization Data
    /// (8n+2: 16 is wrong, so PadN 16..18, option at 18, ending at 32).
    #[test]
    fn ba_with_refresh_advice_and_auth_exact_bytes() {
        let auth = [
            0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
        ];
        let r = repr(
            Message::BindingAck {
                status: 0,
                flags: BaFlags::default(),
                sequence: 0x1234,
                lifetime_units: 105,
            },
            vec![
                MobilityOption::BindingRefreshAdvice { interval_units: 15 },
                MobilityOption::BindingAuthData(auth),
            ],
        );
        let want: Vec<u8> = vec![
            0x3b, 0x03, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, //
            0x12, 0x34, 0x00, 0x69, 0x02, 0x02, 0x00, 0x0f, //
            0x01, 0x00, 0x05, 0x0c, 0xa0, 0xa1, 0xa2, 0xa3, //
            0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
        ];
        assert_eq!(zero_checksum(r.to_bytes(&src(), &dst())), want);
        assert_eq!(MhRepr::parse(&want).unwrap(), r);
        let (covered, got) = auth_data_region(&want).unwrap();
        assert_eq!(covered, want[..20]);
        assert_eq!(got, auth);
    }

    const UMIP_BU: &str = "3b0305000000123480000069040400010002050cf3e88882171e7571638b3a9e";
    const UMIP_AUTH: [u8; 12] = [
        0xf3, 0xe8, 0x88, 0x82, 0x17, 0x1e, 0x75, 0x71, 0x63, 0x8b, 0x3a, 0x9e,
    ];

    fn umip_repr() -> MhRepr {
        repr(
            Message::BindingUpdate {
                sequence: 0x1234,
                flags: BuFlags {
                    a: true,
                    ..BuFlags::default()
                },
                lifetime_units: 105,
            },
            vec![
                MobilityOption::NonceIndices {
                    home: 1,
                    care_of: 2,
                },
                MobilityOption::BindingAuthData(UMIP_AUTH),
            ],
        )
    }

    #[test]
    fn umip_binding_update() {
        let bytes = hex(UMIP_BU);
        assert_eq!(MhRepr::parse(&bytes).unwrap(), umip_repr());
        assert_eq!(zero_checksum(umip_repr().to_bytes(&src(), &dst())), bytes);
        let (covered, auth) = auth_data_region(&bytes).unwrap();
        assert_eq!(covered, bytes[..20]);
        assert_eq!(auth, UMIP_AUTH);
        // The region is the same with a checksum in place: it is zeroed for the HMAC.
        let with_checksum = umip_repr().to_bytes(&src(), &dst());
        assert_ne!(with_checksum[4..6], [0, 0]);
        assert_eq!(auth_data_region(&with_checksum).unwrap(), (covered, auth));
    }

    #[test]
    fn emit_with_authenticator_fills_then_checksums() {
        let mut unauth = umip_repr();
        unauth.options[1] = MobilityOption::BindingAuthData([0xee; 12]);
        let mut buf = vec![0u8; unauth.buffer_len()];
        let mut seen = Vec::new();
        let at = unauth.emit_with_authenticator(&mut buf, &src(), &dst(), |covered| {
            seen = covered.to_vec();
            UMIP_AUTH
        });
        assert_eq!(at, Some(20));
        assert_eq!(seen, hex(UMIP_BU)[..20]);
        assert!(checksum_ok(&buf, &src(), &dst()));
        assert_eq!(buf, umip_repr().to_bytes(&src(), &dst()));

        // No BAD option: the closure is not called, and the message is a plain emit.
        let plain = repr(Message::BindingRefreshRequest, vec![]);
        let mut buf = vec![0u8; 8];
        let at = plain.emit_with_authenticator(&mut buf, &src(), &dst(), |_| {
            panic!("no authenticator to compute")
        });
        assert_eq!(at, None);
        assert_eq!(buf, plain.to_bytes(&src(), &dst()));
        assert_eq!(auth_data_region(&buf), None);
    }

    fn expect_err(data: &[u8], kind: ErrorKind, action: ReceiverAction) {
        let e = MhRepr::parse(data).unwrap_err();
        assert_eq!((e.kind, e.action), (kind, action), "{data:02x?}");
    }

    fn pp(pointer: u32) -> ReceiverAction {
        ReceiverAction::ParameterProblem { code: 0, pointer }
    }

    #[test]
    fn bad_payload_proto_is_parameter_problem_at_0() {
        let mut b = hex(UMIP_BU);
        b[0] = 6;
        expect_err(&b, ErrorKind::BadPayloadProto, pp(0));
        // Also for an unknown MH type: the Payload Proto check comes first.
        expect_err(
            &[6, 0, 99, 0, 0, 0, 0, 0],
            ErrorKind::BadPayloadProto,
            pp(0),
        );
    }

    #[test]
    fn header_len_below_minimum_is_parameter_problem_at_1() {
        for (t, short_hl) in [(1u8, 0u8), (2, 0), (3, 1), (4, 1), (5, 0), (6, 0), (7, 1)] {
            let mut b = vec![0u8; (usize::from(short_hl) + 1) * 8];
            b[0] = 59;
            b[1] = short_hl;
            b[2] = t;
            expect_err(&b, ErrorKind::BadHeaderLength, pp(1));
            // One more unit is enough (the fixed part then fits; options are padding).
            let mut ok = vec![0u8; (usize::from(short_hl) + 2) * 8];
            ok[..3].copy_from_slice(&[59, short_hl + 1, t]);
            assert!(MhRepr::parse(&ok).is_ok(), "type {t}");
        }
        // Binding Refresh Request's minimum is the 8-byte unit itself.
        assert!(MhRepr::parse(&[59, 0, 0, 0, 0, 0, 0, 0]).is_ok());
    }

    #[test]
    fn rebased_pointer_counts_from_the_ipv6_header() {
        let e = MhRepr::parse(&[59, 0, 5, 0, 0, 0, 0, 0])
            .unwrap_err()
            .rebase(40);
        assert_eq!(e.action, pp(41));
    }

    #[test]
    fn truncation_is_a_drop() {
        let b = hex(UMIP_BU);
        expect_err(&b[..31], ErrorKind::Truncated, ReceiverAction::Drop);
        expect_err(&[], ErrorKind::Truncated, ReceiverAction::Drop);
        expect_err(&[59], ErrorKind::Truncated, ReceiverAction::Drop);
        // Truncation wins over a bad Payload Proto: the header is not all there.
        expect_err(&[6, 3, 5, 0], ErrorKind::Truncated, ReceiverAction::Drop);
    }

    #[test]
    fn trailing_bytes_beyond_header_len_are_ignored() {
        let mut b = hex(UMIP_BU);
        b.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(MhRepr::parse(&b).unwrap(), umip_repr());
        let (covered, _) = auth_data_region(&b).unwrap();
        assert_eq!(covered.len(), 20);
        let mut c = umip_repr().to_bytes(&src(), &dst());
        c.push(0xff);
        assert!(checksum_ok(&c, &src(), &dst()));
        assert!(MhRepr::parse_checked(&c, &src(), &dst()).is_ok());
    }

    #[test]
    fn bad_checksum_is_a_silent_drop() {
        let mut b = umip_repr().to_bytes(&src(), &dst());
        assert!(MhRepr::parse_checked(&b, &src(), &dst()).is_ok());
        // The wrong pseudo-header (e.g. care-of instead of home address) fails too.
        let e = MhRepr::parse_checked(&b, &a("2001:db8::99"), &dst()).unwrap_err();
        assert_eq!(
            (e.kind, e.action),
            (ErrorKind::BadChecksum, ReceiverAction::Drop)
        );
        b[10] ^= 0x40;
        assert!(!checksum_ok(&b, &src(), &dst()));
        let e = MhRepr::parse_checked(&b, &src(), &dst()).unwrap_err();
        assert_eq!(
            (e.kind, e.action),
            (ErrorKind::BadChecksum, ReceiverAction::Drop)
        );
        // The checksum is checked before Payload Proto: no ICMP error for a corrupt packet.
        let mut b = umip_repr().to_bytes(&src(), &dst());
        b[0] = 17;
        let e = MhRepr::parse_checked(&b, &src(), &dst()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadChecksum);
        // A truncated header is dropped as such, never checksummed.
        let e = MhRepr::parse_checked(&b[..20], &src(), &dst()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert!(!checksum_ok(&b[..20], &src(), &dst()));
    }

    #[test]
    fn unknown_mh_type_parses_and_asks_for_binding_error_2() {
        let b = [59, 1, 42, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let r = MhRepr::parse(&b).unwrap();
        assert_eq!(
            r,
            repr(
                Message::Unknown {
                    mh_type: 42,
                    data: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
                },
                vec![]
            )
        );
        let e = r.receiver_error().unwrap();
        assert_eq!(e.kind, ErrorKind::UnknownMhType);
        assert_eq!(e.action, ReceiverAction::BindingError { status: 2 });
        assert_eq!(umip_repr().receiver_error(), None);
        assert_eq!(r.to_string(), "unknown type=42 len=10");
    }

    #[test]
    fn option_errors_are_drops() {
        let drop = ReceiverAction::Drop;
        // BAD followed by another option (the header grows by 8 to make room).
        let mut b = hex(UMIP_BU);
        b[1] = 4;
        b.extend_from_slice(&[4, 4, 0, 1, 0, 2, 0, 0]);
        expect_err(&b, ErrorKind::AuthDataNotLast, drop);
        // Nonce Indices with length 3.
        let mut b = hex(UMIP_BU);
        b[13] = 3;
        expect_err(&b, ErrorKind::BadOptionLength, drop);
        // BAD with length 13 overruns the header.
        let mut b = hex(UMIP_BU);
        b[19] = 13;
        expect_err(&b, ErrorKind::OptionOverrun, drop);
        // Nonce Indices moved to offset 13 behind a Pad1: misaligned.
        let mut b = hex(UMIP_BU);
        b[12..19].copy_from_slice(&[0, 4, 4, 0, 1, 0, 2]);
        expect_err(&b, ErrorKind::BadOptionAlignment, drop);
    }

    #[test]
    fn names() {
        assert_eq!(mh_type_name(6), "binding-acknowledgement");
        assert_eq!(mh_type_name(0), "binding-refresh-request");
        assert_eq!(mh_type_name(99), "unknown");
        assert_eq!(ba_status_name(0), Some("binding-update-accepted"));
        assert_eq!(ba_status_name(135), Some("sequence-number-out-of-window"));
        assert_eq!(
            ba_status_name(140),
            Some("mobile-router-operation-not-permitted")
        );
        assert_eq!(ba_status_name(143), Some("forwarding-setup-failed"));
        assert_eq!(ba_status_name(127), None);
        for s in (0..=1).chain(128..=143) {
            assert!(ba_status_name(s).is_some(), "{s}");
        }
        assert_eq!(be_status_name(2), Some("unrecognized-mh-type-value"));
        assert_eq!(be_status_name(3), None);
    }

    #[test]
    fn display_is_one_line() {
        assert_eq!(
            umip_repr().to_string(),
            "binding-update seq=4660 flags=A lifetime=105 (420s) \
             [nonce-indices home=1 care-of=2; binding-authorization-data f3e88882171e7571638b3a9e]"
        );
        let ba = repr(
            Message::BindingAck {
                status: 133,
                flags: BaFlags::default(),
                sequence: 9,
                lifetime_units: 0,
            },
            vec![],
        );
        assert_eq!(
            ba.to_string(),
            "binding-acknowledgement status=133 (not-home-agent-for-this-mobile-node) seq=9 \
             flags=- lifetime=0 (0s)"
        );
        for m in all_messages() {
            assert!(!m.to_string().contains('\n'));
        }
    }

    #[test]
    fn flags_bits_round_trip_and_reserved_bits_are_ignored() {
        for w in [
            0u16, 0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0400, 0x0200, 0xfe00,
        ] {
            assert_eq!(BuFlags::from_bits(w).bits(), w);
        }
        assert_eq!(BuFlags::from_bits(0x01ff), BuFlags::default());
        for b in [0u8, 0x80, 0x40, 0x20, 0xe0] {
            assert_eq!(BaFlags::from_bits(b).bits(), b);
        }
        assert_eq!(BaFlags::from_bits(0x1f), BaFlags::default());
    }

    #[test]
    fn unencodable_reprs_are_recognised() {
        let bad_order = repr(
            Message::BindingRefreshRequest,
            vec![
                MobilityOption::BindingAuthData([0; 12]),
                MobilityOption::NonceIndices {
                    home: 1,
                    care_of: 1,
                },
            ],
        );
        assert!(!bad_order.is_encodable());
        let known_as_unknown = repr(
            Message::Unknown {
                mh_type: 5,
                data: vec![],
            },
            vec![],
        );
        assert!(!known_as_unknown.is_encodable());
        let too_big = repr(
            Message::BindingRefreshRequest,
            (0..9)
                .map(|i| MobilityOption::Unknown {
                    opt_type: 100 + i,
                    data: vec![0; 255],
                })
                .collect(),
        );
        assert!(too_big.buffer_len() > MAX_LEN);
        assert!(!too_big.is_encodable());
        for m in all_messages() {
            assert!(m.is_encodable(), "{m}");
        }
    }

    /// Parse never panics, and whatever parses re-emits to something that parses to the
    /// same repr (padding is normalised, content is not).
    fn check_no_panic(data: &[u8]) -> bool {
        let src = src();
        let dst = dst();
        let _ = MhRepr::parse_checked(data, &src, &dst);
        let _ = checksum_ok(data, &src, &dst);
        let _ = auth_data_region(data);
        if let Ok(r) = MhRepr::parse(data) {
            let _ = r.to_string();
            assert!(r.is_encodable(), "{data:02x?}");
            let again = r.to_bytes(&src, &dst);
            assert_eq!(MhRepr::parse(&again).unwrap(), r, "{data:02x?}");
            return true;
        }
        false
    }

    #[test]
    fn prefixes_of_valid_messages_never_panic() {
        let mut samples: Vec<Vec<u8>> = all_messages()
            .iter()
            .map(|m| m.to_bytes(&src(), &dst()))
            .collect();
        samples.push(hex(UMIP_BU));
        for s in &samples {
            for n in 0..=64.min(s.len()) {
                let _ = check_no_panic(&s[..n]);
            }
        }
    }

    use crate::testutil::XorShift;

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..5000 {
            let len = (rng.next() % 80) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias toward headers that get past the first checks, so option parsing is
            // exercised and not just the Payload Proto test.
            if len >= 2 && rng.next() % 4 != 0 {
                v[0] = 59;
                v[1] = ((len / 8).saturating_sub(1)) as u8;
                if len > 2 && rng.next() % 2 == 0 {
                    v[2] %= 9;
                }
            }
            parsed += usize::from(check_no_panic(&v));
        }
        // The bias above is meant to reach the option parser; make sure it does.
        assert!(parsed > 100, "only {parsed} inputs parsed");
    }

    #[test]
    fn mutated_valid_messages_never_panic() {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let samples: Vec<Vec<u8>> = all_messages()
            .iter()
            .map(|m| m.to_bytes(&src(), &dst()))
            .collect();
        for i in 0..5000 {
            let mut v = samples[i % samples.len()].clone();
            for _ in 0..=(rng.next() % 3) {
                let at = (rng.next() as usize) % v.len();
                v[at] = rng.next() as u8;
            }
            let _ = check_no_panic(&v);
        }
    }
}
