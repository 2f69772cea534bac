//! Signalling on the `kernel` data path, umip's way: Mobility Headers through the raw
//! `IPPROTO_MH` socket ([`MhSocket`]), where the kernel's MIP6 code has already processed
//! the Home Address option and the Type 2 Routing Header, and the kernel's own reports of
//! Home Address options that arrived without a binding (`XFRM_MSG_REPORT`, which umip
//! answers with a Binding Error, RFC 6275 §9.3.3).
//!
//! A MIP6 kernel hands the socket the packet *after* its swaps: the source is the home
//! address and the Home Address option holds the care-of address; the destination is the
//! home address and the routing header holds the care-of address. The protocol machines
//! see packets as they were on the wire ([`Inbound`]), so [`arrived`] swaps them back.

use super::KernelPath;
use crate::daemon::machine::Ctx;
use crate::datapath::drain;
use crate::datapath::user::Responder;
use crate::proto::event::{Event, Inbound, Transmit};
use crate::sys::mh_socket::{MhSocket, ReceivedMh, SendOptions};
use crate::sys::xfrm::{Groups, Report, XfrmEvent, XfrmMonitor, IPPROTO_DSTOPTS};
use crate::wire::mh::MhRepr;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// A Mobility Header as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrived {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hao: Option<Ipv6Addr>,
    /// The home address of its Type 2 Routing Header, if it had one.
    pub rh2: Option<Ipv6Addr>,
    /// The interface it arrived on (a tunnel's, for what the home agent tunnelled).
    pub ifindex: Option<u32>,
    pub repr: MhRepr,
    pub raw: Vec<u8>,
}

impl Arrived {
    pub fn inbound(&self) -> Inbound<'_> {
        Inbound {
            src: self.src,
            dst: self.dst,
            hao: self.hao,
            repr: &self.repr,
            raw: &self.raw,
        }
    }
}

/// Undoes the kernel's swaps and parses the header; `None` for what the machines must
/// not see (no destination, a header that does not parse or whose checksum is wrong).
/// The checksum covers the final addresses, which are the socket's view: home address
/// as source under a Home Address option, home address as destination under an RH2.
pub fn arrived(r: ReceivedMh) -> Option<Arrived> {
    let final_dst = r.dst?;
    let repr = MhRepr::parse_checked(&r.bytes, &r.src, &final_dst).ok()?;
    let (src, hao) = match r.hao {
        Some(coa) => (coa, Some(r.src)),
        None => (r.src, None),
    };
    Some(Arrived {
        src,
        dst: r.rh2.unwrap_or(final_dst),
        hao,
        rh2: r.rh2.map(|_| final_dst),
        ifindex: r.ifindex,
        repr,
        raw: r.bytes,
    })
}

/// What a kernel report means to the correspondent node: a Home Address option refused
/// for want of a binding, as the `HaoWithoutBinding` event. The report's selector is the
/// packet's flow after the swap (source = home address), its address the care-of address.
pub fn unbound_hao(r: &Report) -> Option<Event<'static>> {
    if r.proto != IPPROTO_DSTOPTS {
        return None;
    }
    let coa = r.coaddr?;
    if coa.is_unspecified() || r.sel.src.is_unspecified() || r.sel.dst.is_unspecified() {
        return None;
    }
    Some(Event::HaoWithoutBinding {
        local: r.sel.dst,
        src_coa: coa,
        hoa: r.sel.src,
    })
}

/// Where and how to send a Mobility Header the machines built: the socket's destination
/// and ancillary data. A Binding Acknowledgement (the only header with an RH2) to a home
/// address whose binding already has its RH2 state in the kernel goes to the home
/// address as a plain packet: the binding's sub-policy for it makes the kernel add the
/// routing header toward `rh2_state_coa` — an RH2 in the ancillary data as well would be
/// a second one (Linux looks the policy up on the final destination). Without such a
/// state (a refused registration, a binding on its way out) the ancillary data carries
/// it. `None` for what this socket cannot send (a tunnelled header).
pub fn send_plan(t: &Transmit, rh2_state_coa: Option<Ipv6Addr>) -> Option<(Ipv6Addr, SendOptions)> {
    if t.tunnel.is_some() {
        return None;
    }
    let opts = SendOptions {
        src: Some(t.src),
        hao: t.hao,
        rh2: t.rh2,
    };
    match t.rh2 {
        Some(hoa) if rh2_state_coa == Some(t.dst) => Some((hoa, SendOptions { rh2: None, ..opts })),
        _ => Some((t.dst, opts)),
    }
}

/// The MH socket and the kernel's reports, for a role's machine in the event loop.
pub struct Signalling {
    sock: MhSocket,
    reports: XfrmMonitor,
}

impl Signalling {
    /// The socket and the kernel's reports (`XFRM_MSG_REPORT`); with `acquire`, its
    /// route-optimisation triggers too (`XFRM_MSG_ACQUIRE`, a mobile node's).
    pub fn open(acquire: bool) -> Result<Signalling, String> {
        let sock =
            MhSocket::open().map_err(|e| format!("cannot open the Mobility Header socket: {e}"))?;
        sock.set_nonblocking()
            .map_err(|e| format!("Mobility Header socket: {e}"))?;
        let reports = XfrmMonitor::open(Groups {
            acquire,
            report: true,
            expire: false,
        })
        .map_err(|e| format!("cannot listen to XFRM reports: {e}"))?;
        Ok(Signalling { sock, reports })
    }

    pub fn fds(&self) -> [RawFd; 2] {
        [self.sock.as_raw_fd(), self.reports.as_raw_fd()]
    }

    /// What `fd` had: the Mobility Headers as they were on the wire (counted as
    /// received), and the kernel's XFRM events.
    pub fn read(&mut self, fd: RawFd, ctx: &mut Ctx<'_>) -> (Vec<Arrived>, Vec<XfrmEvent>) {
        let mut mhs = Vec::new();
        let mut events = Vec::new();
        if fd == self.sock.as_raw_fd() {
            drain(
                "Mobility Header socket",
                &mut self.sock,
                |s| s.recv(),
                |_, r| match arrived(r) {
                    Some(a) => {
                        ctx.mh.count_received(a.repr.mh_type());
                        mhs.push(a);
                    }
                    None => tracing::debug!("Mobility Header socket: dropped a malformed header"),
                },
            );
        } else if fd == self.reports.as_raw_fd() {
            match self.reports.recv() {
                Ok(e) => events = e,
                Err(e) => tracing::warn!("XFRM reports: {e}"),
            }
        }
        (mhs, events)
    }

    /// Hands what `fd` has to `machine`.
    pub fn on_readable(
        &mut self,
        fd: RawFd,
        machine: &mut impl Responder,
        now: Instant,
        ctx: &mut Ctx<'_>,
    ) {
        let (mhs, events) = self.read(fd, ctx);
        for a in mhs {
            machine.handle(Event::Mh(a.inbound()), now);
        }
        for e in events {
            if let XfrmEvent::Report(r) = e {
                if let Some(ev) = unbound_hao(&r) {
                    machine.handle(ev, now);
                }
            }
        }
    }

    /// Sends `t`; `path` says which routing headers the kernel adds itself.
    pub fn send(&self, t: &Transmit, path: &KernelPath, ctx: &mut Ctx<'_>) {
        let state = t.rh2.and_then(|hoa| path.rh2_coa(t.src, hoa));
        let Some((to, opts)) = send_plan(t, state) else {
            tracing::warn!(
                "not sending {}: the kernel data path has no such path",
                t.repr
            );
            return;
        };
        self.send_with(t, to, opts, ctx);
    }

    /// Sends `t`'s header to `to` with `opts` as they are.
    pub fn send_with(&self, t: &Transmit, to: Ipv6Addr, opts: SendOptions, ctx: &mut Ctx<'_>) {
        match self.sock.send(&t.bytes, to, opts) {
            Ok(_) => {
                ctx.mh.count_sent(t.repr.mh_type());
                tracing::debug!("sent {} {} -> {}", t.repr, t.src, t.dst);
            }
            Err(e) => tracing::warn!("sending {} to {}: {e}", t.repr, t.dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::xfrm::{Selector, IPPROTO_ROUTING};
    use crate::wire::mh::Message;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn brr(src: Ipv6Addr, dst: Ipv6Addr) -> (MhRepr, Vec<u8>) {
        let r = MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![],
        };
        let b = r.to_bytes(&src, &dst);
        (r, b)
    }

    #[test]
    fn a_home_address_option_is_swapped_back() {
        let (hoa, coa, cn) = (
            a("2001:db8:1::100"),
            a("2001:db8:41::100"),
            a("2001:db8:10::2"),
        );
        // The checksum is over the home address, as the sender computed it.
        let (repr, bytes) = brr(hoa, cn);
        let got = arrived(ReceivedMh {
            src: hoa,
            dst: Some(cn),
            ifindex: Some(2),
            hao: Some(coa),
            rh2: None,
            bytes: bytes.clone(),
        })
        .expect("parses");
        assert_eq!((got.src, got.dst, got.hao), (coa, cn, Some(hoa)));
        assert_eq!((got.rh2, got.ifindex), (None, Some(2)));
        assert_eq!((got.repr, got.raw), (repr, bytes));
    }

    #[test]
    fn a_routing_header_is_swapped_back() {
        let (hoa, coa, ha) = (
            a("2001:db8:1::100"),
            a("2001:db8:41::100"),
            a("2001:db8:1::1"),
        );
        let (_, bytes) = brr(ha, hoa);
        let got = arrived(ReceivedMh {
            src: ha,
            dst: Some(hoa),
            ifindex: None,
            hao: None,
            rh2: Some(coa),
            bytes,
        })
        .expect("parses");
        assert_eq!((got.src, got.dst, got.hao), (ha, coa, None));
        assert_eq!(
            got.rh2,
            Some(hoa),
            "the mobile node checks the routing header's address"
        );
    }

    #[test]
    fn a_wrong_checksum_or_no_destination_is_dropped() {
        let (x, y) = (a("2001:db8::1"), a("2001:db8::2"));
        let (_, mut bytes) = brr(x, y);
        let ok = ReceivedMh {
            src: x,
            dst: Some(y),
            ifindex: None,
            hao: None,
            rh2: None,
            bytes: bytes.clone(),
        };
        assert!(arrived(ok.clone()).is_some());
        assert!(arrived(ReceivedMh {
            dst: None,
            ..ok.clone()
        })
        .is_none());
        bytes[4] ^= 0xff;
        assert!(arrived(ReceivedMh {
            bytes,
            ..ok.clone()
        })
        .is_none());
        assert!(arrived(ReceivedMh {
            bytes: vec![],
            ..ok
        })
        .is_none());
    }

    #[test]
    fn a_report_of_a_home_address_option_is_a_binding_error_to_send() {
        let (hoa, coa, cn) = (
            a("2001:db8:1::100"),
            a("2001:db8:41::100"),
            a("2001:db8:10::2"),
        );
        let r = Report {
            proto: IPPROTO_DSTOPTS,
            sel: Selector::hosts(hoa, cn),
            coaddr: Some(coa),
        };
        match unbound_hao(&r) {
            Some(Event::HaoWithoutBinding {
                local,
                src_coa,
                hoa: h,
            }) => assert_eq!((local, src_coa, h), (cn, coa, hoa)),
            other => panic!("{other:?}"),
        }
        for bad in [
            Report {
                proto: IPPROTO_ROUTING,
                ..r.clone()
            },
            Report {
                coaddr: None,
                ..r.clone()
            },
            Report {
                sel: Selector::any(),
                ..r
            },
        ] {
            assert!(unbound_hao(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_routing_header_the_kernel_adds_is_not_sent_twice() {
        let (x, coa, h) = (a("2001:db8::1"), a("2001:db8:41::2"), a("2001:db8:1::100"));
        let (repr, bytes) = brr(x, h);
        let t = Transmit {
            src: x,
            dst: coa,
            rh2: Some(h),
            repr,
            bytes,
            hao: None,
            tunnel: None,
        };
        let cmsg = SendOptions {
            src: Some(x),
            hao: None,
            rh2: Some(h),
        };
        // No state, or one for another care-of address: the socket adds the header.
        assert_eq!(send_plan(&t, None), Some((coa, cmsg)));
        let other = a("2001:db8:42::2");
        assert_eq!(send_plan(&t, Some(other)), Some((coa, cmsg)));
        // The binding's state adds it: a plain packet to the home address.
        assert_eq!(
            send_plan(&t, Some(coa)),
            Some((h, SendOptions { rh2: None, ..cmsg }))
        );
        let plain = Transmit {
            rh2: None,
            dst: h,
            ..t.clone()
        };
        assert_eq!(
            send_plan(&plain, Some(coa)),
            Some((h, SendOptions { rh2: None, ..cmsg }))
        );
        assert_eq!(
            send_plan(
                &Transmit {
                    tunnel: Some((x, coa)),
                    ..t
                },
                None
            ),
            None
        );
    }
}
