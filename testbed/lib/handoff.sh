# shellcheck shell=bash
# `testbed/run handoff`: the seed's handoff experiment on the testbed, run by mip6d. mip6d
# runs as home agent (ha1), as the client's correspondent node, on sn1 as the contact
# node that registers the DSA with ha1 (conf/contact.conf) and on sn2, each server node
# with a `DistributedServer` block (m6_ds_conf). The server application is
# `m6-ds-server app` on sn1 and sn2: it passes its socket to the local mip6d at half
# (SCM_RIGHTS, `mip6d::dsapp`), and sn2's receives the restored socket and finishes the
# download. The client is redirected by Mobile IPv6 (a binding for the DSA with care-of
# address sn2), never by a route.

# The DistributedServer block's name, control port and service port.
M6_DS_NAME=dsa
M6_DS_CPORT=7780
M6_DS_PORT=8000

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

# m6_ds_conf NODE_ID ROLE LOCAL PEER_ID PEER_ADDR PEER_ROLE KEY DRAIN: a DistributedServer
# block for one server node.
m6_ds_conf() {
  local dir
  dir=$(m6_run_dir)
  cat <<EOF
DistributedServer "$M6_DS_NAME" {
	Address $(m6_state_get M6_DSA_ADDR);
	HomeAgentAddress $(m6_state_get M6_HA1_ADDR);
	NodeId $1;
	Role $2;
	LocalAddress $3;
	Peers {
		Peer $4 $5 $6;
	}
	SharedKeyFile "$7";
	StateFile "$dir/ds-state-$1";
	ControlPort $M6_DS_CPORT;
	HandoffDrain $8;
}
EOF
}

# m6_ds_app_socket NODE: the application socket of NODE's mip6d.
m6_ds_app_socket() { echo "$(m6_run_dir)/$1-ds-$M6_DS_NAME.sock"; }

# m6_ds_up DRAIN [KEY_SN2]: mip6d on ha1, the client, sn1 (contact) and sn2 (snode), sn2
# owning the DSA on lo; waits until ha1 holds the DSA's registration. KEY_SN2: another
# shared key file for sn2 (a node that does not hold the group's key).
m6_ds_up() {
  local drain=$1 dir conf="$M6_ROOT/conf" dsa sn1 sn2 gw key
  dir=$(m6_run_dir)
  dsa=$(m6_state_get M6_DSA_ADDR)
  sn1=$(m6_state_get M6_SN1_ADDR)
  sn2=$(m6_state_get M6_SN2_ADDR)
  gw=$(m6_state_get M6_ROUTER_SN2NET_ADDR)
  key="$dir/shared.key"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key")
  # The acceptor owns the DSA too; what it sends from the DSA gets a 24-byte Home Address
  # option, so it is sized for that (a rule, not a host route: the rewritten packet
  # leaves from sn2 and is routed again).
  # On the kernel data path the kernel delivers a Type 2 Routing Header's segments only
  # to an address flagged as a home address (ipv6_chk_home_addr).
  ip -n "$(m6_ns sn2)" addr add "$dsa/128" dev lo nodad $([ "${M6_DS_DATAPATH:-user}" = kernel ] && echo home)
  ip -n "$(m6_ns sn2)" -6 rule add from "$dsa" lookup 4242
  ip -n "$(m6_ns sn2)" -6 route add default via "$gw" mtu 1476 table 4242
  { cat "$conf/contact.conf"; m6_ds_conf 1 contact "$sn1" 2 "$sn2" snode "$key" "$drain"; } >"$dir/sn1.conf"
  # The acceptor's per-connection binding takes the client's Mobility Headers for the
  # connection: no correspondent-node data path beside it (--no-datapath). --datapath
  # picks that binding: netfilter queues (user) or XFRM (kernel).
  { echo "NodeConfig CN;"; m6_ds_conf 2 snode "$sn2" 1 "$sn1" contact "${2:-$key}" "$drain"; } >"$dir/sn2.conf"
  mip6d_start ha1 "$conf/ha1.conf"
  mip6d_start client "$conf/cn.conf"
  mip6d_start sn1 "$dir/sn1.conf"
  ip netns exec "$(m6_ns sn2)" "$(m6_bin mip6d)" -f -d 1 -c "$dir/sn2.conf" --no-datapath --datapath "${M6_DS_DATAPATH:-user}" \
    --control-socket "$dir/sn2.sock" --pid-file "$dir/sn2.pid" </dev/null >"$dir/sn2.log" 2>&1 &
  echo $! >"$dir/sn2.job"
  m6_wait 15 sh -c "'$(m6_bin mip6ctl)' bc --socket '$dir/ha1.sock' 2>/dev/null | grep -q '$sn1'" ||
    m6_die "ha1 never registered the DSA for sn1 (logs in $dir)"
  m6_wait 5 test -S "$(m6_ds_app_socket sn1)" -a -S "$(m6_ds_app_socket sn2)" ||
    m6_die "mip6d on sn1/sn2 has no application socket (logs in $dir)"
}

m6_ds_down() {
  local node
  for node in sn2 sn1 client ha1; do mip6d_stop "$node" || true; done
}

# m6_ds_app NODE NAME ARGS...: `m6-ds-server app` in NODE's namespace, output in
# app-NAME.json and app-NAME.log of the run directory; its pid in app-NAME.pid. Waits
# until it is registered with mip6d.
m6_ds_app() {
  local node=$1 name=$2 dir
  shift 2
  dir=$(m6_run_dir)
  ip netns exec "$(m6_ns "$node")" "$(m6_bin m6-ds-server)" app \
    --socket "$(m6_ds_app_socket "$node")" --dsa "$(m6_state_get M6_DSA_ADDR)" \
    --port "$M6_DS_PORT" "$@" >"$dir/app-$name.json" 2>"$dir/app-$name.log" &
  echo $! >"$dir/app-$name.pid"
  m6_wait 5 grep -qs registered "$dir/app-$name.log" ||
    m6_die "m6-ds-server app on $node did not register (logs in $dir)"
}

m6_ds_app_stop() {
  local pid
  pid=$(cat "$(m6_run_dir)/app-$1.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# m6_ds_download RUN SIZE [CLIENT_ARGS...]: one download from the DSA (into download.json),
# once the client's binding to sn2 from the previous one is gone.
m6_ds_download() {
  local run=$1 size=$2 dir
  shift 2
  dir=$(m6_run_dir)
  m6_wait 5 sh -c "! '$(m6_bin mip6ctl)' bc --socket '$dir/client.sock' 2>/dev/null | grep -q '$(m6_state_get M6_SN2_ADDR)'" || true
  ip netns exec "$(m6_ns client)" "$(m6_bin m6-ds-server)" client --dsa "$(m6_state_get M6_DSA_ADDR)" \
    --port "$M6_DS_PORT" --count 1 --first "$run" --size "$size" "$@" \
    >>"$dir/download.json" 2>>"$dir/download.log"
}

# m6_ds_collect: appends what sn1's and sn2's mip6d recorded (`mip6ctl handoffs --json`,
# 64 handoffs kept each) to handoffs.json.
m6_ds_collect() {
  local node
  for node in sn1 sn2; do
    m6ctl "$node" handoffs --json 2>/dev/null |
      python3 -c 'import json,sys
for h in json.load(sys.stdin).get("handoffs", []):
    h["node_name"] = sys.argv[1]; print(json.dumps(h))' "$node" >>"$(m6_run_dir)/handoffs.json" || true
  done
}

# m6_ds_report SIZE DRAIN RESETS: the phase table, state bytes, the client's gap and
# every run's result from the run directory; non-zero on a corrupt, reset or failed run.
m6_ds_report() {
  python3 - "$(m6_run_dir)" "$3" "$1" "$2" <<'PY'
import json, os, sys, statistics
d, resets, size, drain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def load(name):
    try:
        return [json.loads(l) for l in open(f"{d}/{name}") if l.strip()]
    except OSError:
        return []
client = load("download.json")
apps = [a for f in sorted(os.listdir(d)) if f.startswith("app-") and f.endswith(".json") for a in load(f)]
seen, out, inc = set(), [], []
for h in load("handoffs.json"):
    k = (h["node_name"], h["id"], h["direction"])
    if k not in seen and not h["state"].startswith("running"):
        seen.add(k)
        (out if h["direction"] == "out" else inc).append(h)
names = ["socket extraction", "state transfer", "socket re-creation", "return routability",
         "BU construction", "binding management", "socket activation"]
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
ok = [h for h in out if h["state"] == "completed"]
print(f"handoff: {len(client)} downloads of {size} bytes from the DSA through mip6d on sn1/sn2 (drain {drain}); "
      f"{len(ok)} of {len(out)} handoffs completed")
for back in (False, True):
    rows = [h for h in ok if (h["node_name"] == "sn2") == back]
    if not rows:
        continue
    print(f"{'phase (' + ('sn2 -> sn1' if back else 'sn1 -> sn2') + ')':<24} {'median ms':>10} {'p95 ms':>10}")
    for i, n in enumerate(names):
        xs = [r["phases_us"][i] for r in rows if r["phases_us"][i] is not None]
        if xs:
            print(f"{i+1} {n:<22} {statistics.median(xs)/1e3:>10.3f} {pct(xs, 95)/1e3:>10.3f}")
    tot = [r["total_us"] for r in rows]
    print(f"{'  total':<24} {statistics.median(tot)/1e3:>10.3f} {pct(tot, 95)/1e3:>10.3f}")
    ht = [r["home_test_us"] for r in rows if r.get("home_test_us")]
    if ht:
        print(f"{'  home test (before)':<24} {statistics.median(ht)/1e3:>10.3f} {pct(ht, 95)/1e3:>10.3f}")
    sb = [r["state_bytes"] for r in rows]
    print(f"state bytes: median {statistics.median(sb):.0f}, min {min(sb)}, max {max(sb)}")
    # The finer spans, the donor's on this node, the acceptor's on the other.
    acc = [h for h in inc if h["state"] == "completed" and (h["node_name"] == "sn1") == back]
    for who, rs in (("donor   ", rows), ("acceptor", acc)):
        order, by = [], {}
        for r in rs:
            for n, us in r.get("spans_us") or []:
                if n not in by:
                    order.append(n)
                    by[n] = []
                by[n].append(us)
        for n in order:
            print(f"  {who} {n:<20} {statistics.median(by[n])/1e3:>10.3f} {pct(by[n], 95)/1e3:>10.3f}")
last = {a["run"]: a for a in apps if a.get("last")}
# The pause lies where the donor stopped transmitting: byte size/2 - unsent (the
# acceptor sends the never-sent tail first). Gap: the last read holding only bytes up to
# there -> the first read holding any byte after it.
first_hop = {x["run"]: x for x in apps if x.get("hop") == 1}
by_id = {h["id"]: h for h in out if h["node_name"] == "sn1"}
gaps = []
for c in client:
    if last.get(c["run"], {}).get("hops") != 1:
        continue
    h = by_id.get(first_hop.get(c["run"], {}).get("id"), {})
    reads = c.get("reads") or []
    if h.get("unsent") is None or not reads:
        continue
    edge = size // 2 - h["unsent"]
    j = next((k for k, (end, _) in enumerate(reads) if end > edge), None)
    if j is not None:
        gaps.append(reads[j][1] - (reads[j - 1][1] if j > 0 else 0))
if gaps:
    print(f"client-perceived gap (sn1 -> sn2 at half): median {statistics.median(gaps)/1e3:.3f} ms, p95 {pct(gaps, 95)/1e3:.3f} ms, max {max(gaps)/1e3:.3f} ms")
bad = 0
for c in client:
    run = c["run"]
    a = last.get(run, {})
    up = a.get("request_and_upload_intact") and (c.get("uploaded") in (None, a.get("uploaded")))
    good = c.get("intact") and not c.get("error") and up
    bad += not good
    hops = [f"{x['to']}:{x['outcome']}" for x in apps if x.get("run") == run and "hop" in x]
    what = "sn1 -> sn2 -> sn1" if a.get("hops") == 2 else "sn1 -> sn2"
    during = f", {c['uploaded']} bytes uploaded during the download" if c.get("uploaded") is not None else ""
    print(f"run {run} ({what}): sha256 {'intact' if c.get('intact') else 'CORRUPT'}"
          f"{', request+upload intact' if up else ', request/upload NOT intact'}{during}"
          f", longest pause {c.get('stall_us', 0)/1e3:.3f} ms"
          f"{'' if not c.get('error') else ', error: ' + c['error']}"
          f"{'' if good else ' [handoffs: ' + ', '.join(hops) + ']'}")
for a in apps:
    if "error" in a:
        print(f"application, run {a['run']}: {a['error']}")
        bad += 1
for h in out:
    if h["state"] != "completed":
        print(f"{h['node_name']} handoff {h['id']} to node {h['node']}: {h['state']}")
print(f"resets seen by the client: {resets}")
sys.exit(1 if bad or resets or len(client) == 0 else 0)
PY
}

# m6_ds_kernel_checks MONITOR_PID: after a `--datapath kernel` run, with the daemons still
# up: the kernel installed and removed sn2's per-connection XFRM policies (`ip xfrm
# monitor`, printed as M6-XFRM lines), none is left, and sn2 has no NFQUEUE rule.
m6_ds_kernel_checks() {
  local dir ns fail=0 added deleted left queues
  dir=$(m6_run_dir)
  ns=$(m6_ns sn2)
  sleep 0.5
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  sed 's/^/M6-XFRM sn2 monitor: /' "$dir/sn2-xfrm-monitor"
  ip -n "$ns" xfrm policy list | sed 's/^/M6-XFRM sn2 policy after: /'
  ip -n "$ns" xfrm state list | sed 's/^/M6-XFRM sn2 state after: /'
  # Where packets went missing, if they did: the kernel's XFRM and IPv6 counters.
  local n
  for n in sn2 client; do
    ip netns exec "$(m6_ns "$n")" sh -c 'awk "\$2 != 0" /proc/net/xfrm_stat; grep -E "^Ip6(InAddrErrors|InHdrErrors|InNoRoutes|InDiscards|OutNoRoutes) " /proc/net/snmp6' |
      sed "s/^/M6-XFRM $n counter: /"
    ip -n "$(m6_ns "$n")" -s xfrm state list | grep -E "^src|proto|coa|bytes|packets|lastused" | sed "s/^/M6-XFRM $n state: /"
  done
  # The per-connection policy names the connection's ports: `sport 8000` (out).
  added=$(grep -v '^Deleted' "$dir/sn2-xfrm-monitor" | grep -c "proto tcp sport $M6_DS_PORT " || true)
  deleted=$(grep '^Deleted' "$dir/sn2-xfrm-monitor" | grep -c "proto tcp sport $M6_DS_PORT " || true)
  left=$(ip -n "$ns" xfrm policy list | grep -c "^src" || true)
  queues=$(ip netns exec "$ns" ip6tables-save 2>/dev/null | grep -c NFQUEUE || true)
  if [ "$added" -ge 1 ] && [ "$deleted" -eq "$added" ]; then
    echo "PASS sn2: $added per-connection XFRM policies (DSA:$M6_DS_PORT -> client, HAO) installed and removed"
  else
    echo "FAIL sn2: per-connection XFRM policies installed $added, removed $deleted"
    fail=1
  fi
  if [ "$left" -eq 0 ]; then
    echo "PASS sn2: no XFRM policy left once the connections ended"
  else
    echo "FAIL sn2: $left XFRM policies left"
    fail=1
  fi
  if [ "$queues" -eq 0 ]; then
    echo "PASS sn2: no NFQUEUE rule (the kernel, not mip6d, rewrote the handed-off segments)"
  else
    echo "FAIL sn2: $queues NFQUEUE rules"
    fail=1
  fi
  if [ "$(m6_node_datapath sn1)" = kernel ]; then
    # The contact node: the DSA's tunnel to ha1 is the kernel's, no queue rule.
    local tunnels
    queues=$(ip netns exec "$(m6_ns sn1)" ip6tables-save 2>/dev/null | grep -c NFQUEUE || true)
    tunnels=$(ip -n "$(m6_ns sn1)" -o link show type ip6tnl | grep -c ' ip6m' || true)
    if [ "$queues" -eq 0 ] && [ "$tunnels" -ge 1 ] && grep -q "mobile node .*: kernel data path" "$dir/sn1.log"; then
      echo "PASS sn1: the contact node's DSA on the kernel data path (ip6ip6 tunnel to ha1, no NFQUEUE rule)"
    else
      echo "FAIL sn1: NFQUEUE rules $queues, ip6ip6 tunnels $tunnels, kernel data path $(grep -c 'mobile node .*: kernel data path' "$dir/sn1.log")"
      fail=1
    fi
  fi
  return $fail
}

# m6_ds_capture_report DIR: what M6_HANDOFF_CAPTURE recorded, for a failed run: the
# donor's dumped and the acceptor's restored sequence numbers; for each dump, what the
# client, sn1 and sn2 saw of that connection from 0.3 s before to 2 s after it, near the
# dumped snd_nxt (absolute sequence numbers); every anomaly (reset, retransmission,
# duplicate ACK, D-SACK) on the service port.
m6_ds_capture_report() {
  local dir=$1 n line t cport una nxt from to lines=${M6_HANDOFF_CAPTURE_LINES:-150}
  grep -h -E "handoff [0-9]+: (dumped|restored)" "$dir/sn1.log" "$dir/sn2.log" | sed 's/^/   seqs: /'
  grep -h -E "handoff [0-9]+: dumped" "$dir/sn1.log" "$dir/sn2.log" | while read -r line; do
    t=$(date -d "${line%% *}" +%s.%N)
    cport=$(echo "$line" | sed -E 's/.*\]:([0-9]+): .*/\1/')
    una=$(echo "$line" | sed -E 's/.* snd_una ([0-9]+) .*/\1/')
    nxt=$(echo "$line" | sed -E 's/.* snd_nxt ([0-9]+) .*/\1/')
    from=$(awk -v t="$t" 'BEGIN {printf "%.6f", t - 0.3}')
    to=$(awk -v t="$t" 'BEGIN {printf "%.6f", t + 2}')
    echo "   capture: port $cport, dumped at $t with snd_una $una snd_nxt $nxt"
    for n in client sn1 sn2; do
      { tshark -n -r "$dir/$n.pcap" -t ud -o tcp.relative_sequence_numbers:FALSE \
        -Y "frame.time_epoch >= $from && frame.time_epoch <= $to && ((tcp.srcport == $M6_DS_PORT && tcp.dstport == $cport && tcp.seq + tcp.len >= $((nxt > 3000 ? nxt - 3000 : 0))) || (tcp.dstport == $M6_DS_PORT && tcp.srcport == $cport && tcp.ack >= $una))" \
        2>/dev/null || true; } | head -n "$lines" | sed "s/^/   capture $n: /" || true
    done
  done
  for n in client sn1 sn2; do
    { tshark -n -r "$dir/$n.pcap" -t ud -o tcp.relative_sequence_numbers:FALSE \
      -Y "tcp.port == $M6_DS_PORT && (tcp.flags.reset == 1 || tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.duplicate_ack || tcp.options.sack.dsack || tcp.analysis.ack_lost_segment || tcp.analysis.lost_segment)" \
      2>/dev/null || true; } | head -n "$lines" | sed "s/^/   capture $n anomaly: /" || true
  done
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
    # Every node on the kernel data path: ha1, the client, sn1 (the contact node: a
    # mobile node role for the DSA, its tunnel an ip6ip6 device) and sn2's
    # per-connection binding on XFRM. M6_DATAPATH_SN1=user puts the contact back on
    # the netfilter queues.
    kernel) ;;
    *) m6_die "handoff: --datapath $datapath: user or kernel" ;;
  esac
  M6_DATAPATH=$datapath M6_DS_DATAPATH=$datapath
  command -v python3 >/dev/null || m6_die "python3 not found: apt-get install python3"
  command -v ip6tables >/dev/null || m6_die "ip6tables not found: apt-get install iptables"
  command -v ipset >/dev/null || m6_die "ipset not found: apt-get install ipset"
  command -v nft >/dev/null || m6_die "nft not found: apt-get install nftables"
  m6_bin m6-ds-server >/dev/null
  local dir fail=0 run
  cmd_up
  dir=$(m6_run_dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  m6_ds_up "$drain"
  local monitor=
  if [ "$datapath" = kernel ]; then
    # What the kernel reports as sn2's per-connection objects come and go.
    ip -n "$(m6_ns sn2)" xfrm monitor >"$dir/sn2-xfrm-monitor" 2>&1 &
    monitor=$!
  fi
  local capture=
  if [ -n "${M6_HANDOFF_CAPTURE:-}" ]; then
    # Debugging: every download as the client, sn1 and sn2 saw it, printed when a run
    # fails.
    local n
    for n in client sn1 sn2; do
      m6_capture "$n" "$dir/$n.pcap" -i any
      capture="$capture $M6_CAPTURE_PID"
    done
  fi
  local resets_before resets_after
  resets_before=$(m6_client_resets)
  # COUNT downloads handed sn1 -> sn2 at half, the client uploading after its download;
  # then one handed sn1 -> sn2 -> sn1 at thirds, the client uploading all along.
  m6_ds_app sn2 sn2
  m6_ds_app sn1 sn1 --listen --route 2 --count "$count" --size "$size"
  for run in $(seq 0 $((count - 1))); do
    m6_ds_download "$run" "$size" || fail=1
    m6_ds_collect
  done
  m6_ds_app_stop sn1
  m6_ds_app sn1 sn1-back --listen --route 2,1 --count 1 --first "$count" --size "$size"
  m6_ds_download "$count" "$size" --upload-during || fail=1
  # sn1's application ends the last download; mip6d then releases its keeper.
  sleep 0.2
  m6_ds_collect
  resets_after=$(m6_client_resets)
  m6_ds_app_stop sn1-back
  m6_ds_app_stop sn2
  m6_ds_report "$size" "$drain" "$((resets_after - resets_before))" || fail=1
  # A frozen connection that sent past its dump (the donor dumped it again).
  grep -h "network lock did not hold" "$dir/sn1.log" "$dir/sn2.log" | sed 's/^/   donor: /' || true
  if [ "$datapath" = kernel ]; then
    m6_ds_kernel_checks "$monitor" || fail=1
  fi
  m6_ds_down
  if [ -n "$capture" ]; then
    # shellcheck disable=SC2086
    kill $capture 2>/dev/null
    # shellcheck disable=SC2086
    wait $capture 2>/dev/null
    [ "$fail" = 0 ] || m6_ds_capture_report "$dir"
  fi
  if [ "$fail" != 0 ]; then
    echo "handoff: FAILED; logs in $dir" >&2
    M6_QUIET=1 cmd_down
    return 1
  fi
  M6_QUIET=1 cmd_down
}
