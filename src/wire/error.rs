//! Typed parse errors that carry the receiver's duty (RFC 6275 §9.2, §6.1, §6.3, §6.4).

use std::fmt;

/// What a receiver must do about a malformed message, per the RFC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverAction {
    /// Discard the packet without telling anyone.
    Drop,
    /// Discard and send ICMPv6 Parameter Problem with this code; `pointer` is the byte
    /// offset of the offending field counted from the start of the buffer that was parsed.
    /// Packet-level callers rebase it with [`Error::rebase`] so that it counts from the
    /// start of the IPv6 header, as the ICMPv6 pointer must.
    ParameterProblem { code: u8, pointer: u32 },
    /// Send a Binding Error with this status (1: unknown binding for HAO, 2: unrecognised
    /// MH type).
    BindingError { status: u8 },
}

/// What was wrong with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The buffer ended before the structure did.
    Truncated,
    /// Payload Proto of a Mobility Header is not 59.
    BadPayloadProto,
    /// Header Len is shorter than the message type's minimum, or longer than the buffer.
    BadHeaderLength,
    /// The Mobility Header checksum does not verify.
    BadChecksum,
    /// The MH type is not one this implementation knows.
    UnknownMhType,
    /// A mobility option runs past the end of the message.
    OptionOverrun,
    /// A mobility option has a length its type does not allow.
    BadOptionLength,
    /// A mobility option sits at an offset its alignment rule forbids (RFC 6275 §6.2).
    BadOptionAlignment,
    /// The Binding Authorization Data option is not the last option.
    AuthDataNotLast,
    /// A field holds a value the RFC forbids (reserved type, bad segment count, …).
    BadField,
    /// A Routing header of a type other than 2 where only type 2 is allowed.
    BadRoutingType,
    /// An ICMPv6 message whose code or length is not allowed for its type.
    BadIcmpv6,
    /// Not an IPv6 packet.
    NotIpv6,
    /// An IPv6 option (RFC 8200 §4.2) whose type this node does not recognise and whose
    /// two high-order bits say not to skip it.
    UnrecognizedOption,
}

impl ErrorKind {
    /// A stable kebab-case name, used in logs and in `mip6ctl decode --json`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Truncated => "truncated",
            ErrorKind::BadPayloadProto => "bad-payload-proto",
            ErrorKind::BadHeaderLength => "bad-header-length",
            ErrorKind::BadChecksum => "bad-checksum",
            ErrorKind::UnknownMhType => "unknown-mh-type",
            ErrorKind::OptionOverrun => "option-overrun",
            ErrorKind::BadOptionLength => "bad-option-length",
            ErrorKind::BadOptionAlignment => "bad-option-alignment",
            ErrorKind::AuthDataNotLast => "auth-data-not-last",
            ErrorKind::BadField => "bad-field",
            ErrorKind::BadRoutingType => "bad-routing-type",
            ErrorKind::BadIcmpv6 => "bad-icmpv6",
            ErrorKind::NotIpv6 => "not-ipv6",
            ErrorKind::UnrecognizedOption => "unrecognized-option",
        }
    }
}

/// A parse error: what was wrong, and what the receiver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub action: ReceiverAction,
}

impl Error {
    pub const fn drop(kind: ErrorKind) -> Error {
        Error {
            kind,
            action: ReceiverAction::Drop,
        }
    }

    /// ICMPv6 Parameter Problem, code 0 (erroneous header field), at `pointer`.
    pub const fn param_problem(kind: ErrorKind, pointer: u32) -> Error {
        Error {
            kind,
            action: ReceiverAction::ParameterProblem { code: 0, pointer },
        }
    }

    pub const fn binding_error(kind: ErrorKind, status: u8) -> Error {
        Error {
            kind,
            action: ReceiverAction::BindingError { status },
        }
    }

    /// Shift a Parameter Problem pointer by `offset`, the position of the parsed buffer
    /// inside the enclosing packet.
    pub fn rebase(mut self, offset: usize) -> Error {
        if let ReceiverAction::ParameterProblem { code, pointer } = self.action {
            self.action = ReceiverAction::ParameterProblem {
                code,
                pointer: pointer.saturating_add(offset as u32),
            };
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        match self.action {
            ReceiverAction::Drop => Ok(()),
            ReceiverAction::ParameterProblem { code, pointer } => {
                write!(
                    f,
                    " (send ICMPv6 Parameter Problem code {code}, pointer {pointer})"
                )
            }
            ReceiverAction::BindingError { status } => {
                write!(f, " (send Binding Error status {status})")
            }
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_moves_only_parameter_problem_pointers() {
        let e = Error::param_problem(ErrorKind::BadPayloadProto, 0).rebase(40);
        assert_eq!(
            e.action,
            ReceiverAction::ParameterProblem {
                code: 0,
                pointer: 40
            }
        );
        let d = Error::drop(ErrorKind::BadChecksum).rebase(40);
        assert_eq!(d.action, ReceiverAction::Drop);
    }

    #[test]
    fn display_names_the_duty() {
        let e = Error::binding_error(ErrorKind::UnknownMhType, 2);
        assert_eq!(
            e.to_string(),
            "unknown-mh-type (send Binding Error status 2)"
        );
    }
}
