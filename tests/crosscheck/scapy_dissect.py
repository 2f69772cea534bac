"""Reads IPv6 packets in hex, one per line, dissects each with scapy and prints one JSON
object per line: scapy's view of the fields (in `mip6ctl decode --json` key names, see
scapy_build.expect) and whether scapy computes the same MH / ICMPv6 checksum.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scapy.all import IPv6, raw  # noqa: E402
from scapy.layers import inet6 as s  # noqa: E402

from scapy_build import expect  # noqa: E402


def checksum_matches(data):
    """Recomputes the MH / ICMPv6 checksum with scapy's in6_chksum, which takes the
    pseudo-header addresses from the HAO and RH2 itself."""
    p = IPv6(data)
    layer = p
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, s.IPv6ExtHdrDestOpt):
            # in6_chksum only recognises a HAO that is the header's sole option, as scapy
            # builds it; a dissected header also lists the padding in front of it.
            layer.options = [o for o in layer.options if not isinstance(o, (s.Pad1, s.PadN))]
        if isinstance(layer, (s._MobilityHeader, s._ICMPv6)):
            zeroed = bytearray(raw(layer))
            offset = 2 if isinstance(layer, s._ICMPv6) else 4
            zeroed[offset:offset + 2] = b"\0\0"
            nh = 58 if isinstance(layer, s._ICMPv6) else 135
            return s.in6_chksum(nh, layer, bytes(zeroed)) == layer.cksum
        layer = layer.payload
    return None


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    data = bytes.fromhex(line)
    out = {"view": expect(IPv6(data)), "checksum_matches": checksum_matches(data),
           "reencoded_same": raw(IPv6(data)) == data}
    print(json.dumps(out))
