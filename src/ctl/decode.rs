//! `mip6ctl decode`: captured Mobile IPv6 traffic, decoded for an operator (one line per
//! header) or for a script (one JSON object per packet). The JSON keys are a stable
//! interface documented in mip6ctl(8).

use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::net::Ipv6Addr;

use crate::crypto::rr;
use crate::hex;
use crate::wire::error::{Error, ReceiverAction};
use crate::wire::ext_header::DestOption;
use crate::wire::icmpv6::{Icmpv6Repr, NdOption};
use crate::wire::mh::{self, Message, MhRepr};
use crate::wire::mh_option::MobilityOption;
use crate::wire::packet::{Header, Packet};
use crate::wire::proto;

/// A Binding Authorization Data check: the authenticator in a BU or BA, recomputed with
/// the operator's Kbm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCheck {
    Valid,
    Invalid,
}

/// Verifies the authenticator of a BU or BA (RFC 6275 §6.2.7) carried in `packet`, whose
/// Mobility Header starts at `mh_offset` in `raw`. `None` when there is nothing to check.
pub fn check_authenticator(
    raw: &[u8],
    packet: &Packet,
    mh_offset: usize,
    kbm: &[u8; 20],
) -> Option<AuthCheck> {
    let repr = packet.mobility()?;
    let mh_bytes = raw.get(mh_offset..)?;
    let (covered, authenticator) = mh::auth_data_region(mh_bytes)?;
    // The BU travels MN → CN and the BA CN → MN, so the care-of address and the
    // correspondent's address swap places in the IPv6 header between the two.
    let (coa, cn) = match repr.message {
        Message::BindingUpdate { .. } => {
            let acoa = repr.options.iter().find_map(|o| match o {
                MobilityOption::AlternateCareOf(a) => Some(*a),
                _ => None,
            });
            (acoa.unwrap_or(packet.ip.src), packet.ip.dst)
        }
        Message::BindingAck { .. } => (packet.ip.dst, packet.ip.src),
        _ => return None,
    };
    Some(
        if rr::verify_authenticator(kbm, &coa, &cn, &covered, &authenticator) {
            AuthCheck::Valid
        } else {
            AuthCheck::Invalid
        },
    )
}

fn mh_offset(packet: &Packet) -> Option<usize> {
    packet.headers.iter().find_map(|h| match h {
        Header::Mobility { offset, .. } => Some(*offset),
        _ => None,
    })
}

fn auth_text(a: AuthCheck) -> &'static str {
    match a {
        AuthCheck::Valid => "valid",
        AuthCheck::Invalid => "invalid",
    }
}

fn error_json(e: &Error) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), json!(e.kind.name()));
    match e.action {
        ReceiverAction::Drop => {}
        ReceiverAction::ParameterProblem { code, pointer } => {
            o.insert("icmp_code".into(), json!(code));
            o.insert("icmp_pointer".into(), json!(pointer));
        }
        ReceiverAction::BindingError { status } => {
            o.insert("binding_error_status".into(), json!(status));
        }
    }
    Value::Object(o)
}

fn bu_flags_json(f: &mh::BuFlags) -> Value {
    json!({"A": f.a, "H": f.h, "L": f.l, "K": f.k, "M": f.m, "R": f.r, "P": f.p})
}

fn ba_flags_json(f: &mh::BaFlags) -> Value {
    json!({"K": f.k, "R": f.r, "P": f.p})
}

fn mobility_option_json(o: &MobilityOption) -> Value {
    match o {
        MobilityOption::BindingRefreshAdvice { interval_units } => json!({
            "type": "binding-refresh-advice",
            "refresh_interval_units": interval_units,
            "refresh_interval_seconds": u32::from(*interval_units) * 4,
        }),
        MobilityOption::AlternateCareOf(a) => {
            json!({"type": "alternate-care-of-address", "address": a.to_string()})
        }
        MobilityOption::NonceIndices { home, care_of } => json!({
            "type": "nonce-indices",
            "home_nonce_index": home,
            "care_of_nonce_index": care_of,
        }),
        MobilityOption::BindingAuthData(auth) => json!({
            "type": "binding-authorization-data",
            "authenticator": hex::encode(auth),
        }),
        MobilityOption::MobileNetworkPrefix { prefix_len, prefix } => json!({
            "type": "mobile-network-prefix",
            "prefix_length": prefix_len,
            "prefix": prefix.to_string(),
        }),
        MobilityOption::Unknown { opt_type, data } => json!({
            "type": "unknown",
            "option_type": opt_type,
            "data": hex::encode(data),
        }),
    }
}

fn mobility_json(repr: &MhRepr, checksum_ok: bool, auth: Option<AuthCheck>) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("mobility"));
    o.insert("mh_type".into(), json!(mh::mh_type_name(repr.mh_type())));
    o.insert("mh_type_number".into(), json!(repr.mh_type()));
    o.insert("checksum_ok".into(), json!(checksum_ok));
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    match &repr.message {
        Message::BindingRefreshRequest => {}
        Message::HomeTestInit { cookie } => put("home_init_cookie", json!(hex::encode(cookie))),
        Message::CareOfTestInit { cookie } => {
            put("care_of_init_cookie", json!(hex::encode(cookie)))
        }
        Message::HomeTest {
            nonce_index,
            cookie,
            keygen_token,
        } => {
            put("home_nonce_index", json!(nonce_index));
            put("home_init_cookie", json!(hex::encode(cookie)));
            put("home_keygen_token", json!(hex::encode(keygen_token)));
        }
        Message::CareOfTest {
            nonce_index,
            cookie,
            keygen_token,
        } => {
            put("care_of_nonce_index", json!(nonce_index));
            put("care_of_init_cookie", json!(hex::encode(cookie)));
            put("care_of_keygen_token", json!(hex::encode(keygen_token)));
        }
        Message::BindingUpdate {
            sequence,
            flags,
            lifetime_units,
        } => {
            put("sequence", json!(sequence));
            put("flags", bu_flags_json(flags));
            put("lifetime_units", json!(lifetime_units));
            put("lifetime_seconds", json!(u32::from(*lifetime_units) * 4));
        }
        Message::BindingAck {
            status,
            flags,
            sequence,
            lifetime_units,
        } => {
            put("status", json!(status));
            if let Some(name) = mh::ba_status_name(*status) {
                put("status_text", json!(name));
            }
            put("flags", ba_flags_json(flags));
            put("sequence", json!(sequence));
            put("lifetime_units", json!(lifetime_units));
            put("lifetime_seconds", json!(u32::from(*lifetime_units) * 4));
        }
        Message::BindingError {
            status,
            home_address,
        } => {
            put("status", json!(status));
            if let Some(name) = mh::be_status_name(*status) {
                put("status_text", json!(name));
            }
            put("home_address", json!(home_address.to_string()));
        }
        Message::Unknown { data, .. } => put("data", json!(hex::encode(data))),
    }
    if let Some(a) = auth {
        put("authenticator", json!(auth_text(a)));
    }
    o.insert(
        "options".into(),
        Value::Array(repr.options.iter().map(mobility_option_json).collect()),
    );
    Value::Object(o)
}

fn nd_option_json(o: &NdOption) -> Value {
    match o {
        NdOption::SourceLinkLayer(a) | NdOption::TargetLinkLayer(a) => {
            json!({"type": o.name(), "address": hex::encode(a)})
        }
        NdOption::PrefixInformation {
            prefix_len,
            l,
            a,
            r,
            valid_lifetime,
            preferred_lifetime,
            prefix,
        } => json!({
            "type": "prefix-information",
            "prefix_length": prefix_len,
            "flags": {"L": l, "A": a, "R": r},
            "valid_lifetime": valid_lifetime,
            "preferred_lifetime": preferred_lifetime,
            "prefix": prefix.to_string(),
        }),
        NdOption::Mtu(mtu) => json!({"type": "mtu", "mtu": mtu}),
        NdOption::AdvertisementInterval(ms) => {
            json!({"type": "advertisement-interval", "interval_ms": ms})
        }
        NdOption::HomeAgentInfo {
            preference,
            lifetime,
        } => json!({
            "type": "home-agent-information",
            "preference": preference,
            "lifetime": lifetime,
        }),
        NdOption::Unknown { opt_type, data } => json!({
            "type": "unknown",
            "option_type": opt_type,
            "data": hex::encode(data),
        }),
    }
}

fn icmpv6_json(repr: &Icmpv6Repr, checksum_ok: bool) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("icmpv6"));
    o.insert("icmp_type".into(), json!(repr.type_name()));
    o.insert("checksum_ok".into(), json!(checksum_ok));
    let mut put = |k: &str, v: Value| {
        o.insert(k.into(), v);
    };
    let nd_options = |opts: &[NdOption]| Value::Array(opts.iter().map(nd_option_json).collect());
    match repr {
        Icmpv6Repr::HaadRequest { identifier, r } => {
            put("identifier", json!(identifier));
            put("flags", json!({"R": r}));
        }
        Icmpv6Repr::HaadReply {
            identifier,
            r,
            home_agents,
        } => {
            put("identifier", json!(identifier));
            put("flags", json!({"R": r}));
            put(
                "home_agents",
                Value::Array(home_agents.iter().map(|a| json!(a.to_string())).collect()),
            );
        }
        Icmpv6Repr::MobilePrefixSolicitation { identifier } => put("identifier", json!(identifier)),
        Icmpv6Repr::MobilePrefixAdvertisement {
            identifier,
            m,
            o: other,
            options,
        } => {
            put("identifier", json!(identifier));
            put("flags", json!({"M": m, "O": other}));
            put("options", nd_options(options));
        }
        Icmpv6Repr::RouterAdvertisement {
            hop_limit,
            m,
            o: other,
            h,
            router_lifetime,
            reachable_time,
            retrans_timer,
            options,
            ..
        } => {
            put("hop_limit", json!(hop_limit));
            put("flags", json!({"M": m, "O": other, "H": h}));
            put("router_lifetime", json!(router_lifetime));
            put("reachable_time", json!(reachable_time));
            put("retrans_timer", json!(retrans_timer));
            put("options", nd_options(options));
        }
        Icmpv6Repr::RouterSolicitation { options } => put("options", nd_options(options)),
        Icmpv6Repr::NeighborSolicitation { target, options } => {
            put("target", json!(target.to_string()));
            put("options", nd_options(options));
        }
        Icmpv6Repr::NeighborAdvertisement {
            r,
            s,
            o: other,
            target,
            options,
        } => {
            put("flags", json!({"R": r, "S": s, "O": other}));
            put("target", json!(target.to_string()));
            put("options", nd_options(options));
        }
        Icmpv6Repr::ParameterProblem {
            code,
            pointer,
            invoking,
        } => {
            put("code", json!(code));
            put("pointer", json!(pointer));
            put("invoking_length", json!(invoking.len()));
        }
        Icmpv6Repr::DestinationUnreachable { code, invoking } => {
            put("code", json!(code));
            put("invoking_length", json!(invoking.len()));
        }
        Icmpv6Repr::EchoRequest { id, seq, data } | Icmpv6Repr::EchoReply { id, seq, data } => {
            put("identifier", json!(id));
            put("sequence", json!(seq));
            put("data_length", json!(data.len()));
        }
        Icmpv6Repr::Other {
            msg_type,
            code,
            body,
        } => {
            put("icmp_type_number", json!(msg_type));
            put("code", json!(code));
            put("body_length", json!(body.len()));
        }
    }
    Value::Object(o)
}

fn upper_name(protocol: u8) -> String {
    match protocol {
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ESP => "esp".into(),
        proto::AH => "ah".into(),
        proto::IPV6 => "ipv6".into(),
        p => format!("protocol-{p}"),
    }
}

fn header_json(h: &Header, auth: Option<AuthCheck>) -> Value {
    match h {
        Header::HopByHop { len } => json!({"type": "hop-by-hop", "length": len}),
        // The inner packet's own authenticator is not checked: tunnelled Mobility Headers
        // are HoTI/HoT, which carry none.
        Header::Tunnel(inner) => json!({
            "type": "ipv6-in-ipv6",
            "src": inner.ip.src.to_string(),
            "dst": inner.ip.dst.to_string(),
            "hop_limit": inner.ip.hop_limit,
            "headers": inner.headers.iter().map(|h| header_json(h, None)).collect::<Vec<_>>(),
        }),
        Header::DestinationOptions(d) => json!({
            "type": "destination-options",
            "options": d.options.iter().map(|o| match o {
                DestOption::HomeAddress(a) => json!({"type": "home-address", "address": a.to_string()}),
                DestOption::Unknown { opt_type, data } => json!({
                    "type": "unknown", "option_type": opt_type, "data": hex::encode(data),
                }),
            }).collect::<Vec<_>>(),
        }),
        Header::Type2Routing(r) => json!({
            "type": "routing",
            "routing_type": 2,
            "segments_left": r.segments_left,
            "home_address": r.home_address.to_string(),
        }),
        Header::Routing {
            routing_type,
            segments_left,
            len,
        } => json!({
            "type": "routing",
            "routing_type": routing_type,
            "segments_left": segments_left,
            "length": len,
        }),
        Header::Fragment(f) => json!({
            "type": "fragment",
            "offset": f.fragment_offset,
            "more": f.more_fragments,
            "identification": f.identification,
        }),
        Header::Mobility {
            repr, checksum_ok, ..
        } => mobility_json(repr, *checksum_ok, auth),
        Header::Icmpv6 { repr, checksum_ok } => icmpv6_json(repr, *checksum_ok),
        Header::Upper { protocol, len } => json!({
            "type": upper_name(*protocol),
            "protocol": protocol,
            "length": len,
        }),
    }
}

/// The verdict over several candidate keys: valid when any of them verifies, so that one
/// decode of a capture can check the bindings of several MN/CN pairs at once.
fn auth_for(raw: &[u8], packet: &Packet, keys: &[[u8; 20]]) -> Option<AuthCheck> {
    let offset = mh_offset(packet)?;
    let mut verdict = None;
    for key in keys {
        match check_authenticator(raw, packet, offset, key)? {
            AuthCheck::Valid => return Some(AuthCheck::Valid),
            AuthCheck::Invalid => verdict = Some(AuthCheck::Invalid),
        }
    }
    verdict
}

/// One packet as a JSON object (see mip6ctl(8) for the keys).
pub fn render_json(index: usize, raw: &[u8], packet: &Packet, keys: &[[u8; 20]]) -> Value {
    let auth = auth_for(raw, packet, keys);
    let mut o = Map::new();
    o.insert("index".into(), json!(index));
    o.insert("ok".into(), json!(packet.error.is_none()));
    if let Some(e) = &packet.error {
        o.insert("error".into(), error_json(e));
    }
    o.insert("src".into(), json!(packet.ip.src.to_string()));
    o.insert("dst".into(), json!(packet.ip.dst.to_string()));
    o.insert("hop_limit".into(), json!(packet.ip.hop_limit));
    o.insert(
        "headers".into(),
        Value::Array(
            packet
                .headers
                .iter()
                .map(|h| header_json(h, auth))
                .collect(),
        ),
    );
    Value::Object(o)
}

/// A packet that is not IPv6 at all, or whose link layer could not be peeled.
pub fn render_json_unreadable(index: usize, kind: &str, detail: &str) -> Value {
    json!({"index": index, "ok": false, "error": {"kind": kind, "detail": detail}, "headers": []})
}

fn header_text(h: &Header) -> String {
    match h {
        Header::HopByHop { len } => format!("Hop-by-Hop Options ({len} bytes)"),
        Header::Tunnel(inner) => {
            let mut s = format!(
                "IPv6-in-IPv6 {} -> {}, hop limit {}",
                inner.ip.src, inner.ip.dst, inner.ip.hop_limit
            );
            for h in &inner.headers {
                // Nested lines, indented one level deeper than the outer headers.
                let _ = write!(s, "\n    {}", header_text(h).replace('\n', "\n  "));
            }
            s
        }
        Header::DestinationOptions(d) => format!("{d}"),
        Header::Type2Routing(r) => format!("{r}"),
        Header::Routing {
            routing_type,
            segments_left,
            len,
        } => format!("Routing type {routing_type}, segments left {segments_left} ({len} bytes)"),
        Header::Fragment(f) => format!("{f}"),
        Header::Mobility {
            repr, checksum_ok, ..
        } => format!(
            "{repr} [checksum {}]",
            if *checksum_ok { "ok" } else { "BAD" }
        ),
        Header::Icmpv6 { repr, checksum_ok } => format!(
            "{repr} [checksum {}]",
            if *checksum_ok { "ok" } else { "BAD" }
        ),
        Header::Upper { protocol, len } => {
            format!(
                "{} payload, {len} bytes",
                upper_name(*protocol).to_uppercase()
            )
        }
    }
}

/// One packet for a person: a summary line, then one line per header.
pub fn render_text(packet: &Packet, auth: Option<AuthCheck>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "IPv6 {} -> {}, hop limit {}, payload {} bytes",
        packet.ip.src, packet.ip.dst, packet.ip.hop_limit, packet.ip.payload_len
    );
    if let Some((src, dst)) = final_addresses(packet) {
        let _ = writeln!(s, "  as delivered: {src} -> {dst}");
    }
    for h in &packet.headers {
        let _ = writeln!(s, "  {}", header_text(h));
    }
    if let Some(a) = auth {
        let _ = writeln!(s, "  authenticator {}", auth_text(a));
    }
    if let Some(e) = &packet.error {
        let _ = writeln!(s, "  malformed: {e}");
    }
    s
}

/// Text rendering with the authenticator checked when a key is given.
pub fn render_text_checked(raw: &[u8], packet: &Packet, keys: &[[u8; 20]]) -> String {
    render_text(packet, auth_for(raw, packet, keys))
}

/// The final addresses a receiver would use, shown when they differ from the header's.
fn final_addresses(packet: &Packet) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let (s, d) = (packet.final_src(), packet.final_dst());
    (s != packet.ip.src || d != packet.ip.dst).then_some((s, d))
}
