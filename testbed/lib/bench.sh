# shellcheck shell=bash
# `testbed/run bench-datapath`: what the user data path costs, measured on the testbed with
# the daemons of `testbed/run mipv6` (whose pieces it reuses) and m6-netbench:
#   - UDP echo round trips (128 bytes) client -> MN: direct to the MN's care-of address
#     (no Mobile IPv6 processing: the baseline, same hosts and hops as route optimisation),
#     to the home address through ha1's tunnel, and route-optimised;
#   - TCP throughput client -> MN over the same three paths;
#   - ha1's Binding Update -> Binding Acknowledgement rate with many mobile nodes, sent
#     from the router's namespace, and ha1's CPU time per BU.
# With M6_BENCH_PERF=1, `perf record` samples ha1 during the tunnel TCP run and the BU
# flood; the reports land in the run directory.

M6_BENCH_QUICK=${M6_BENCH_QUICK:-0}
M6_BENCH_PERF=${M6_BENCH_PERF:-0}

# UDP/TCP ports of the echo server and the sink on the MN.
M6_BENCH_UDP_PORT=7101
M6_BENCH_TCP_PORT=7102

# netbench NODE ARGS...: m6-netbench inside NODE.
netbench() {
  local node=$1
  shift
  ip netns exec "$(m6_ns "$node")" "$(m6_bin m6-netbench)" "$@"
}

# bench_servers_start ADDR...: UDP echo (on each ADDR) and TCP sink on the MN.
bench_servers_start() {
  local dir
  dir=$(m6_run_dir)
  # Not through netbench(): $! must be the server itself, for bench_servers_stop.
  ip netns exec "$(m6_ns mn)" "$(m6_bin m6-netbench)" udp-echo-server \
    --bind "$(IFS=,; echo "$*")" --port $M6_BENCH_UDP_PORT --idle-secs 60 &
  echo $! >"$dir/udp-server.job"
  ip netns exec "$(m6_ns mn)" "$(m6_bin m6-netbench)" tcp-sink --port $M6_BENCH_TCP_PORT --idle-secs 60 &
  echo $! >"$dir/tcp-sink.job"
  # Until both listen: on a loaded host a fixed pause was sometimes too short, and the
  # first client was refused.
  local i
  for i in $(seq 50); do
    ip netns exec "$(m6_ns mn)" ss -Hln "( sport = :$M6_BENCH_UDP_PORT or sport = :$M6_BENCH_TCP_PORT )" |
      grep -q ":$M6_BENCH_TCP_PORT" &&
      ip netns exec "$(m6_ns mn)" ss -Hlun "sport = :$M6_BENCH_UDP_PORT" | grep -q . && return
    sleep 0.1
  done
}

bench_servers_stop() {
  local dir j pid
  dir=$(m6_run_dir)
  for j in udp-server tcp-sink; do
    pid=$(cat "$dir/$j.job" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$dir/$j.job"
  done
}

# bench_udp NAME ADDR: one latency series; the JSON goes to $dir/udp-NAME.json.
bench_udp() {
  local name=$1 addr=$2 dir
  dir=$(m6_run_dir)
  netbench client udp-echo-client --to "$addr" --port $M6_BENCH_UDP_PORT \
    --count "$M6_BENCH_SAMPLES" --size 128 >"$dir/udp-$name.json" ||
    echo '{"error": "udp-echo-client failed"}' >"$dir/udp-$name.json"
}

# bench_tcp NAME ADDR [PERF-NODE]: one throughput run, optionally profiling a daemon.
bench_tcp() {
  local name=$1 addr=$2 prof=${3:-} dir ppid=""
  dir=$(m6_run_dir)
  if [ -n "$prof" ]; then
    perf record -g -o "$dir/perf-$name.data" -p "$(cat "$dir/$prof.job")" -- sleep "$M6_BENCH_SECS" \
      >/dev/null 2>&1 &
    ppid=$!
  fi
  netbench client tcp-source --to "$addr" --port $M6_BENCH_TCP_PORT --seconds "$M6_BENCH_SECS" \
    >"$dir/tcp-$name.json" || echo '{"error": "tcp-source failed"}' >"$dir/tcp-$name.json"
  if [ -n "$ppid" ]; then
    wait "$ppid"
    perf report -i "$dir/perf-$name.data" --no-children --stdio --percent-limit 1.5 \
      --sort symbol 2>/dev/null | grep -v '^$' >"$dir/perf-$name.txt"
  fi
}

# bench_field FILE KEY: one number from a JSON file ("?" when missing).
bench_field() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], '?'))" "$1" "$2" 2>/dev/null || echo '?'
}

# The table: latency per path against the direct one, divided by the nfqueue traversals
# of a round trip (4 on both the tunnel and the route-optimised path, see README), and
# throughput against plain routing.
bench_table() {
  local dir=$1
  python3 - "$dir" <<'EOF'
import json, sys, os
d = sys.argv[1]
def load(f):
    try:
        return json.load(open(os.path.join(d, f)))
    except Exception:
        return {}
paths = [("direct (client -> CoA, no MIPv6)", "direct", 0),
         ("HA tunnel (client -> HoA via ha1)", "tunnel", 4),
         ("route optimised (client -> HoA, RH2/HAO)", "ro", 4)]
base = load("udp-direct.json").get("median_us")
print("UDP echo round trip, 128 B payload")
print(f"{'path':44} {'samples':>8} {'median µs':>10} {'p99 µs':>9} {'added µs':>9} {'per traversal':>14}")
for label, key, trav in paths:
    u = load(f"udp-{key}.json")
    m, p = u.get("median_us"), u.get("p99_us")
    added = per = ""
    if trav and m is not None and base is not None:
        added = f"{m - base:.1f}"
        per = f"{(m - base) / trav:.1f} ({trav}x)"
    print(f"{label:44} {u.get('samples', '?'):>8} {m if m is not None else '?':>10} {p if p is not None else '?':>9} {added:>9} {per:>14}")
print()
tbase = load("tcp-direct.json").get("mbit_per_s")
print("TCP throughput, one connection client -> MN")
print(f"{'path':44} {'Mbit/s':>10} {'vs plain routed':>16}")
for label, key, _ in paths:
    t = load(f"tcp-{key}.json").get("mbit_per_s")
    ratio = f"{100 * t / tbase:.0f} %" if t is not None and tbase else ""
    print(f"{label:44} {t if t is not None else '?':>10} {ratio:>16}")
bu = load("bu-flood.json")
if bu:
    print()
    print(f"Home agent BU -> BA, {bu.get('mns')} mobile nodes, {bu.get('window')} BUs in flight")
    print(f"{'phase':20} {'BAs':>7} {'seconds':>9} {'BAs/s':>9} {'ha1 CPU µs/BU':>14}")
    for p in bu.get("phases", []):
        print(f"{p['phase']:20} {p['acks']:>7} {p['seconds']:>9} {p['acks_per_s']:>9} {str(p.get('daemon_cpu_us_per_bu')):>14}")
EOF
}

cmd_bench_datapath() {
  local dir conf="$M6_ROOT/conf" coa cn ha f1 mns
  # As in cmd_mipv6: every step runs and the table shows what was measured; the check at
  # the end fails the run when a number is missing.
  set +e
  command -v python3 >/dev/null || m6_die "python3 not found: apt-get install python3"
  command -v ip6tables >/dev/null || m6_die "ip6tables not found: apt-get install iptables"
  command -v ipset >/dev/null || m6_die "ipset not found: apt-get install ipset"
  if [ "$M6_BENCH_PERF" = 1 ]; then
    perf stat -e instructions true >/dev/null 2>&1 || m6_die "perf does not work here: apt-get install linux-perf"
  fi
  m6_bin m6-netbench >/dev/null
  if [ "$M6_BENCH_QUICK" = 1 ]; then
    M6_BENCH_SAMPLES=200 M6_BENCH_SECS=1 mns=200
  else
    M6_BENCH_SAMPLES=${M6_BENCH_SAMPLES:-5000} M6_BENCH_SECS=${M6_BENCH_SECS:-10} mns=${M6_BENCH_MNS:-5000}
  fi
  # shellcheck disable=SC2034 # read by cmd_up (testbed/run)
  M6_RA=1
  cmd_up
  dir=$(m6_run_dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  # From here on, whatever fails, the testbed comes down.
  trap 'bench_servers_stop; mip6d_stop mn; mip6d_stop client; mip6d_stop ha1; M6_QUIET=1 cmd_down' EXIT
  M6_HOA=$(m6_state_get M6_MN_HOME_ADDR)
  ha=$(m6_state_get M6_HA1_ADDR)
  cn=$(m6_state_get M6_CLIENT_ADDR)
  f1=$(m6_state_get M6_FOREIGN1_PREFIX)
  # The tunnel is measured with route optimisation off on the MN.
  sed 's/^DoRouteOptimizationMN enabled;/DoRouteOptimizationMN disabled;/' "$conf/mn.conf" >"$dir/mn-noro.conf"

  cmd_move mn foreign1
  mip6d_start ha1 "$conf/ha1.conf"
  mip6d_start client "$conf/cn.conf"
  mip6d_start mn "$dir/mn-noro.conf"
  m6_wait 15 mn_coa_in "${f1%::/64}:" && coa=$(mn_coa)
  [ -n "${coa:-}" ] || m6_die "the MN found no care-of address on foreign1"
  m6_wait 15 ha_has_binding "$coa" || m6_die "the MN did not register with ha1"
  m6_log "MN registered: $M6_HOA -> $coa"

  bench_servers_start "$coa" "$M6_HOA"
  bench_udp direct "$coa"
  bench_tcp direct "$coa"
  bench_udp tunnel "$M6_HOA"
  bench_tcp tunnel "$M6_HOA" "$([ "$M6_BENCH_PERF" = 1 ] && echo ha1)"
  ! mn_bound_to "$cn" "$coa" || m6_die "the MN bound to the client with route optimisation off"
  bench_servers_stop

  # Route optimisation: the MN again, with it on; traffic to the client starts it.
  mip6d_stop mn
  mip6d_start mn "$conf/mn.conf"
  m6_wait 15 ha_has_binding "$coa" || m6_die "the MN did not register again"
  bench_servers_start "$M6_HOA"
  ip netns exec "$(m6_ns client)" ping -6 -c 2 -i 0.2 -W 1 "$M6_HOA" >/dev/null 2>&1
  if m6_wait 20 mn_bound_to "$cn" "$coa"; then
    bench_udp ro "$M6_HOA"
    bench_tcp ro "$M6_HOA"
  else
    m6_log "no route optimisation binding with the client: RO not measured"
  fi
  bench_servers_stop

  # The BU flood: ha1 alone; the router sends, from care-of addresses local to it.
  mip6d_stop mn
  mip6d_stop client
  ip -n "$(m6_ns router)" -6 route add local 2001:db8:f0::/64 dev lo
  local ppid=""
  if [ "$M6_BENCH_PERF" = 1 ]; then
    perf record -g -o "$dir/perf-bu.data" -p "$(cat "$dir/ha1.job")" >/dev/null 2>&1 &
    ppid=$!
  fi
  netbench router bu-flood --ha "$ha" --home-prefix "$(m6_state_get M6_HOME_PREFIX | sed 's|/64||')" \
    --coa-prefix 2001:db8:f0:: --mns "$mns" --refreshes 2 --pid "$(cat "$dir/ha1.job")" \
    >"$dir/bu-flood.json" || echo '{}' >"$dir/bu-flood.json"
  if [ -n "$ppid" ]; then
    kill -INT "$ppid"
    wait "$ppid"
    perf report -i "$dir/perf-bu.data" --no-children --stdio --percent-limit 1.5 \
      --sort symbol 2>/dev/null | grep -v '^$' >"$dir/perf-bu.txt"
  fi

  echo "bench-datapath on $(uname -r), $(nproc) cores, $(date -u +%Y-%m-%d); $M6_BENCH_SAMPLES samples, ${M6_BENCH_SECS} s TCP; --tunnel ${M6_TUNNEL:-queue}"
  echo
  bench_table "$dir"
  [ "$M6_BENCH_PERF" = 1 ] && echo && echo "profiles: $dir/perf-*.txt"
  trap - EXIT
  mip6d_stop ha1
  M6_QUIET=1 cmd_down
  # Every number must be there: a smoke run that measured nothing fails.
  python3 - "$dir" <<'EOF'
import json, os, sys
d = sys.argv[1]
for f in ["udp-direct", "udp-tunnel", "udp-ro"]:
    assert json.load(open(os.path.join(d, f + ".json"))).get("median_us") is not None, f
for f in ["tcp-direct", "tcp-tunnel", "tcp-ro"]:
    assert json.load(open(os.path.join(d, f + ".json"))).get("mbit_per_s") is not None, f
bu = json.load(open(os.path.join(d, "bu-flood.json")))
assert bu["phases"] and all(p["accepted"] == p["sent"] for p in bu["phases"]), "BU flood"
EOF
}
