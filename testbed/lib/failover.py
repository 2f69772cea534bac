#!/usr/bin/env python3
"""Helpers of `testbed/run failover` (testbed/lib/failover.sh).

serve NAME PORT
    A TCP server on [::]:PORT that answers every connection with NAME and a newline: run
    in each member's namespace, it tells the client which node holds the DSA.

measure --kill PID... --mip6ctl PATH --ha-socket PATH --dsa ADDR --port N --old NAME
        --old-coa ADDR --names COA=NAME... [--timeout S]
    Run in the client's namespace. Kills the PIDs (SIGKILL) and from that instant measures
    (1) until ha1's binding for the DSA (`mip6ctl bc --json`, polled every 5 ms) has a
    care-of address other than OLD-COA, and (2) until a NEW TCP connection to [DSA]:PORT is
    answered by a node other than OLD: a fresh non-blocking connect every 10 ms, all in
    flight at once, so the first one sent after the binding moved is the one that counts.
    Prints one JSON object; exit 1 if either did not happen within the timeout.
"""
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time


def serve(name, port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(128)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        try:
            c.sendall((name + "\n").encode())
        except OSError:
            pass
        c.close()


def find_binding(doc, dsa):
    if isinstance(doc, dict):
        if doc.get("home_address") == dsa:
            return doc.get("care_of_address")
        doc = list(doc.values())
    if isinstance(doc, list):
        for x in doc:
            r = find_binding(x, dsa)
            if r:
                return r
    return None


def measure(a):
    result = {}
    deadline_s = a["timeout"]
    t0 = time.monotonic()
    for pid in a["kill"]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done = threading.Event()

    def poll_binding():
        while not done.is_set() and time.monotonic() - t0 < deadline_s:
            try:
                out = subprocess.run(
                    [a["mip6ctl"], "bc", "--json", "--socket", a["ha_socket"]],
                    capture_output=True, timeout=2, check=False).stdout
                coa = find_binding(json.loads(out or b"null"), a["dsa"])
            except (subprocess.TimeoutExpired, ValueError):
                coa = None
            if coa and coa != a["old_coa"]:
                result["binding_ms"] = round((time.monotonic() - t0) * 1000, 1)
                result["binding_coa"] = coa
                result["binding_node"] = a["names"].get(coa, "?")
                return
            time.sleep(0.005)

    th = threading.Thread(target=poll_binding)
    th.start()
    sel = selectors.DefaultSelector()
    next_try = t0
    started = 0
    while time.monotonic() - t0 < deadline_s and "connect_ms" not in result:
        now = time.monotonic()
        if now >= next_try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((a["dsa"], a["port"]))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                s = None
            if s is not None:
                sel.register(s, selectors.EVENT_READ, now)
                started += 1
            next_try = now + 0.01
        for key, _ in sel.select(timeout=max(0.0, next_try - time.monotonic())):
            s = key.fileobj
            try:
                data = s.recv(64)
            except OSError:
                data = b""
            sel.unregister(s)
            s.close()
            name = data.decode(errors="replace").strip()
            if name and name != a["old"]:
                result["connect_ms"] = round((time.monotonic() - t0) * 1000, 1)
                result["connect_sent_ms"] = round((key.data - t0) * 1000, 1)
                result["server"] = name
                break
        # Give up on attempts older than a second (their SYN went to the dead contact).
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            if now - key.data > 1.0:
                sel.unregister(key.fileobj)
                key.fileobj.close()
    th.join(timeout=deadline_s)
    done.set()
    result["attempts"] = started
    print(json.dumps(result), flush=True)
    return 0 if "binding_ms" in result and "connect_ms" in result else 1


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return 0
    if len(sys.argv) >= 2 and sys.argv[1] == "measure":
        a = {"kill": [], "names": {}, "timeout": 10.0}
        it = iter(sys.argv[2:])
        for flag in it:
            if flag == "--kill":
                a["kill"].append(int(next(it)))
            elif flag == "--names":
                coa, name = next(it).split("=", 1)
                a["names"][coa] = name
            elif flag == "--port":
                a["port"] = int(next(it))
            elif flag == "--timeout":
                a["timeout"] = float(next(it))
            else:
                a[flag[2:].replace("-", "_")] = next(it)
        return measure(a)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
