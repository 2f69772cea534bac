#!/usr/bin/env python3
"""One TCP transfer with a checksum, for `testbed/run mipv6`.

  tcpxfer.py recv ADDR PORT OUT        accept one connection on [ADDR]:PORT, read to EOF,
                                       write "sha256 bytes" (or "error WHAT") to OUT;
                                       OUT.ready appears once it listens
  tcpxfer.py send ADDR PORT BYTES SECS send BYTES pseudo-random bytes to [ADDR]:PORT spread
                                       over SECS seconds; print "sha256 bytes" (or
                                       "error WHAT" and exit 1)
"""
import hashlib
import random
import socket
import sys
import time


def recv(addr, port, out):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1)
    # The sender waits for this file: on a loaded machine starting python can take longer
    # than any fixed pause, and a SYN before listen() is answered with a reset.
    open(out + ".ready", "w").close()
    s.settimeout(60)
    try:
        c, _ = s.accept()
        c.settimeout(60)
        h, n = hashlib.sha256(), 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        result = f"{h.hexdigest()} {n}"
    except OSError as e:
        result = f"error {e!r}"
    with open(out, "w") as f:
        f.write(result + "\n")


def send(addr, port, size, secs):
    size, secs = int(size), float(secs)
    rng = random.Random(6275)
    h, sent = hashlib.sha256(), 0
    chunk = 32768
    start = time.monotonic()
    try:
        c = socket.create_connection((addr, int(port)), timeout=30)
        c.settimeout(60)
        while sent < size:
            b = rng.randbytes(min(chunk, size - sent))
            c.sendall(b)
            h.update(b)
            sent += len(b)
            ahead = start + secs * sent / size - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        c.shutdown(socket.SHUT_WR)
        # Wait for the receiver to close: the whole stream was acknowledged and read.
        c.recv(1)
        c.close()
    except OSError as e:
        print(f"error {e!r}")
        sys.exit(1)
    print(f"{h.hexdigest()} {sent}")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    {"recv": recv, "send": send}[mode](*rest)
