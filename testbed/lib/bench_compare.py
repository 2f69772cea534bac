#!/usr/bin/env python3
"""Compares two `testbed/run bench-datapath` run directories (user data path, kernel data
path): UDP echo round trip medians and TCP throughput per path, and kernel/user ratios.
Exit status 1 when a number is missing from either run."""
import json
import os
import sys


def load(d, f):
    try:
        with open(os.path.join(d, f)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def main():
    user, kernel = sys.argv[1], sys.argv[2]
    paths = [("direct (no MIPv6)", "direct"), ("HA tunnel", "tunnel"), ("route optimised", "ro")]
    missing = False
    print("kernel vs user data path (home agent, mobile node and correspondent on each)")
    print(f"{'UDP echo RTT median':28} {'user µs':>9} {'kernel µs':>10} {'kernel/user':>12}")
    for label, key in paths:
        u = load(user, f"udp-{key}.json").get("median_us")
        k = load(kernel, f"udp-{key}.json").get("median_us")
        missing |= u is None or k is None
        ratio = f"{k / u:.2f}" if u and k is not None else "?"
        print(f"{label:28} {u if u is not None else '?':>9} {k if k is not None else '?':>10} {ratio:>12}")
    print(f"{'TCP throughput':28} {'user Mb/s':>9} {'kernel Mb/s':>10} {'kernel/user':>12}")
    for label, key in paths:
        u = load(user, f"tcp-{key}.json").get("mbit_per_s")
        k = load(kernel, f"tcp-{key}.json").get("mbit_per_s")
        missing |= u is None or k is None
        ratio = f"{k / u:.2f}" if u and k is not None else "?"
        print(f"{label:28} {u if u is not None else '?':>9} {k if k is not None else '?':>10} {ratio:>12}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
