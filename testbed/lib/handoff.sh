# shellcheck shell=bash
# `testbed/run handoff`: the seed's handoff experiment on the testbed. mip6d runs as home
# agent (ha1), as the client's correspondent node, and on sn1 as the contact node that
# registers the DSA with ha1 (conf/contact.conf); m6-ds-server runs the donor on
# sn1, the acceptor on sn2 and the client. Each download of SIZE bytes from the DSA is
# handed from sn1 to sn2 at half; the client is redirected by Mobile IPv6 (a binding for
# the DSA with care-of address sn2), never by a route.

# Tcp counters of the client's namespace that a reset moves.
m6_client_resets() {
  ip netns exec "$(m6_ns client)" cat /proc/net/snmp /proc/net/netstat | python3 -c '
import sys
lines = sys.stdin.read().splitlines()
c = {}
for head, vals in zip(lines[0::2], lines[1::2]):
    p = head.split(":")[0]
    for k, v in zip(head.split()[1:], vals.split()[1:]):
        c[p + k] = int(v)
print(c["TcpEstabResets"] + c["TcpOutRsts"] + c.get("TcpExtTCPAbortOnData", 0))'
}

cmd_handoff() {
  local count=5 size=1000000 drain=off datapath=${M6_DATAPATH:-user}
  while [ $# -gt 0 ]; do
    case $1 in
      --count) count=${2:?--count needs a number}; shift 2 ;;
      --size) size=${2:?--size needs a number of bytes}; shift 2 ;;
      --drain) drain=${2:?--drain needs off, on or auto}; shift 2 ;;
      --datapath) datapath=${2:?--datapath needs user or kernel}; shift 2 ;;
      *) m6_die "handoff: unknown argument '$1' (--count N --size BYTES --drain off|on|auto --datapath user|kernel)" ;;
    esac
  done
  [[ $count =~ ^[1-9][0-9]*$ ]] || m6_die "handoff: --count $count: a positive number"
  [[ $size =~ ^[0-9]+$ ]] && [ "$size" -ge 2000 ] || m6_die "handoff: --size $size: at least 2000 bytes"
  case $drain in off | on | auto) ;; *) m6_die "handoff: --drain $drain: off, on or auto" ;; esac
  case $datapath in
    user) ;;
    kernel | auto)
      m6_die "handoff: --datapath $datapath is not supported yet: the acceptor's per-connection binding exists on the user data path only (and this kernel has no CONFIG_IPV6_MIP6)" ;;
    *) m6_die "handoff: --datapath $datapath: user or kernel" ;;
  esac
  M6_DATAPATH=user
  command -v python3 >/dev/null || m6_die "python3 not found: apt-get install python3"
  command -v ip6tables >/dev/null || m6_die "ip6tables not found: apt-get install iptables"
  command -v ipset >/dev/null || m6_die "ipset not found: apt-get install ipset"
  command -v nft >/dev/null || m6_die "nft not found: apt-get install nftables"
  local ds dir conf="$M6_ROOT/conf" dsa ha sn1 sn2 gw key port=8000 cport=7780 fail=0
  ds=$(m6_bin m6-ds-server)
  cmd_up
  dir=$(m6_run_dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  dsa=$(m6_state_get M6_DSA_ADDR)
  ha=$(m6_state_get M6_HA1_ADDR)
  sn1=$(m6_state_get M6_SN1_ADDR)
  sn2=$(m6_state_get M6_SN2_ADDR)
  gw=$(m6_state_get M6_ROUTER_SN2NET_ADDR)
  key="$dir/shared.key"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key")

  # The acceptor owns the DSA too; what it sends from the DSA gets a 24-byte Home Address
  # option, so it is sized for that (a rule, not a host route: the rewritten packet
  # leaves from sn2 and is routed again).
  ip -n "$(m6_ns sn2)" addr add "$dsa/128" dev lo nodad
  ip -n "$(m6_ns sn2)" -6 rule add from "$dsa" lookup 4242
  ip -n "$(m6_ns sn2)" -6 route add default via "$gw" mtu 1476 table 4242

  mip6d_start ha1 "$conf/ha1.conf"
  mip6d_start client "$conf/cn.conf"
  mip6d_start sn1 "$conf/contact.conf"
  m6_wait 15 sh -c "'$(m6_bin mip6ctl)' bc --socket '$dir/ha1.sock' 2>/dev/null | grep -q '$sn1'" ||
    m6_die "ha1 never registered the DSA for sn1 (logs in $dir)"

  ip netns exec "$(m6_ns sn2)" "$ds" acceptor --dsa "$dsa" --care-of "$sn2" \
    --listen "[$sn2]:$cport" --port "$port" --count "$count" --size "$size" --key-file "$key" \
    >"$dir/acceptor.json" 2>"$dir/acceptor.log" &
  local apid=$!
  ip netns exec "$(m6_ns sn1)" "$ds" donor --dsa "$dsa" --home-agent "$ha" --care-of "$sn1" \
    --to "[$sn2]:$cport" --port "$port" --count "$count" --size "$size" --drain "$drain" \
    --key-file "$key" >"$dir/donor.json" 2>"$dir/donor.log" &
  local dpid=$!
  m6_wait 5 sh -c "grep -q listening '$dir/donor.log' && grep -q listening '$dir/acceptor.log'" ||
    m6_die "m6-ds-server did not start (logs in $dir)"
  local resets_before resets_after
  resets_before=$(m6_client_resets)
  # One connection at a time; the acceptor deletes the client's binding after each, and
  # the next one reaches sn1 again once the client's mip6d has processed that.
  local run
  for run in $(seq 0 $((count - 1))); do
    m6_wait 5 sh -c "! '$(m6_bin mip6ctl)' bc --socket '$dir/client.sock' 2>/dev/null | grep -q '$sn2'" || true
    ip netns exec "$(m6_ns client)" "$ds" client --dsa "$dsa" --port "$port" --count 1 \
      --first "$run" --size "$size" >>"$dir/client.json" 2>>"$dir/client.log" || fail=1
  done
  wait "$dpid" || fail=1
  wait "$apid" || fail=1
  resets_after=$(m6_client_resets)

  python3 - "$dir" "$((resets_after - resets_before))" "$size" "$drain" <<'PY' || fail=1
import json, sys, statistics
d, resets, size, drain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def load(name):
    try:
        return [json.loads(l) for l in open(f"{d}/{name}") if l.strip()]
    except OSError:
        return []
donor, acc, client = load("donor.json"), load("acceptor.json"), load("client.json")
names = ["socket extraction", "state transfer", "socket re-creation", "return routability",
         "BU construction", "binding management", "socket activation"]
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
ok = [r for r in donor if "phases_us" in r]
print(f"handoff: {len(client)} downloads of {size} bytes from the DSA, handed off sn1 -> sn2 at half (drain {drain})")
if ok:
    print(f"{'phase':<22} {'median ms':>10} {'p95 ms':>10}")
    for i, n in enumerate(names):
        xs = [r["phases_us"][i] for r in ok if r["phases_us"][i] is not None]
        if xs:
            print(f"{i+1} {n:<20} {statistics.median(xs)/1e3:>10.3f} {pct(xs, 95)/1e3:>10.3f}")
    tot = [sum(x for x in r["phases_us"] if x is not None) for r in ok]
    print(f"{'  total':<22} {statistics.median(tot)/1e3:>10.3f} {pct(tot, 95)/1e3:>10.3f}")
    ht = [r["home_test_us"] for r in ok]
    print(f"{'  home test (before)':<22} {statistics.median(ht)/1e3:>10.3f} {pct(ht, 95)/1e3:>10.3f}")
    sb = [r["state_bytes"] for r in ok]
    print(f"state bytes: median {statistics.median(sb):.0f}, min {min(sb)}, max {max(sb)}")
def spans(rows, who):
    names, by = [], {}
    for r in rows:
        for n, us in r.get("spans_us", []):
            if n not in by:
                names.append(n)
                by[n] = []
            by[n].append(us)
    for n in names:
        xs = by[n]
        print(f"  {who} {n:<20} {statistics.median(xs)/1e3:>10.3f} {pct(xs, 95)/1e3:>10.3f}")
if ok:
    print(f"{'finer spans':<29} {'median ms':>10} {'p95 ms':>10}")
    spans(ok, "donor   ")
    spans(acc, "acceptor")
# The pause lies where the donor stopped transmitting: byte size/2 - unsent (the
# acceptor sends the never-sent tail first). Gap: the last read holding only bytes up
# to there -> the first read holding any byte after it.
gaps = []
for i, c in enumerate(client):
    d = donor[i] if i < len(donor) else {}
    reads = c.get("reads") or []
    if "unsent" not in d or not reads:
        continue
    edge = size // 2 - d["unsent"]
    j = next((k for k, (end, _) in enumerate(reads) if end > edge), None)
    if j is not None:
        gaps.append(reads[j][1] - (reads[j - 1][1] if j > 0 else 0))
if gaps:
    print(f"client-perceived gap: median {statistics.median(gaps)/1e3:.3f} ms, p95 {pct(gaps, 95)/1e3:.3f} ms, max {max(gaps)/1e3:.3f} ms")
bad = 0
for i, c in enumerate(client):
    a = acc[i] if i < len(acc) else {}
    up = a.get("request_and_upload_intact")
    good = c.get("intact") and not c.get("error") and up
    bad += not good
    print(f"run {i}: sha256 {'intact' if c.get('intact') else 'CORRUPT'}"
          f"{', request+upload intact' if up else ', request/upload NOT intact'}"
          f", BU seq {a.get('bu_sequence', '?')}{'' if not c.get('error') else ', error: ' + c['error']}")
for r in donor:
    if "error" in r:
        print(f"donor run {r['run']}: {r['error']}")
        bad += 1
print(f"resets seen by the client: {resets}")
sys.exit(1 if bad or resets or len(client) == 0 else 0)
PY
  local node
  for node in sn1 client ha1; do mip6d_stop "$node" || true; done
  if [ "$fail" != 0 ]; then
    echo "handoff: FAILED; logs in $dir" >&2
    M6_QUIET=1 cmd_down
    return 1
  fi
  M6_QUIET=1 cmd_down
}
