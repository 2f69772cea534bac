//! Reading captured packets: classic pcap (both byte orders, µs and ns timestamps) and
//! pcapng (section header, interface description, enhanced and simple packet blocks), and
//! peeling the link layer off to reach the IPv6 packet.
//!
//! Captures come from anywhere, so every length is checked and no record may make us
//! allocate more than [`MAX_RECORD`] bytes.

use std::fmt;
use std::io::{self, Read};

/// The largest record we accept. Real snap lengths are at most 256 KiB (tcpdump's default
/// is 262144); anything larger is a corrupt file, not a packet.
pub const MAX_RECORD: usize = 1 << 20;

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// A capture file that cannot be read as a whole (as opposed to a malformed packet in it).
#[derive(Debug)]
pub enum CaptureError {
    Io(io::Error),
    Format(String),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io(e) => write!(f, "{e}"),
            CaptureError::Format(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for CaptureError {
    fn from(e: io::Error) -> Self {
        CaptureError::Io(e)
    }
}

fn format_err<T>(msg: impl Into<String>) -> Result<T, CaptureError> {
    Err(CaptureError::Format(msg.into()))
}

/// One captured frame with the link type of the interface it was captured on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub link_type: u32,
    pub data: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }
    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }
}

enum Format {
    Pcap {
        endian: Endian,
        link_type: u32,
    },
    PcapNg {
        endian: Endian,
        interfaces: Vec<u32>,
    },
}

/// Streams frames out of a pcap or pcapng file.
pub struct CaptureReader<R: Read> {
    input: R,
    format: Format,
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_OPB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Reads exactly `buf.len()` bytes, or reports a clean end of file when none were there.
fn read_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<bool, CaptureError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return format_err("capture ends in the middle of a record"),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn read_vec<R: Read>(r: &mut R, len: usize) -> Result<Vec<u8>, CaptureError> {
    if len > MAX_RECORD {
        return format_err(format!(
            "record of {len} bytes exceeds the {MAX_RECORD}-byte limit"
        ));
    }
    let mut v = vec![0; len];
    if !read_or_eof(r, &mut v)? && len > 0 {
        return format_err("capture ends in the middle of a record");
    }
    Ok(v)
}

impl<R: Read> CaptureReader<R> {
    pub fn new(mut input: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        if !read_or_eof(&mut input, &mut magic)? {
            return format_err("empty file: not a pcap or pcapng capture");
        }
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let format = if [0xa1b2_c3d4, 0xa1b2_3c4d].contains(&le) {
            Self::pcap_header(&mut input, Endian::Little)?
        } else if [0xa1b2_c3d4, 0xa1b2_3c4d].contains(&be) {
            Self::pcap_header(&mut input, Endian::Big)?
        } else if le == PCAPNG_SHB {
            let endian = Self::pcapng_shb_body(&mut input)?;
            Format::PcapNg {
                endian,
                interfaces: Vec::new(),
            }
        } else {
            return format_err(format!(
                "unknown magic number {be:08x}: not a pcap or pcapng capture"
            ));
        };
        Ok(CaptureReader { input, format })
    }

    fn pcap_header(input: &mut R, endian: Endian) -> Result<Format, CaptureError> {
        let mut rest = [0u8; 20];
        if !read_or_eof(input, &mut rest)? {
            return format_err("truncated pcap file header");
        }
        // The top bits of the link-type word carry FCS information (pcap-savefile(5)).
        let link_type = endian.u32(&rest[16..20]) & 0x0FFF_FFFF;
        Ok(Format::Pcap { endian, link_type })
    }

    /// Reads the rest of a Section Header Block once its type word has been consumed.
    fn pcapng_shb_body(input: &mut R) -> Result<Endian, CaptureError> {
        let mut head = [0u8; 8];
        if !read_or_eof(input, &mut head)? {
            return format_err("truncated pcapng section header");
        }
        let endian = if u32::from_le_bytes([head[4], head[5], head[6], head[7]])
            == PCAPNG_BYTE_ORDER_MAGIC
        {
            Endian::Little
        } else if u32::from_be_bytes([head[4], head[5], head[6], head[7]])
            == PCAPNG_BYTE_ORDER_MAGIC
        {
            Endian::Big
        } else {
            return format_err("pcapng section header has no byte-order magic");
        };
        let total = endian.u32(&head[0..4]) as usize;
        if total < 28 || total % 4 != 0 {
            return format_err(format!("pcapng section header length {total} is invalid"));
        }
        read_vec(input, total - 12)?;
        Ok(endian)
    }

    /// The next frame, `None` at the end of the capture.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        match &mut self.format {
            Format::Pcap { endian, link_type } => {
                let (endian, link_type) = (*endian, *link_type);
                let mut rec = [0u8; 16];
                if !read_or_eof(&mut self.input, &mut rec)? {
                    return Ok(None);
                }
                let incl = endian.u32(&rec[8..12]) as usize;
                let data = read_vec(&mut self.input, incl)?;
                Ok(Some(Frame { link_type, data }))
            }
            Format::PcapNg { .. } => self.next_pcapng_frame(),
        }
    }

    fn next_pcapng_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            let Format::PcapNg { endian, .. } = &self.format else {
                unreachable!("called only for pcapng");
            };
            let endian = *endian;
            let mut head = [0u8; 8];
            if !read_or_eof(&mut self.input, &mut head)? {
                return Ok(None);
            }
            let block_type = endian.u32(&head[0..4]);
            if block_type == PCAPNG_SHB {
                // A new section may switch byte order; its length word is read anew.
                let mut rest = [0u8; 4];
                if !read_or_eof(&mut self.input, &mut rest)? {
                    return format_err("truncated pcapng section header");
                }
                let e = if u32::from_le_bytes(rest) == PCAPNG_BYTE_ORDER_MAGIC {
                    Endian::Little
                } else if u32::from_be_bytes(rest) == PCAPNG_BYTE_ORDER_MAGIC {
                    Endian::Big
                } else {
                    return format_err("pcapng section header has no byte-order magic");
                };
                let total = e.u32(&head[4..8]) as usize;
                if total < 28 || total % 4 != 0 {
                    return format_err(format!("pcapng section header length {total} is invalid"));
                }
                read_vec(&mut self.input, total - 12)?;
                self.format = Format::PcapNg {
                    endian: e,
                    interfaces: Vec::new(),
                };
                continue;
            }
            let total = endian.u32(&head[4..8]) as usize;
            if total < 12 || total % 4 != 0 {
                return format_err(format!("pcapng block length {total} is invalid"));
            }
            let body = read_vec(&mut self.input, total - 8)?;
            let body = &body[..body.len() - 4];
            let Format::PcapNg { interfaces, .. } = &mut self.format else {
                unreachable!("called only for pcapng");
            };
            let link_of = |interfaces: &Vec<u32>, id: usize| {
                interfaces.get(id).copied().ok_or_else(|| {
                    CaptureError::Format(format!("packet names undeclared interface {id}"))
                })
            };
            match block_type {
                PCAPNG_IDB => {
                    if body.len() < 8 {
                        return format_err("truncated pcapng interface description");
                    }
                    // Bounded by the file: each IDB costs at least 20 bytes of input.
                    interfaces.push(u32::from(endian.u16(&body[0..2])));
                }
                PCAPNG_EPB | PCAPNG_OPB => {
                    if body.len() < 20 {
                        return format_err("truncated pcapng packet block");
                    }
                    let id = if block_type == PCAPNG_EPB {
                        endian.u32(&body[0..4]) as usize
                    } else {
                        usize::from(endian.u16(&body[0..2]))
                    };
                    let cap = endian.u32(&body[12..16]) as usize;
                    if cap > body.len() - 20 {
                        return format_err("pcapng packet length exceeds its block");
                    }
                    let link_type = link_of(interfaces, id)?;
                    return Ok(Some(Frame {
                        link_type,
                        data: body[20..20 + cap].to_vec(),
                    }));
                }
                PCAPNG_SPB => {
                    if body.len() < 4 {
                        return format_err("truncated pcapng simple packet block");
                    }
                    let orig = endian.u32(&body[0..4]) as usize;
                    let cap = orig.min(body.len() - 4);
                    let link_type = link_of(interfaces, 0)?;
                    return Ok(Some(Frame {
                        link_type,
                        data: body[4..4 + cap].to_vec(),
                    }));
                }
                // Name resolution, statistics, custom blocks: nothing to decode.
                _ => {}
            }
        }
    }
}

const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: [u16; 2] = [0x8100, 0x88A8];

/// The IPv6 packet inside a frame, or why there is none.
pub fn ipv6_payload(frame: &Frame) -> Result<&[u8], String> {
    let d = &frame.data;
    let be16 =
        |o: usize| -> Option<u16> { d.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]])) };
    let from_ethertype = |ethertype: Option<u16>, at: usize| match (ethertype, d.get(at..)) {
        (Some(ETHERTYPE_IPV6), Some(payload)) => Ok(payload),
        (Some(t), Some(_)) if t != ETHERTYPE_IPV6 => Err(format!("not IPv6 (ethertype 0x{t:04x})")),
        _ => Err("truncated link-layer header".to_string()),
    };
    match frame.link_type {
        LINKTYPE_RAW | LINKTYPE_IPV6 => Ok(d),
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            let mut ethertype = be16(at);
            // Step over at most two VLAN tags (802.1Q, 802.1ad).
            for _ in 0..2 {
                match ethertype {
                    Some(t) if ETHERTYPE_VLAN.contains(&t) => {
                        at += 4;
                        ethertype = be16(at);
                    }
                    _ => break,
                }
            }
            from_ethertype(ethertype, at + 2)
        }
        LINKTYPE_LINUX_SLL => from_ethertype(be16(14), 16),
        LINKTYPE_LINUX_SLL2 => from_ethertype(be16(0), 20),
        other => Err(format!("unsupported link type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_le(link_type: u32, frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&link_type.to_le_bytes());
        for f in frames {
            v.extend_from_slice(&[0; 8]);
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Frame>, CaptureError> {
        let mut r = CaptureReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(f) = r.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn pcap_little_endian_frames() {
        let frames = read_all(&pcap_le(LINKTYPE_IPV6, &[&[0x60, 1, 2], &[0x60]])).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].data, vec![0x60, 1, 2]);
        assert_eq!(frames[1].link_type, LINKTYPE_IPV6);
    }

    #[test]
    fn pcap_big_endian_header() {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
        v.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        v.extend_from_slice(&LINKTYPE_RAW.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.push(0x60);
        let frames = read_all(&v).unwrap();
        assert_eq!(
            frames,
            vec![Frame {
                link_type: LINKTYPE_RAW,
                data: vec![0x60]
            }]
        );
    }

    #[test]
    fn truncated_and_oversized_records_are_format_errors() {
        let mut v = pcap_le(LINKTYPE_IPV6, &[&[1, 2, 3, 4]]);
        v.truncate(v.len() - 1);
        assert!(matches!(read_all(&v), Err(CaptureError::Format(_))));
        let mut v = pcap_le(LINKTYPE_IPV6, &[]);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_all(&v), Err(CaptureError::Format(_))));
        assert!(matches!(
            read_all(b"hello world!"),
            Err(CaptureError::Format(_))
        ));
        assert!(matches!(read_all(b""), Err(CaptureError::Format(_))));
    }

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let mut v = t.to_le_bytes().to_vec();
        v.extend_from_slice(&total.to_le_bytes());
        v.extend_from_slice(&body);
        v.extend_from_slice(&total.to_le_bytes());
        v
    }

    #[test]
    fn pcapng_sections_interfaces_and_packets() {
        let mut shb = PCAPNG_BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&[0xff; 8]);
        let mut v = block(PCAPNG_SHB, &shb);
        let mut idb = (LINKTYPE_ETHERNET as u16).to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0, 0, 0, 1, 0]);
        v.extend(block(PCAPNG_IDB, &idb));
        v.extend(block(99, &[1, 2, 3, 4]));
        let mut epb = vec![0; 12];
        epb.extend_from_slice(&3u32.to_le_bytes());
        epb.extend_from_slice(&3u32.to_le_bytes());
        epb.extend_from_slice(&[7, 8, 9]);
        v.extend(block(PCAPNG_EPB, &epb));
        let mut spb = 2u32.to_le_bytes().to_vec();
        spb.extend_from_slice(&[5, 6]);
        v.extend(block(PCAPNG_SPB, &spb));
        let frames = read_all(&v).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame {
                    link_type: LINKTYPE_ETHERNET,
                    data: vec![7, 8, 9]
                },
                Frame {
                    link_type: LINKTYPE_ETHERNET,
                    data: vec![5, 6]
                },
            ]
        );
    }

    #[test]
    fn pcapng_packet_on_undeclared_interface_is_an_error() {
        let mut shb = PCAPNG_BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&[0xff; 8]);
        let mut v = block(PCAPNG_SHB, &shb);
        let mut epb = vec![0; 12];
        epb.extend_from_slice(&[0; 8]);
        v.extend(block(PCAPNG_EPB, &epb));
        assert!(matches!(read_all(&v), Err(CaptureError::Format(_))));
    }

    #[test]
    fn link_layers_are_peeled() {
        let mut eth = vec![0; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x86, 0xdd, 0x60]);
        let f = Frame {
            link_type: LINKTYPE_ETHERNET,
            data: eth,
        };
        assert_eq!(ipv6_payload(&f).unwrap(), &[0x60]);
        let mut eth4 = vec![0; 12];
        eth4.extend_from_slice(&[0x08, 0x00, 0x45]);
        let f = Frame {
            link_type: LINKTYPE_ETHERNET,
            data: eth4,
        };
        assert!(ipv6_payload(&f).unwrap_err().contains("0x0800"));
        let mut sll = vec![0; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60, 0]);
        let f = Frame {
            link_type: LINKTYPE_LINUX_SLL,
            data: sll,
        };
        assert_eq!(ipv6_payload(&f).unwrap(), &[0x60, 0]);
        let f = Frame {
            link_type: LINKTYPE_ETHERNET,
            data: vec![0; 5],
        };
        assert!(ipv6_payload(&f).is_err());
        // SLL2 carries its protocol first: a short frame must not be sliced past its end.
        let f = Frame {
            link_type: LINKTYPE_LINUX_SLL2,
            data: vec![0x86, 0xdd, 0],
        };
        assert!(ipv6_payload(&f).is_err());
    }
}
