"""Builds Mobile IPv6 packets with scapy and prints, one JSON object per line, the packet
bytes and the fields scapy says it encoded, in the key names of `mip6ctl decode --json`.

The expected values are read back from scapy's own dissection of the bytes it built, so
they are scapy's understanding of the wire, not ours. Scapy's defaults are wrong in places
(Nonce Indices and Binding Authorization Data lengths default to 16, the DHAAD R bit to 1),
so every field that matters is set explicitly.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import IPv6, raw  # noqa: E402
from scapy.layers import inet6 as s  # noqa: E402

HOA = "2001:db8:1::1234"
COA = "2001:db8:2::abcd"
CN = "2001:db8:3::1"
HA = "2001:db8:1::1"


def bu_flags(v):
    # scapy's 7-bit flag field lists bits from least significant: P R M K L H A.
    return {letter: bool(v & (1 << i)) for i, letter in enumerate("PRMKLHA")}


def ba_flags(v):
    return {letter: bool(v & (1 << i)) for i, letter in enumerate("PRK")}


def mh_options(mh):
    out = []
    for o in mh.options:
        if isinstance(o, (s.Pad1, s.PadN)):
            continue
        if isinstance(o, s.MIP6OptBRAdvice):
            out.append({"type": "binding-refresh-advice", "refresh_interval_units": o.rinter})
        elif isinstance(o, s.MIP6OptAltCoA):
            out.append({"type": "alternate-care-of-address", "address": o.acoa})
        elif isinstance(o, s.MIP6OptNonceIndices):
            out.append({"type": "nonce-indices", "home_nonce_index": o.hni,
                        "care_of_nonce_index": o.coni})
        elif isinstance(o, s.MIP6OptBindingAuthData):
            out.append({"type": "binding-authorization-data",
                        "authenticator": "%024x" % o.authenticator})
        elif isinstance(o, s.MIP6OptMobNetPrefix):
            out.append({"type": "mobile-network-prefix", "prefix_length": o.plen,
                        "prefix": o.prefix})
    return out


def expect_mh(mh):
    e = {"type": "mobility", "checksum_ok": True}
    if isinstance(mh, s.MIP6MH_BU):
        e.update(mh_type="binding-update", sequence=mh.seq, flags=bu_flags(int(mh.flags)),
                 lifetime_units=mh.mhtime, lifetime_seconds=4 * mh.mhtime)
    elif isinstance(mh, s.MIP6MH_BA):
        e.update(mh_type="binding-acknowledgement", status=mh.status,
                 flags=ba_flags(int(mh.flags)), sequence=mh.seq, lifetime_units=mh.mhtime)
    # scapy derives CoTI/CoT from HoTI/HoT, so the care-of classes are tested first.
    elif isinstance(mh, s.MIP6MH_CoTI):
        e.update(mh_type="care-of-test-init", care_of_init_cookie=mh.cookie.hex())
    elif isinstance(mh, s.MIP6MH_HoTI):
        e.update(mh_type="home-test-init", home_init_cookie=mh.cookie.hex())
    elif isinstance(mh, s.MIP6MH_CoT):
        e.update(mh_type="care-of-test", care_of_nonce_index=mh.index,
                 care_of_init_cookie=mh.cookie.hex(), care_of_keygen_token=mh.token.hex())
    elif isinstance(mh, s.MIP6MH_HoT):
        e.update(mh_type="home-test", home_nonce_index=mh.index,
                 home_init_cookie=mh.cookie.hex(), home_keygen_token=mh.token.hex())
    elif isinstance(mh, s.MIP6MH_BE):
        e.update(mh_type="binding-error", status=mh.status, home_address=mh.ha)
    elif isinstance(mh, s.MIP6MH_BRR):
        e.update(mh_type="binding-refresh-request")
    e["options"] = mh_options(mh) if hasattr(mh, "options") else []
    return e


def expect_icmp(m):
    if isinstance(m, s.ICMPv6HAADRequest):
        return {"type": "icmpv6", "icmp_type": "haad-request", "identifier": m.id,
                "flags": {"R": bool(m.R)}, "checksum_ok": True}
    if isinstance(m, s.ICMPv6HAADReply):
        return {"type": "icmpv6", "icmp_type": "haad-reply", "identifier": m.id,
                "flags": {"R": bool(m.R)}, "home_agents": list(m.addresses),
                "checksum_ok": True}
    if isinstance(m, s.ICMPv6MPSol):
        return {"type": "icmpv6", "icmp_type": "mobile-prefix-solicitation",
                "identifier": m.id, "checksum_ok": True}
    if isinstance(m, s.ICMPv6MPAdv):
        # scapy's 2-bit flag field: bit 1 = M, bit 0 = O.
        return {"type": "icmpv6", "icmp_type": "mobile-prefix-advertisement",
                "identifier": m.id, "flags": {"M": bool(m.flags & 2), "O": bool(m.flags & 1)},
                "checksum_ok": True}
    if isinstance(m, (s.ICMPv6ND_NS, s.ICMPv6ND_NA)):
        opts = []
        o = m.payload
        while o is not None and o.name != "NoPayload":
            if isinstance(o, s.ICMPv6NDOptDstLLAddr):
                opts.append({"type": "target-link-layer-address",
                             "address": o.lladdr.replace(":", "")})
            elif isinstance(o, s.ICMPv6NDOptSrcLLAddr):
                opts.append({"type": "source-link-layer-address",
                             "address": o.lladdr.replace(":", "")})
            o = o.payload
        view = {"type": "icmpv6", "target": m.tgt, "options": opts, "checksum_ok": True}
        if isinstance(m, s.ICMPv6ND_NS):
            view["icmp_type"] = "neighbor-solicitation"
        else:
            view["icmp_type"] = "neighbor-advertisement"
            view["flags"] = {"R": bool(m.R), "S": bool(m.S), "O": bool(m.O)}
        return view
    if isinstance(m, s.ICMPv6ND_RA):
        opts = []
        o = m.payload
        while o is not None and o.name != "NoPayload":
            if isinstance(o, s.ICMPv6NDOptPrefixInfo):
                opts.append({"type": "prefix-information", "prefix_length": o.prefixlen,
                             "flags": {"L": bool(o.L), "A": bool(o.A), "R": bool(o.R)},
                             "valid_lifetime": o.validlifetime,
                             "preferred_lifetime": o.preferredlifetime, "prefix": o.prefix})
            elif isinstance(o, s.ICMPv6NDOptAdvInterval):
                opts.append({"type": "advertisement-interval", "interval_ms": o.advint})
            elif isinstance(o, s.ICMPv6NDOptHAInfo):
                opts.append({"type": "home-agent-information", "preference": o.pref,
                             "lifetime": o.lifetime})
            o = o.payload
        return {"type": "icmpv6", "icmp_type": "router-advertisement", "hop_limit": m.chlim,
                "flags": {"M": bool(m.M), "O": bool(m.O), "H": bool(m.H)},
                "router_lifetime": m.routerlifetime, "reachable_time": m.reachabletime,
                "retrans_timer": m.retranstimer, "options": opts, "checksum_ok": True}
    raise ValueError(type(m))


def expect(pkt):
    """scapy's own dissection of the built bytes, as `mip6ctl decode --json` keys."""
    p = IPv6(raw(pkt))
    headers = []
    layer = p.payload
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, s.IPv6ExtHdrDestOpt):
            headers.append({"type": "destination-options", "options": [
                {"type": "home-address", "address": o.hoa}
                for o in layer.options if isinstance(o, s.HAO)]})
        elif isinstance(layer, s.IPv6ExtHdrRouting):
            headers.append({"type": "routing", "routing_type": layer.type,
                            "segments_left": layer.segleft,
                            "home_address": layer.addresses[0]})
        elif isinstance(layer, s._MobilityHeader):
            headers.append(expect_mh(layer))
            break
        elif isinstance(layer, s._ICMPv6):
            headers.append(expect_icmp(layer))
            break
        layer = layer.payload
    return {"ok": True, "src": p.src, "dst": p.dst, "hop_limit": p.hlim, "headers": headers}


def nonce(hni, coni):
    return s.MIP6OptNonceIndices(olen=4, hni=hni, coni=coni)


def bad(auth):
    return s.MIP6OptBindingAuthData(olen=12, authenticator=auth)


def hao(addr=HOA):
    return s.IPv6ExtHdrDestOpt(options=[s.HAO(hoa=addr)])


def rh2(addr=HOA):
    return s.IPv6ExtHdrRouting(type=2, segleft=1, addresses=[addr])


PACKETS = {
    "bu-home-registration": IPv6(src=COA, dst=HA) / hao() / s.MIP6MH_BU(
        seq=0x1234, flags="AHK", mhtime=105, options=[s.MIP6OptAltCoA(acoa=COA)]),
    "bu-to-cn-with-auth": IPv6(src=COA, dst=CN) / hao() / s.MIP6MH_BU(
        seq=0x1234, flags="A", mhtime=105,
        options=[nonce(1, 2), bad(0xf3e88882171e7571638b3a9e)]),
    "bu-mobile-router-prefix": IPv6(src=COA, dst=HA, hlim=17) / hao() / s.MIP6MH_BU(
        seq=65535, flags="AHR", mhtime=0xffff,
        options=[s.MIP6OptMobNetPrefix(plen=48, prefix="2001:db8:77::"),
                 s.MIP6OptBRAdvice(rinter=60)]),
    "ba-accepted": IPv6(src=HA, dst=COA) / rh2() / s.MIP6MH_BA(
        status=0, flags="K", seq=0x1234, mhtime=100,
        options=[s.MIP6OptBRAdvice(rinter=95)]),
    "ba-sequence-out-of-window": IPv6(src=CN, dst=COA) / rh2() / s.MIP6MH_BA(
        status=135, flags=0, seq=9, mhtime=0),
    "hoti": IPv6(src=HOA, dst=CN) / s.MIP6MH_HoTI(cookie=bytes(range(1, 9))),
    "coti": IPv6(src=COA, dst=CN) / s.MIP6MH_CoTI(cookie=bytes(range(0xa0, 0xa8))),
    "hot": IPv6(src=CN, dst=HOA) / s.MIP6MH_HoT(
        index=0x0102, cookie=bytes(range(1, 9)), token=bytes.fromhex("5dbdab0c8779b6ae")),
    "cot": IPv6(src=CN, dst=COA) / s.MIP6MH_CoT(
        index=0xfffe, cookie=bytes(range(0xa0, 0xa8)),
        token=bytes.fromhex("ff660007f1168468")),
    "be-unknown-binding": IPv6(src=CN, dst=COA) / s.MIP6MH_BE(status=1, ha=HOA),
    "be-unknown-mh-type": IPv6(src=CN, dst=COA) / s.MIP6MH_BE(status=2, ha=HOA),
    "brr": IPv6(src=CN, dst=COA) / rh2() / s.MIP6MH_BRR(),
    "haad-request": IPv6(src=COA, dst="2001:db8:1::fdff:ffff:ffff:fffe")
    / s.ICMPv6HAADRequest(id=0x4242, R=0),
    "haad-request-nemo": IPv6(src=COA, dst="2001:db8:1::fdff:ffff:ffff:fffe")
    / s.ICMPv6HAADRequest(id=7, R=1),
    "haad-reply": IPv6(src=HA, dst=COA)
    / s.ICMPv6HAADReply(id=0x4242, R=0, addresses=[HA, "2001:db8:1::2"]),
    "mps": IPv6(src=COA, dst=HA) / hao() / s.ICMPv6MPSol(id=99),
    "mpa": IPv6(src=HA, dst=COA) / rh2() / s.ICMPv6MPAdv(id=99, flags=2),
    "ns-dad": IPv6(src="::", dst="ff02::1:ff00:1234", hlim=255) / s.ICMPv6ND_NS(tgt=HOA),
    "na-proxy": IPv6(src="fe80::1", dst="ff02::1", hlim=255)
    / s.ICMPv6ND_NA(R=1, S=0, O=1, tgt=HOA)
    / s.ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01"),
    "ra-home-agent": IPv6(src="fe80::1", dst="ff02::1", hlim=255)
    / s.ICMPv6ND_RA(chlim=64, M=0, O=1, H=1, prf=0, routerlifetime=1800,
                    reachabletime=30000, retranstimer=1000)
    / s.ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, R=1, validlifetime=86400,
                              preferredlifetime=14400, prefix=HA)
    / s.ICMPv6NDOptAdvInterval(advint=3000)
    / s.ICMPv6NDOptHAInfo(pref=10, lifetime=1800),
}

if __name__ == "__main__":
    for name, pkt in PACKETS.items():
        print(json.dumps({"name": name, "hex": raw(pkt).hex(), "expect": expect(pkt)}))
    sys.stdout.flush()
