//! The mobile node's reverse tunnel in the kernel (`--tunnel seg6`): what it sends from
//! its home address is encapsulated toward its home agent by an SRv6 lightweight tunnel
//! (reduced encapsulation with one segment: a plain RFC 2473 IPv6-in-IPv6 packet, as on
//! the home agent's side, [`super::seg6`]) instead of a netfilter-queue round trip per
//! packet.
//!
//! - Table [`ENCAP_TABLE`]: `default dev IF encap seg6 mode encap.red segs HA` (`proto
//!   16`), consulted for packets from the home address by a rule at priority
//!   [`RULE_PRIORITY`], just ahead of the home-address rule to table 252, so that while no
//!   tunnel is set the packets fall through to the table-252 route as before. The route
//!   has no MTU of its own: the kernel takes the interface's and subtracts the 40 bytes of
//!   the tunnel, so TCP sizes its segments for it.
//! - `ip sr tunsrc set CoA`: the outer source. Left to source address selection, it is
//!   whatever the kernel picks toward the home agent, not necessarily the registered
//!   care-of address, and the home agent's §10.4.5 check would drop the packets.
//!
//! Receiving stays on the queue: `seg6local End.DT6` does not deliver locally (on this
//! kernel it discards a packet whose inner route is a local one unless the table belongs
//! to a VRF device, and there is no `CONFIG_NET_VRF`), so a decapsulated packet for the
//! home address would be dropped (`Ip6InNoRoutes`).

use super::mn_kernel::gone_is_fine;
use super::mn_path::Undo;
use crate::sys::rtnl::seg6::Encap;
use crate::sys::rtnl::{Route, Rtnl, Rule, RTPROT_MIP};
use std::io;
use std::net::Ipv6Addr;
use std::process::{Command, Stdio};

/// The table of the encapsulating route.
pub const ENCAP_TABLE: u32 = 250;
/// Ahead of the home-address rule to table 252 ([`super::mn_kernel::HOA_RULE_PRIORITY`]).
pub const RULE_PRIORITY: u32 = super::mn_kernel::HOA_RULE_PRIORITY - 1;

/// Sets the outer source of every SRv6 encapsulation in this network namespace
/// (`::` for source address selection).
pub fn set_tunnel_source(addr: Ipv6Addr) -> io::Result<()> {
    let out = Command::new("ip")
        .args(["sr", "tunsrc", "set", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("ip sr: {e} (install iproute2)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip sr tunsrc set {addr}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn encap_route(ifindex: u32) -> Route {
    Route {
        dst: Ipv6Addr::UNSPECIFIED,
        dst_len: 0,
        oif: Some(ifindex),
        table: ENCAP_TABLE,
        protocol: RTPROT_MIP,
        ..Route::default()
    }
}

fn hoa_rule(hoa: Ipv6Addr) -> Rule {
    Rule {
        priority: RULE_PRIORITY,
        table: ENCAP_TABLE,
        src: Some((hoa, 128)),
        ..Rule::default()
    }
}

/// Installs (or moves: the route is replaced in one message, so nothing is sent
/// unencapsulated in between) the reverse tunnel of `hoa` through interface `ifindex`
/// from `coa` to `ha`. The undo removes all of it; a caller that moves the tunnel
/// forgets the previous undo instead of running it.
pub fn install(
    rt: &mut Rtnl,
    hoa: Ipv6Addr,
    ifindex: u32,
    ha: Ipv6Addr,
    coa: Ipv6Addr,
) -> io::Result<Undo> {
    // The source first: a packet encapsulated by the new route must not leave with the
    // previous care-of address.
    set_tunnel_source(coa)?;
    let route = encap_route(ifindex);
    rt.add_encap_route(&route, &Encap::Reduced(ha))?;
    let rule = hoa_rule(hoa);
    match rt.add_rule(&rule) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            let _ = rt.del_route(&route);
            return Err(e);
        }
        _ => {}
    }
    tracing::info!(
        "home address {hoa}: reverse tunnel in the kernel, {coa} -> {ha} (table {ENCAP_TABLE}, interface {ifindex})"
    );
    Ok(Box::new(move || {
        let mut r = Rtnl::open()?;
        let a = gone_is_fine(r.del_rule(&rule));
        // Any route of ours in the table: the one installed last may have replaced this
        // one's interface.
        let b = r
            .routes(ENCAP_TABLE)?
            .into_iter()
            .filter(|x| x.protocol == RTPROT_MIP)
            .try_for_each(|x| gone_is_fine(r.del_route(&x)));
        let c = set_tunnel_source(Ipv6Addr::UNSPECIFIED);
        a.and(b).and(c)
    }))
}
