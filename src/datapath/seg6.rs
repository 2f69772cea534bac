//! The home agent's bidirectional tunnel in the kernel (`--tunnel seg6`), on a kernel
//! without `ip6_tunnel`: SRv6 lightweight tunnels do RFC 2473 encapsulation natively, so
//! tunnelled packets never visit user space (the queue path of [`super::ha_user`] copies
//! every 1500-byte piece out and back, which bounds it at a few hundred Mbit/s).
//!
//! Per home registration (HoA, CoA, at home agent address HA):
//!
//! - **Forward tunnel**: `HoA/128 encap seg6 mode encap.red segs CoA dev HOME` in the
//!   main table. With one segment the reduced encapsulation is a plain IPv6-in-IPv6
//!   packet (no Segment Routing Header); its source is the address the kernel selects
//!   toward the care-of address on the home interface (`ip sr tunsrc` when set).
//! - **Reverse tunnel**: a reverse-tunnelled packet is addressed to HA, a local address,
//!   and the local table would deliver it to a protocol 41 nobody handles. A rule
//!   `ipproto 41 lookup 251` at priority 0, placed *before* the local table's rule, sends
//!   it to [`DECAP_TABLE`], where `HA/128 encap seg6local action End.DT6 table main`
//!   strips the outer header and routes the inner packet in the main table.
//! - **§10.4.5**: the home agent must accept a reverse-tunnelled packet only when its
//!   outer source is the care-of address registered for its inner source, a home address.
//!   The inner header is beyond iptables' reach (no `xt_u32` here), so an nftables table
//!   `ip6 mip6d` does it: at priority raw - 1, tunnel packets to an endpoint must have
//!   (outer source, outer destination, inner source) in the set `tunnels`, else they are
//!   dropped. The inner source is read as raw payload (`@nh,384,128`): a packet with an
//!   extension header before the inner one does not match and is dropped too.
//!
//! Every route, the rule and the nftables table are recorded in the daemon's registry;
//! leftovers of a killed daemon (protocol 16 routes and rules, the `ip6 mip6d` table) are
//! removed at start (`daemon::leftovers`).
//!
//! The kernel does not relay a Packet Too Big for a packet it encapsulated on the way
//! through (RFC 2473 §7.1): a forwarded packet that no longer fits once encapsulated is
//! answered to the tunnel's own source, i.e. the home agent itself. TCP is not affected
//! (the mobile node's MSS is sized for the tunnel); other full-size traffic toward a
//! mobile node is lost on this path. The queue path answers it.

use super::{Binding, BindingKey, DataPath};
use crate::daemon::registry::{EntryId, Registry};
use crate::sys::rtnl::seg6::{Encap, IPPROTO_IPV6};
use crate::sys::rtnl::{self, Route, Rtnl, Rule, RTPROT_MIP, RT_TABLE_LOCAL, RT_TABLE_MAIN};
use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;
use std::process::{Command, Stdio};

/// The table of the decapsulating routes.
pub const DECAP_TABLE: u32 = 251;
/// The nftables table (family `ip6`) holding the §10.4.5 check.
pub const NFT_TABLE: &str = "mip6d";

/// The nftables ruleset of the §10.4.5 check (see the module documentation).
pub fn nft_ruleset() -> String {
    format!(
        "table ip6 {NFT_TABLE} {{
  set endpoints {{ type ipv6_addr; }}
  set tunnels {{ typeof ip6 saddr . ip6 daddr . @nh,384,128; }}
  chain reverse_tunnel {{
    type filter hook prerouting priority raw - 1; policy accept;
    meta l4proto ipv6 ip6 daddr @endpoints ip6 nexthdr ipv6 ip6 saddr . ip6 daddr . @nh,384,128 @tunnels counter accept
    meta l4proto ipv6 ip6 daddr @endpoints counter drop
  }}
}}
"
    )
}

/// An element of the `tunnels` set: (care-of address, home agent address, home address),
/// the last as the 128-bit integer the raw payload match compares.
pub fn tunnel_element(coa: Ipv6Addr, ha: Ipv6Addr, hoa: Ipv6Addr) -> String {
    format!("{coa} . {ha} . 0x{:032x}", u128::from(hoa))
}

/// Runs `nft` with `script` on its standard input.
pub fn nft(script: &str) -> io::Result<()> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("nft: {e} (install nftables)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft: {}: {}",
            script.lines().next().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether `table ip6 mip6d` exists (a leftover, or ours).
pub fn nft_table_exists() -> bool {
    Command::new("nft")
        .args(["list", "table", "ip6", NFT_TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The rule that sends protocol 41 to [`DECAP_TABLE`].
pub fn decap_rule() -> Rule {
    Rule {
        priority: 0,
        table: DECAP_TABLE,
        protocol: RTPROT_MIP,
        ..Rule::default()
    }
}

/// Adds [`decap_rule`] ahead of the local table's rule: rules of equal priority keep
/// the order they were added in, so the local rule is taken out and put back behind
/// ours (for the microseconds between, nothing is delivered locally).
fn add_decap_rule(rt: &mut Rtnl) -> io::Result<()> {
    let local = Rule {
        priority: 0,
        table: RT_TABLE_LOCAL,
        protocol: 0,
        ..Rule::default()
    };
    let had_local = rt
        .rules()?
        .iter()
        .any(|r| r.priority == 0 && r.table == RT_TABLE_LOCAL);
    if had_local {
        rt.del_rule(&local)?;
    }
    let ours = rt.add_proto_rule(&decap_rule(), IPPROTO_IPV6);
    if had_local {
        // The kernel's own rule carries protocol "kernel"; so does this one.
        let back = Rule {
            protocol: rtnl::RTPROT_KERNEL,
            ..local
        };
        rt.add_rule(&back)?;
    }
    ours
}

fn encap_route(hoa: Ipv6Addr, oif: u32) -> Route {
    Route {
        dst: hoa,
        dst_len: 128,
        oif: Some(oif),
        table: RT_TABLE_MAIN,
        protocol: RTPROT_MIP,
        ..Route::default()
    }
}

fn decap_route(ha: Ipv6Addr, oif: u32) -> Route {
    Route {
        dst: ha,
        dst_len: 128,
        oif: Some(oif),
        table: DECAP_TABLE,
        protocol: RTPROT_MIP,
        ..Route::default()
    }
}

/// The home registrations' tunnels in the kernel.
pub struct Seg6Tunnels {
    rtnl: Rtnl,
    home_index: u32,
    /// HoA → (HA, CoA, the undo of its route).
    routes: HashMap<Ipv6Addr, (Ipv6Addr, Ipv6Addr, EntryId)>,
    /// HA → (registrations using it, the undo of its decapsulating route).
    endpoints: HashMap<Ipv6Addr, (usize, EntryId)>,
}

impl Seg6Tunnels {
    /// Installs the nftables check and the decapsulation rule (recorded in `registry`).
    pub fn start(home_if: &str, registry: &mut Registry) -> Result<Seg6Tunnels, String> {
        let mut rtnl = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
        let home_index = rtnl
            .link_by_name(home_if)
            .map_err(|e| format!("home interface {home_if}: {e}"))?
            .ok_or_else(|| format!("home interface {home_if}: no such interface"))?
            .index;
        nft(&nft_ruleset()).map_err(|e| format!("the §10.4.5 check: {e}"))?;
        registry.record(format!("nftables table ip6 {NFT_TABLE}"), || {
            nft(&format!("delete table ip6 {NFT_TABLE}\n"))
        });
        add_decap_rule(&mut rtnl).map_err(|e| format!("decapsulation rule: {e}"))?;
        registry.record(
            format!("rule ipproto 41 lookup {DECAP_TABLE} (priority 0)"),
            || Rtnl::open()?.del_proto_rule(&decap_rule(), IPPROTO_IPV6),
        );
        tracing::info!(
            "home agent on {home_if}: tunnels in the kernel (SRv6 encap.red / End.DT6, table {DECAP_TABLE})"
        );
        Ok(Seg6Tunnels {
            rtnl,
            home_index,
            routes: HashMap::new(),
            endpoints: HashMap::new(),
        })
    }

    fn endpoint_add(&mut self, ha: Ipv6Addr, registry: &mut Registry) -> io::Result<()> {
        if let Some((n, _)) = self.endpoints.get_mut(&ha) {
            *n += 1;
            return Ok(());
        }
        let r = decap_route(ha, self.home_index);
        self.rtnl.add_encap_route(
            &r,
            &Encap::EndDt6 {
                table: RT_TABLE_MAIN,
            },
        )?;
        let id = registry.record(
            format!("route {ha}/128 table {DECAP_TABLE} (End.DT6)"),
            move || Rtnl::open()?.del_route(&r),
        );
        nft(&format!(
            "add element ip6 {NFT_TABLE} endpoints {{ {ha} }}\n"
        ))?;
        self.endpoints.insert(ha, (1, id));
        Ok(())
    }

    fn endpoint_del(&mut self, ha: Ipv6Addr, registry: &mut Registry) {
        let Some((n, id)) = self.endpoints.get_mut(&ha) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        let id = *id;
        self.endpoints.remove(&ha);
        if let Err(e) = nft(&format!(
            "delete element ip6 {NFT_TABLE} endpoints {{ {ha} }}\n"
        )) {
            tracing::warn!("{e}");
        }
        if let Err(e) = registry.undo(id) {
            tracing::warn!("{e}");
        }
    }

    fn forget(&mut self, hoa: Ipv6Addr, registry: &mut Registry) {
        let Some((ha, coa, id)) = self.routes.remove(&hoa) else {
            return;
        };
        if let Err(e) = registry.undo(id) {
            tracing::warn!("{e}");
        }
        if let Err(e) = nft(&format!(
            "delete element ip6 {NFT_TABLE} tunnels {{ {} }}\n",
            tunnel_element(coa, ha, hoa)
        )) {
            tracing::warn!("{e}");
        }
        self.endpoint_del(ha, registry);
    }
}

impl DataPath for Seg6Tunnels {
    fn name(&self) -> &'static str {
        "seg6"
    }

    /// A new or moved registration: the decapsulation and the check for the new care-of
    /// address first, then the route (replaced in one message), then the old care-of
    /// address's element goes.
    fn install(&mut self, b: &Binding, registry: &mut Registry) -> io::Result<()> {
        let Binding::HomeRegistration { ha, hoa, coa } = *b else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the home agent's tunnels do not hold {b:?}"),
            ));
        };
        let old = self.routes.get(&hoa).map(|&(h, c, _)| (h, c));
        if old == Some((ha, coa)) {
            tracing::debug!("route {hoa} -> tunnel {ha} -> {coa} (unchanged)");
            return Ok(());
        }
        self.endpoint_add(ha, registry)?;
        nft(&format!(
            "add element ip6 {NFT_TABLE} tunnels {{ {} }}\n",
            tunnel_element(coa, ha, hoa)
        ))?;
        let r = encap_route(hoa, self.home_index);
        self.rtnl.add_encap_route(&r, &Encap::Reduced(coa))?;
        let id = registry.record(
            format!("route {hoa}/128 encap seg6 segs {coa}"),
            move || Rtnl::open()?.del_route(&r),
        );
        if let Some((old_ha, old_coa, old_id)) = self.routes.insert(hoa, (ha, coa, id)) {
            // The route itself was replaced; only the record of the old one goes.
            registry.forget(old_id);
            if let Err(e) = nft(&format!(
                "delete element ip6 {NFT_TABLE} tunnels {{ {} }}\n",
                tunnel_element(old_coa, old_ha, hoa)
            )) {
                tracing::warn!("{e}");
            }
            self.endpoint_del(old_ha, registry);
        }
        tracing::info!("route {hoa} -> tunnel {ha} -> {coa} (kernel)");
        Ok(())
    }

    fn remove(&mut self, key: &BindingKey, registry: &mut Registry) -> io::Result<()> {
        if let BindingKey::HomeRegistration { hoa } = *key {
            self.forget(hoa, registry);
        }
        Ok(())
    }

    fn cleanup(&mut self, registry: &mut Registry) -> Vec<io::Error> {
        let all: Vec<Ipv6Addr> = self.routes.keys().copied().collect();
        for hoa in all {
            self.forget(hoa, registry);
        }
        Vec::new()
    }
}

/// Can this kernel (and this host) run [`Seg6Tunnels`]? Asks the kernel to do it: adds
/// and deletes an `encap.red` route and an `End.DT6` route in the daemon's network
/// namespace (documentation addresses, on `lo`, in [`DECAP_TABLE`]), and checks that
/// `nft` is there for the §10.4.5 check. `Err` says what is missing.
pub fn probe() -> Result<(), String> {
    const PROBE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x6275, 0x5e6, 0, 0, 0, 1);
    let mut rt = Rtnl::open().map_err(|e| format!("rtnetlink: {e}"))?;
    let lo = rt
        .link_by_name("lo")
        .map_err(|e| format!("rtnetlink: {e}"))?
        .ok_or("no loopback interface")?
        .index;
    let r = decap_route(PROBE, lo);
    for (encap, option) in [
        (Encap::Reduced(PROBE), "CONFIG_IPV6_SEG6_LWTUNNEL"),
        (
            Encap::EndDt6 {
                table: RT_TABLE_MAIN,
            },
            "CONFIG_IPV6_SEG6_LWTUNNEL (seg6local End.DT6)",
        ),
    ] {
        rt.add_encap_route(&r, &encap)
            .map_err(|e| format!("no {option}: the kernel refused the route: {e}"))?;
        let _ = rt.del_route(&r);
    }
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("nft: {e} (install nftables)"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_element_carries_the_home_address_as_the_raw_payload_integer() {
        let e = tunnel_element(
            "2001:db8:41::100".parse().unwrap(),
            "2001:db8:1::1".parse().unwrap(),
            "2001:db8:1::100".parse().unwrap(),
        );
        assert_eq!(
            e,
            "2001:db8:41::100 . 2001:db8:1::1 . 0x20010db8000100000000000000000100"
        );
        assert!(nft_ruleset().contains("@nh,384,128 @tunnels counter accept"));
    }
}
