//! Bytes ⇄ typed Mobile IPv6 messages.
//!
//! Every format has a `Repr` with `parse` (from untrusted bytes, never panics, never
//! allocates without bound), `buffer_len` and `emit`. Parsers return [`Error`], which
//! says not only what was wrong but what RFC 6275 tells a receiver to do about it.

pub mod checksum;
pub mod error;
pub mod ext_header;
pub mod icmpv6;
pub mod mh;
pub mod mh_option;
pub mod packet;

pub use error::{Error, ErrorKind, ReceiverAction};

/// IANA protocol numbers used across the wire module.
pub mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    /// "No Next Header": the only legal Payload Proto of a Mobility Header (RFC 6275 §6.1.1).
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
    /// Mobility Header (RFC 6275 §6.1).
    pub const MOBILITY: u8 = 135;
}
