//! Mobility options (RFC 6275 §6.2; Mobile Network Prefix from RFC 3963 §4.3).
//!
//! Options follow the fixed part of a Mobility Header message as type-length-value
//! records:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Option Type  | Option Length |   Option Data...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Option Length counts the data only, not the type and length bytes. Pad1 is the one
//! exception: a single zero byte with no length. Each known option has an alignment
//! rule `xn+y`: its Type byte must sit at an offset, counted from the first byte of the
//! Mobility Header, that leaves `y` when divided by `x` — so alignment can only be judged
//! with the whole header in hand, which is why [`parse_options`] takes the header and
//! a start offset rather than a slice of options.
//!
//! Pad1 and PadN never appear in [`MobilityOption`]: the parser consumes them and the
//! emitter generates exactly the padding the alignment rules need.

use std::fmt;
use std::net::Ipv6Addr;

use nom::bytes::complete::take;
use nom::number::complete::{be_u128, be_u16, be_u8};
use nom::sequence::tuple;
use nom::IResult;

use super::error::{Error, ErrorKind, Result};

/// Mobility option type numbers (IANA "Mobility Options" registry).
pub mod opt_type {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const BINDING_REFRESH_ADVICE: u8 = 2;
    pub const ALTERNATE_CARE_OF_ADDRESS: u8 = 3;
    pub const NONCE_INDICES: u8 = 4;
    pub const BINDING_AUTHORIZATION_DATA: u8 = 5;
    pub const MOBILE_NETWORK_PREFIX: u8 = 6;
}

/// Length of the Binding Authorization Data authenticator: HMAC-SHA1 truncated to 96 bits
/// (RFC 6275 §5.2.6), the only algorithm the RFC defines.
pub const AUTHENTICATOR_LEN: usize = 12;

/// A mobility option other than padding.
///
/// ```text
/// Binding Refresh Advice (type 2, length 2, alignment 2n):
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 2    |   Length = 2  |       Refresh Interval        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Alternate Care-of Address (type 3, length 16, alignment 8n+6):
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 3    |  Length = 16  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Alternate Care-of Address (128 bits)         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Nonce Indices (type 4, length 4, alignment 2n):
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 4    |   Length = 4  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       Home Nonce Index        |     Care-of Nonce Index       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Binding Authorization Data (type 5, length 12, alignment 8n+2, last option):
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 5    |  Length = 12  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Authenticator (96 bits)                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Mobile Network Prefix (type 6, length 18, alignment 8n+4, RFC 3963 §4.3):
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 6    |  Length = 18  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Reserved    | Prefix Length |   Mobile Network Prefix ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MobilityOption {
    /// Refresh interval in units of 4 seconds (RFC 6275 §6.2.4).
    BindingRefreshAdvice {
        interval_units: u16,
    },
    AlternateCareOf(Ipv6Addr),
    NonceIndices {
        home: u16,
        care_of: u16,
    },
    /// The authenticator. It covers every byte of the header before it, so it must be the
    /// last option; see [`crate::wire::mh::auth_data_region`].
    BindingAuthData([u8; AUTHENTICATOR_LEN]),
    /// `prefix_len` is kept as received, even above 128: judging it is the home agent's
    /// job (BA status 141, Invalid Prefix), not the parser's.
    MobileNetworkPrefix {
        prefix_len: u8,
        prefix: Ipv6Addr,
    },
    /// An option this implementation does not know. RFC 6275 §6.2.1 says receivers skip
    /// it; it is kept so that logs and `mip6ctl decode` can report it. `data` is at most
    /// 255 bytes when parsed; a longer one cannot be emitted.
    Unknown {
        opt_type: u8,
        data: Vec<u8>,
    },
}

/// The alignment rule `(x, y)` — Type byte at offset `x*n + y` from the start of the
/// Mobility Header — for option types that have one.
pub fn alignment(opt_type: u8) -> Option<(usize, usize)> {
    match opt_type {
        opt_type::BINDING_REFRESH_ADVICE | opt_type::NONCE_INDICES => Some((2, 0)),
        opt_type::ALTERNATE_CARE_OF_ADDRESS => Some((8, 6)),
        opt_type::BINDING_AUTHORIZATION_DATA => Some((8, 2)),
        opt_type::MOBILE_NETWORK_PREFIX => Some((8, 4)),
        _ => None,
    }
}

/// The Option Length a known option type must carry.
pub fn required_len(opt_type: u8) -> Option<usize> {
    match opt_type {
        opt_type::BINDING_REFRESH_ADVICE => Some(2),
        opt_type::ALTERNATE_CARE_OF_ADDRESS => Some(16),
        opt_type::NONCE_INDICES => Some(4),
        opt_type::BINDING_AUTHORIZATION_DATA => Some(AUTHENTICATOR_LEN),
        opt_type::MOBILE_NETWORK_PREFIX => Some(18),
        _ => None,
    }
}

/// A stable kebab-case name for logs and JSON.
pub fn option_type_name(t: u8) -> &'static str {
    match t {
        opt_type::PAD1 => "pad1",
        opt_type::PADN => "padn",
        opt_type::BINDING_REFRESH_ADVICE => "binding-refresh-advice",
        opt_type::ALTERNATE_CARE_OF_ADDRESS => "alternate-care-of-address",
        opt_type::NONCE_INDICES => "nonce-indices",
        opt_type::BINDING_AUTHORIZATION_DATA => "binding-authorization-data",
        opt_type::MOBILE_NETWORK_PREFIX => "mobile-network-prefix",
        _ => "unknown",
    }
}

type NomResult<'a, T> = IResult<&'a [u8], T>;

impl MobilityOption {
    pub fn opt_type(&self) -> u8 {
        match self {
            MobilityOption::BindingRefreshAdvice { .. } => opt_type::BINDING_REFRESH_ADVICE,
            MobilityOption::AlternateCareOf(_) => opt_type::ALTERNATE_CARE_OF_ADDRESS,
            MobilityOption::NonceIndices { .. } => opt_type::NONCE_INDICES,
            MobilityOption::BindingAuthData(_) => opt_type::BINDING_AUTHORIZATION_DATA,
            MobilityOption::MobileNetworkPrefix { .. } => opt_type::MOBILE_NETWORK_PREFIX,
            MobilityOption::Unknown { opt_type, .. } => *opt_type,
        }
    }

    /// The Option Length field: data bytes only.
    pub fn data_len(&self) -> usize {
        match self {
            MobilityOption::Unknown { data, .. } => data.len(),
            other => required_len(other.opt_type()).unwrap_or(0),
        }
    }

    /// Bytes on the wire, type and length included, padding excluded.
    pub fn buffer_len(&self) -> usize {
        2 + self.data_len()
    }

    /// Whether [`MobilityOption::emit`] can write this option so that it parses back as
    /// itself: an `Unknown` must not reuse a padding or known type number and must fit
    /// the one-byte length.
    pub fn is_encodable(&self) -> bool {
        match self {
            MobilityOption::Unknown { opt_type, data } => {
                data.len() <= usize::from(u8::MAX) && *opt_type > opt_type::MOBILE_NETWORK_PREFIX
            }
            _ => true,
        }
    }

    /// Parse the data of an option whose type and length bytes have been read.
    pub fn parse_data(t: u8, data: &[u8]) -> Result<MobilityOption> {
        if let Some(want) = required_len(t) {
            if data.len() != want {
                return Err(Error::drop(ErrorKind::BadOptionLength));
            }
        }
        // The length was checked above, so a nom failure here can only mean a bug; it is
        // still mapped to an error rather than a panic.
        let bad_len = |_| Error::drop(ErrorKind::BadOptionLength);
        let opt = match t {
            opt_type::BINDING_REFRESH_ADVICE => {
                let (_, interval_units) =
                    be_u16::<_, nom::error::Error<_>>(data).map_err(bad_len)?;
                MobilityOption::BindingRefreshAdvice { interval_units }
            }
            opt_type::ALTERNATE_CARE_OF_ADDRESS => {
                let (_, a) = be_u128::<_, nom::error::Error<_>>(data).map_err(bad_len)?;
                MobilityOption::AlternateCareOf(Ipv6Addr::from(a))
            }
            opt_type::NONCE_INDICES => {
                let (_, (home, care_of)) = nonce_indices(data).map_err(bad_len)?;
                MobilityOption::NonceIndices { home, care_of }
            }
            opt_type::BINDING_AUTHORIZATION_DATA => {
                let auth = <[u8; AUTHENTICATOR_LEN]>::try_from(data)
                    .map_err(|_| Error::drop(ErrorKind::BadOptionLength))?;
                MobilityOption::BindingAuthData(auth)
            }
            opt_type::MOBILE_NETWORK_PREFIX => {
                let (_, (_reserved, prefix_len, p)) = mnp(data).map_err(bad_len)?;
                MobilityOption::MobileNetworkPrefix {
                    prefix_len,
                    prefix: Ipv6Addr::from(p),
                }
            }
            _ => MobilityOption::Unknown {
                opt_type: t,
                data: data.to_vec(),
            },
        };
        Ok(opt)
    }

    /// Write type, length and data into the front of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`MobilityOption::buffer_len`] or the option is not
    /// [encodable](MobilityOption::is_encodable): both are caller bugs, and sending a
    /// silently truncated option would be worse than stopping.
    pub fn emit(&self, buf: &mut [u8]) {
        assert!(
            self.is_encodable(),
            "mobility option cannot be encoded: {self:?}"
        );
        let len = self.data_len();
        let buf = &mut buf[..2 + len];
        buf[0] = self.opt_type();
        buf[1] = len as u8;
        let data = &mut buf[2..];
        match self {
            MobilityOption::BindingRefreshAdvice { interval_units } => {
                data.copy_from_slice(&interval_units.to_be_bytes());
            }
            MobilityOption::AlternateCareOf(a) => data.copy_from_slice(&a.octets()),
            MobilityOption::NonceIndices { home, care_of } => {
                data[..2].copy_from_slice(&home.to_be_bytes());
                data[2..].copy_from_slice(&care_of.to_be_bytes());
            }
            MobilityOption::BindingAuthData(auth) => data.copy_from_slice(auth),
            MobilityOption::MobileNetworkPrefix { prefix_len, prefix } => {
                data[0] = 0;
                data[1] = *prefix_len;
                data[2..].copy_from_slice(&prefix.octets());
            }
            MobilityOption::Unknown { data: d, .. } => data.copy_from_slice(d),
        }
    }
}

fn nonce_indices(data: &[u8]) -> NomResult<'_, (u16, u16)> {
    tuple((be_u16, be_u16))(data)
}

fn mnp(data: &[u8]) -> NomResult<'_, (u8, u8, u128)> {
    tuple((be_u8, be_u8, be_u128))(data)
}

impl fmt::Display for MobilityOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(option_type_name(self.opt_type()))?;
        match self {
            MobilityOption::BindingRefreshAdvice { interval_units } => write!(
                f,
                " interval={interval_units} ({}s)",
                u32::from(*interval_units) * 4
            ),
            MobilityOption::AlternateCareOf(a) => write!(f, " {a}"),
            MobilityOption::NonceIndices { home, care_of } => {
                write!(f, " home={home} care-of={care_of}")
            }
            MobilityOption::BindingAuthData(auth) => {
                f.write_str(" ")?;
                write_hex(f, auth)
            }
            MobilityOption::MobileNetworkPrefix { prefix_len, prefix } => {
                write!(f, " {prefix}/{prefix_len}")
            }
            MobilityOption::Unknown { opt_type, data } => {
                write!(f, " type={opt_type} len={}", data.len())
            }
        }
    }
}

pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Padding bytes needed before an option of type `t` placed at offset `off`.
fn pad_before(off: usize, t: u8) -> usize {
    match alignment(t) {
        Some((x, y)) => (x + y - off % x) % x,
        None => 0,
    }
}

/// Write `n` bytes of padding: Pad1 for one byte, one PadN otherwise. A single PadN is
/// enough because no gap this module creates exceeds 7 bytes.
fn emit_padding(buf: &mut [u8], n: usize) {
    match n {
        0 => {}
        1 => buf[0] = opt_type::PAD1,
        _ => {
            buf[0] = opt_type::PADN;
            buf[1] = (n - 2) as u8;
            buf[2..n].fill(0);
        }
    }
}

/// Where the options end when laid out from `start`: after each option's alignment
/// padding and the final padding to a multiple of 8 octets (RFC 6275 §6.1.1).
pub fn options_end(start: usize, options: &[MobilityOption]) -> usize {
    let end = options.iter().fold(start, |off, o| {
        off + pad_before(off, o.opt_type()) + o.buffer_len()
    });
    end.next_multiple_of(8)
}

/// Lay out `options` in `mh` (the whole Mobility Header buffer) from offset `start`,
/// padding for alignment and to a multiple of 8. Returns the end offset and, if one of the
/// options is Binding Authorization Data, the offset of its authenticator bytes.
///
/// # Panics
/// If `mh` is shorter than [`options_end`] or an option is not encodable.
pub fn emit_options(
    mh: &mut [u8],
    start: usize,
    options: &[MobilityOption],
) -> (usize, Option<usize>) {
    let mut off = start;
    let mut auth = None;
    for o in options {
        let pad = pad_before(off, o.opt_type());
        emit_padding(&mut mh[off..], pad);
        off += pad;
        o.emit(&mut mh[off..]);
        if matches!(o, MobilityOption::BindingAuthData(_)) {
            auth = Some(off + 2);
        }
        off += o.buffer_len();
    }
    let end = off.next_multiple_of(8);
    emit_padding(&mut mh[off..], end - off);
    (end, auth)
}

/// Options parsed from a Mobility Header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedOptions {
    pub options: Vec<MobilityOption>,
    /// Offset in the header of the Binding Authorization Data authenticator, if present.
    pub auth_offset: Option<usize>,
}

/// Parse the options of the Mobility Header `mh` (exactly Header Len bytes) that start at
/// `start`.
///
/// Every problem here is a silent drop (RFC 6275 §9.2 leaves no other duty for options):
/// an option running past the header ([`ErrorKind::OptionOverrun`]), a known option with
/// the wrong length ([`ErrorKind::BadOptionLength`]), a known option off its alignment
/// ([`ErrorKind::BadOptionAlignment`]), or anything at all — padding included — after
/// Binding Authorization Data ([`ErrorKind::AuthDataNotLast`]).
///
/// Alignment is enforced strictly. RFC 6275 §6.2 states the rules as requirements on the
/// sender and a conforming sender never needs to break them, and the authenticator offset
/// is only well defined if Binding Authorization Data sits where §6.2.7 says. A peer that
/// misaligns options is therefore treated as sending garbage rather than guessed at.
///
/// Anything after the authenticator would not be covered by it, so nothing may follow
/// (a correctly placed authenticator already ends on an 8-octet boundary). PadN contents
/// are not checked. Options are not filtered by message type; which options a message may
/// carry is for the protocol layer to decide (RFC 6275 §6.2.1 lets receivers ignore the
/// rest).
///
/// Allocation is bounded by the header: at most 2048 bytes, so at most 1024 options whose
/// data together is smaller than the header.
pub fn parse_options(mh: &[u8], start: usize) -> Result<ParsedOptions> {
    let overrun = |_: nom::Err<nom::error::Error<&[u8]>>| Error::drop(ErrorKind::OptionOverrun);
    let mut options = Vec::new();
    let mut auth_offset = None;
    let mut rest = mh.get(start..).ok_or(Error::drop(ErrorKind::Truncated))?;
    while !rest.is_empty() {
        if auth_offset.is_some() {
            return Err(Error::drop(ErrorKind::AuthDataNotLast));
        }
        let off = mh.len() - rest.len();
        let (r, t) = be_u8(rest).map_err(overrun)?;
        if t == opt_type::PAD1 {
            rest = r;
            continue;
        }
        let (r, len) = be_u8(r).map_err(overrun)?;
        let (r, data) = take(len)(r).map_err(overrun)?;
        rest = r;
        if t == opt_type::PADN {
            continue;
        }
        if let Some((x, y)) = alignment(t) {
            if off % x != y {
                return Err(Error::drop(ErrorKind::BadOptionAlignment));
            }
        }
        let opt = MobilityOption::parse_data(t, data)?;
        if t == opt_type::BINDING_AUTHORIZATION_DATA {
            auth_offset = Some(off + 2);
        }
        options.push(opt);
    }
    Ok(ParsedOptions {
        options,
        auth_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ReceiverAction;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn all_options() -> Vec<MobilityOption> {
        vec![
            MobilityOption::BindingRefreshAdvice {
                interval_units: 0x1234,
            },
            MobilityOption::AlternateCareOf(a("2001:db8::5")),
            MobilityOption::NonceIndices {
                home: 1,
                care_of: 0xfffe,
            },
            MobilityOption::MobileNetworkPrefix {
                prefix_len: 48,
                prefix: a("2001:db8:1::"),
            },
            MobilityOption::Unknown {
                opt_type: 200,
                data: vec![1, 2, 3],
            },
            MobilityOption::BindingAuthData([0xab; 12]),
        ]
    }

    /// Every option alone, at every start offset 0..8, survives emit→parse and honours
    /// its alignment.
    #[test]
    fn each_option_round_trips_from_every_offset() {
        for o in all_options() {
            for start in 0..8 {
                let opts = vec![o.clone()];
                let end = options_end(start, &opts);
                assert_eq!(end % 8, 0);
                let mut mh = vec![0xee; end];
                let (e, auth) = emit_options(&mut mh, start, &opts);
                assert_eq!(e, end);
                let parsed = parse_options(&mh, start).unwrap();
                assert_eq!(parsed.options, opts, "{o} at {start}");
                assert_eq!(parsed.auth_offset, auth);
                let at = first_option_offset(&mh, start);
                if let Some((x, y)) = alignment(o.opt_type()) {
                    assert_eq!(at % x, y, "{o} at {start}");
                } else {
                    assert_eq!(at, start, "no padding before {o}");
                }
            }
        }
    }

    /// Offset of the first option that is not padding.
    fn first_option_offset(mh: &[u8], mut off: usize) -> usize {
        loop {
            match mh[off] {
                opt_type::PAD1 => off += 1,
                opt_type::PADN => off += 2 + usize::from(mh[off + 1]),
                _ => return off,
            }
        }
    }

    #[test]
    fn all_options_together_round_trip() {
        let opts = all_options();
        let end = options_end(12, &opts);
        let mut mh = vec![0; end];
        emit_options(&mut mh, 12, &opts);
        assert_eq!(parse_options(&mh, 12).unwrap().options, opts);
    }

    #[test]
    fn exact_bytes_of_each_option() {
        let mut b = [0u8; 20];
        MobilityOption::BindingRefreshAdvice { interval_units: 15 }.emit(&mut b);
        assert_eq!(&b[..4], &[2, 2, 0, 15]);
        MobilityOption::NonceIndices {
            home: 1,
            care_of: 2,
        }
        .emit(&mut b);
        assert_eq!(&b[..6], &[4, 4, 0, 1, 0, 2]);
        MobilityOption::MobileNetworkPrefix {
            prefix_len: 64,
            prefix: a("2001:db8:1:2::"),
        }
        .emit(&mut b);
        assert_eq!(
            b,
            [6, 18, 0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn padding_is_pad1_or_padn_and_skipped_whatever_padn_holds() {
        // Nonce Indices at 2n from start 5 needs one Pad1.
        let opts = vec![MobilityOption::NonceIndices {
            home: 7,
            care_of: 8,
        }];
        let mut mh = vec![0xee; options_end(5, &opts)];
        emit_options(&mut mh, 5, &opts);
        assert_eq!(&mh[5..], &[0, 4, 4, 0, 7, 0, 8, 1, 2, 0, 0]);
        // A PadN with junk inside still parses: contents are not checked.
        let mh = [1, 4, 0xde, 0xad, 0xbe, 0xef, 0, 0];
        assert_eq!(parse_options(&mh, 0).unwrap().options, vec![]);
    }

    fn err(mh: &[u8], start: usize) -> ErrorKind {
        let e = parse_options(mh, start).unwrap_err();
        assert_eq!(e.action, ReceiverAction::Drop);
        e.kind
    }

    #[test]
    fn overruns_are_dropped() {
        // A type byte with no room for its length.
        assert_eq!(err(&[0, 0, 0, 0, 0, 0, 0, 4], 0), ErrorKind::OptionOverrun);
        // A length past the end.
        assert_eq!(err(&[4, 4, 0, 1, 0], 0), ErrorKind::OptionOverrun);
        assert_eq!(err(&[1, 7, 0, 0, 0, 0, 0, 0], 0), ErrorKind::OptionOverrun);
    }

    #[test]
    fn wrong_lengths_are_dropped() {
        for (t, len) in [(2u8, 3u8), (3, 15), (4, 2), (5, 16), (6, 16)] {
            // Put each at an offset that satisfies its alignment so only the length is wrong.
            let (_, at) = alignment(t).unwrap();
            let mut mh = vec![0u8; at + 2 + len as usize];
            mh[at] = t;
            mh[at + 1] = len;
            assert_eq!(err(&mh, 0), ErrorKind::BadOptionLength, "type {t}");
        }
    }

    #[test]
    fn misalignment_is_dropped() {
        // Nonce Indices at offset 1.
        assert_eq!(
            err(&[0, 4, 4, 0, 1, 0, 2, 0], 0),
            ErrorKind::BadOptionAlignment
        );
        // Alternate CoA at offset 0 instead of 8n+6.
        let mut mh = vec![0u8; 24];
        mh[0] = 3;
        mh[1] = 16;
        assert_eq!(err(&mh, 0), ErrorKind::BadOptionAlignment);
    }

    #[test]
    fn auth_data_must_be_last() {
        // BAD at 2, then Pad1.
        let mut mh = vec![0u8; 17];
        mh[2] = 5;
        mh[3] = 12;
        assert_eq!(err(&mh, 2), ErrorKind::AuthDataNotLast);
        // BAD at 2, then Nonce Indices at 16.
        let mut mh = vec![0u8; 22];
        mh[2] = 5;
        mh[3] = 12;
        mh[16..22].copy_from_slice(&[4, 4, 0, 1, 0, 2]);
        assert_eq!(err(&mh, 2), ErrorKind::AuthDataNotLast);
    }

    #[test]
    fn unknown_options_are_kept() {
        let mh = [0x99, 3, 1, 2, 3, 0, 0, 0];
        assert_eq!(
            parse_options(&mh, 0).unwrap().options,
            vec![MobilityOption::Unknown {
                opt_type: 0x99,
                data: vec![1, 2, 3]
            }]
        );
    }

    #[test]
    fn unencodable_unknowns_are_refused() {
        let long = MobilityOption::Unknown {
            opt_type: 9,
            data: vec![0; 256],
        };
        assert!(!long.is_encodable());
        let padn = MobilityOption::Unknown {
            opt_type: 1,
            data: vec![],
        };
        assert!(!padn.is_encodable());
    }

    #[test]
    fn names_and_display() {
        assert_eq!(option_type_name(3), "alternate-care-of-address");
        assert_eq!(option_type_name(77), "unknown");
        assert_eq!(
            MobilityOption::NonceIndices {
                home: 1,
                care_of: 2
            }
            .to_string(),
            "nonce-indices home=1 care-of=2"
        );
        assert_eq!(
            MobilityOption::MobileNetworkPrefix {
                prefix_len: 48,
                prefix: a("2001:db8:1::")
            }
            .to_string(),
            "mobile-network-prefix 2001:db8:1::/48"
        );
        assert_eq!(
            MobilityOption::BindingAuthData([0x0f; 12]).to_string(),
            "binding-authorization-data 0f0f0f0f0f0f0f0f0f0f0f0f"
        );
    }
}
