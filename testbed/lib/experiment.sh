# shellcheck shell=bash
# `testbed/run experiment latency|table1|fig2|all [--quick]`: the seed's evaluation (§3.2)
# on the testbed with link emulation. Each experiment writes a CSV into
# $M6_RESULTS_DIR/<timestamp>/; lib/experiment.py turns the CSVs into report.md and SVG
# plots beside the seed's numbers.
#
# Where the seed's emulated paths are (testbed/README.md, "Experiments"):
#   LatCS1 — cnet, both directions: every client <-> server path crosses it once each way.
#   LatSS  — sn2net, both directions: ha1 and sn1 reach sn2 across it, so it is the path
#            between the member nodes (ha1 -> sn2 tunnel, sn1 -> sn2 state transfer).
#   inter-node bandwidth — sn1net and sn2net, direction up (node -> router): the seed
#            shaped what the server networks sent towards the NISTnet core.

M6_RESULTS_DIR=${M6_RESULTS_DIR:-$M6_ROOT/results}
M6_EXP_ACCEPT_MS=${M6_EXP_ACCEPT_MS:-20000}

# The progress line: one line per step, rewritten in place on a terminal.
exp_progress() {
  local what=$1 i=$2 n=$3 detail=$4 el=$((SECONDS - M6_EXP_T0))
  local line
  line=$(printf 'experiment: %-7s %3d/%-3d %3d%%  %d:%02d  %s' "$what" "$i" "$n" \
    $((n > 0 ? 100 * i / n : 100)) $((el / 60)) $((el % 60)) "$detail")
  if [ -t 2 ]; then
    printf '\r\033[K%s' "$line" >&2
    [ "$i" -lt "$n" ] || printf '\n' >&2
  else
    printf '%s\n' "$line" >&2
  fi
}

# On any exit while a testbed is up (a failed command, m6_die, ^C): daemons and namespaces
# go, the partial results stay.
exp_abort() {
  local rc=$?
  trap - EXIT
  [ "$rc" -eq 0 ] || echo "experiment: aborted (status $rc); partial results in ${M6_EXP_OUT:-?}" >&2
  M6_QUIET=1 cmd_down >/dev/null 2>&1 || true
  exit "$rc"
}

exp_up() {
  # Link emulation is not optional here: M6_EMULATOR=netem or user forces one, anything
  # else is auto.
  case $M6_EMULATOR in netem | user) ;; *) M6_EMULATOR=auto ;; esac
  M6_QUIET=1 cmd_up
  trap exp_abort EXIT
  rm -rf "$(m6_run_dir)"
  mkdir -p "$(m6_run_dir)"
  m6_state_get M6_EMULATOR >"$M6_EXP_OUT/emulator.txt"
}

exp_down() {
  M6_QUIET=1 cmd_down
  trap - EXIT
}

# exp_set_links CS1_MS SS_MS RATE_KBIT: the emulated paths (rate 0 = unlimited).
exp_set_links() {
  M6_QUIET=1 cmd_link cnet --delay "$1"
  M6_QUIET=1 cmd_link sn2net --delay "$2"
  M6_QUIET=1 cmd_link sn1net --dir up --rate "$3"
  M6_QUIET=1 cmd_link sn2net --dir up --rate "$3"
}

exp_has_binding() {
  "$(m6_bin mip6ctl)" bc --socket "$(m6_run_dir)/$1.sock" 2>/dev/null | grep -q "$2"
}

# --- latency (§3.2.1) ------------------------------------------------------------------------

# One configuration: NODE (sn1 or sn2) runs mip6d as the contact node, so ha1 tunnels the
# DSA's packets to it, and answers UDP echoes on the DSA. The client runs no mip6d: the
# seed measured without route optimisation, every packet goes through ha1.
exp_latency_config() {
  local config=$1 node=$2 dir conf addr dsa pair ss cs1 json
  dir=$(m6_run_dir)
  dsa=$(m6_state_get M6_DSA_ADDR)
  addr=$(m6_state_get "M6_$(m6_upper "$node")_ADDR")
  conf="$dir/contact-$node.conf"
  sed "s/\"sn1net\"/\"${node}net\"/" "$M6_ROOT/conf/contact.conf" >"$conf"
  mip6d_start "$node" "$conf"
  m6_wait 15 exp_has_binding ha1 "$addr" ||
    m6_die "experiment: ha1 never registered the DSA for $node (logs in $dir)"
  ip netns exec "$(m6_ns "$node")" "$(m6_bin m6-netbench)" udp-echo-server --bind "$dsa" \
    --port 7007 --idle-secs 60 >/dev/null 2>"$dir/echo-$node.log" &
  local epid=$!
  for pair in "${M6_EXP_PAIRS[@]}"; do
    ss=${pair%,*} cs1=${pair#*,}
    M6_EXP_STEP=$((M6_EXP_STEP + 1))
    exp_progress latency "$M6_EXP_STEP" "$M6_EXP_STEPS" "config $config ($node): LatSS $ss ms, LatCS1 $cs1 ms"
    exp_set_links "$cs1" "$ss" 0
    json=$(ip netns exec "$(m6_ns client)" "$(m6_bin m6-netbench)" udp-echo-client --to "$dsa" \
      --port 7007 --count "$M6_EXP_SAMPLES" --size 128 --warmup "$M6_EXP_WARMUP" 2>>"$dir/echo-client.log") ||
      json='{"error": "udp-echo-client failed"}'
    python3 "$M6_ROOT/lib/experiment.py" latency-row "$M6_EXP_OUT/latency.csv" "$config" "$ss" "$cs1" "$json"
  done
  kill "$epid" 2>/dev/null || true
  wait "$epid" 2>/dev/null || true
  mip6d_stop "$node" || true
  # The deregistration (or ha1's expiry) must be over before another node registers.
  m6_wait 10 sh -c "! '$(m6_bin mip6ctl)' bc --socket '$dir/ha1.sock' 2>/dev/null | grep -q '$addr'" || true
}

exp_latency() {
  local cs1 ss
  M6_EXP_PAIRS=()
  for ss in "${M6_EXP_SS[@]}"; do
    for cs1 in "${M6_EXP_CS1[@]}"; do M6_EXP_PAIRS+=("$ss,$cs1"); done
  done
  M6_EXP_STEP=0 M6_EXP_STEPS=$((2 * ${#M6_EXP_PAIRS[@]}))
  exp_up
  mip6d_start ha1 "$M6_ROOT/conf/ha1.conf"
  exp_latency_config 1 sn1
  exp_latency_config 2 sn2
  mip6d_stop ha1 || true
  exp_down
}

# --- the handoff engine (table1, fig2) --------------------------------------------------------
# The seam between the experiments and whatever performs the handoffs: exp_engine_start
# once per testbed, exp_engine_batch per measured point, exp_engine_stop. Today it runs
# m6-ds-server (donor on sn1, acceptor on sn2, client) as `testbed/run handoff` does; a
# batch leaves one JSON object per download in OUT.donor.json, OUT.acceptor.json and
# OUT.client.json (m6-ds-server's fields: phases_us, state_bytes, stall_us, intact, ...).

exp_engine_start() {
  local dir dsa gw sn1
  dir=$(m6_run_dir)
  dsa=$(m6_state_get M6_DSA_ADDR)
  sn1=$(m6_state_get M6_SN1_ADDR)
  gw=$(m6_state_get M6_ROUTER_SN2NET_ADDR)
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/shared.key")
  # As in `handoff`: the acceptor owns the DSA on lo, and what it sends from the DSA is
  # sized for the 24-byte Home Address option.
  ip -n "$(m6_ns sn2)" addr add "$dsa/128" dev lo nodad
  ip -n "$(m6_ns sn2)" -6 rule add from "$dsa" lookup 4242
  ip -n "$(m6_ns sn2)" -6 route add default via "$gw" mtu 1476 table 4242
  mip6d_start ha1 "$M6_ROOT/conf/ha1.conf"
  mip6d_start client "$M6_ROOT/conf/cn.conf"
  mip6d_start sn1 "$M6_ROOT/conf/contact.conf"
  m6_wait 15 exp_has_binding ha1 "$sn1" ||
    m6_die "experiment: ha1 never registered the DSA for sn1 (logs in $dir)"
}

exp_engine_stop() {
  local node
  for node in sn1 client ha1; do mip6d_stop "$node" || true; done
}

# exp_engine_batch OUT COUNT SIZE WAIT_MS: COUNT downloads of SIZE bytes, each handed off
# from sn1 to sn2 at half, WAIT_MS after the donor's last write. The protocol's default
# Offer -> Accept timeout (500 ms) is shorter than the state transfer at 2 Mbit/s and
# below (the seed measured 319-648 ms with its 90 kB; today's autotuned send buffer is
# larger), so the donor waits up to M6_EXP_ACCEPT_MS (default 20 s) here.
exp_engine_batch() {
  local out=$1 count=$2 size=$3 wait=$4 dir ds dsa sn2 key run port=8000 cport=7780 rc=0
  dir=$(m6_run_dir)
  ds=$(m6_bin m6-ds-server)
  dsa=$(m6_state_get M6_DSA_ADDR)
  sn2=$(m6_state_get M6_SN2_ADDR)
  key="$dir/shared.key"
  : >"$out.donor.log"
  : >"$out.acceptor.log"
  ip netns exec "$(m6_ns sn2)" "$ds" acceptor --dsa "$dsa" --care-of "$sn2" \
    --listen "[$sn2]:$cport" --port "$port" --count "$count" --size "$size" --key-file "$key" \
    ${M6_EXP_SEQ:+--sequence-after "$(m6_state_get M6_CLIENT_ADDR)=$M6_EXP_SEQ"} \
    >"$out.acceptor.json" 2>"$out.acceptor.log" &
  local apid=$!
  ip netns exec "$(m6_ns sn1)" "$ds" donor --dsa "$dsa" --home-agent "$(m6_state_get M6_HA1_ADDR)" \
    --care-of "$(m6_state_get M6_SN1_ADDR)" --to "[$sn2]:$cport" --port "$port" --count "$count" \
    --size "$size" --wait "$wait" --accept-timeout "$M6_EXP_ACCEPT_MS" --key-file "$key" >"$out.donor.json" 2>"$out.donor.log" &
  local dpid=$!
  m6_wait 5 sh -c "grep -q listening '$out.donor.log' && grep -q listening '$out.acceptor.log'" ||
    m6_die "experiment: m6-ds-server did not start (logs $out.*.log)"
  for run in $(seq 0 $((count - 1))); do
    # The acceptor removes the client's binding after each download; the next one must
    # reach sn1 again.
    m6_wait 5 sh -c "! '$(m6_bin mip6ctl)' bc --socket '$dir/client.sock' 2>/dev/null | grep -q '$sn2'" || true
    ip netns exec "$(m6_ns client)" "$ds" client --dsa "$dsa" --port "$port" --count 1 \
      --first "$run" --size "$size" >>"$out.client.json" 2>>"$out.client.log" || rc=1
  done
  wait "$dpid" || rc=1
  wait "$apid" || rc=1
  # The client remembers the last Binding Update's number even after the binding is
  # deleted, and the next batch's acceptor starts afresh: it must go on from there. The
  # deletion and its retransmissions used a few numbers after the one reported.
  local seq
  seq=$(python3 -c 'import json,sys
s=[json.loads(l).get("bu_sequence") for l in open(sys.argv[1]) if l.strip()]
s=[x for x in s if x is not None]
print((s[-1] + 8) % 65536 if s else "")' "$out.acceptor.json" 2>/dev/null) || seq=""
  [ -z "$seq" ] || M6_EXP_SEQ=$seq
  m6_wait 5 sh -c "! '$(m6_bin mip6ctl)' bc --socket '$dir/client.sock' 2>/dev/null | grep -q '$sn2'" || true
  return "$rc"
}

# exp_handoff_point NAME CSV RATE WAIT COUNT: one measured point, rows appended to CSV.
exp_handoff_point() {
  local name=$1 csv=$2 rate=$3 wait=$4 count=$5 out
  out="$(m6_run_dir)/$name-$rate-$wait"
  rm -f "$out".*
  exp_set_links 0 0 "$rate"
  exp_engine_batch "$out" "$count" "$M6_EXP_SIZE" "$wait" || M6_EXP_FAILED=1
  python3 "$M6_ROOT/lib/experiment.py" handoff-rows "$csv" "$out" "$rate" "$wait" || M6_EXP_FAILED=1
  cp "$out".*.log "$M6_EXP_OUT/logs/" 2>/dev/null || true
}

exp_table1() {
  local rate
  M6_EXP_STEP=0 M6_EXP_STEPS=${#M6_EXP_T1_RATES[@]}
  for rate in "${M6_EXP_T1_RATES[@]}"; do
    M6_EXP_STEP=$((M6_EXP_STEP + 1))
    exp_progress table1 "$M6_EXP_STEP" "$M6_EXP_STEPS" "$((rate / 1000)).$((rate % 1000 / 100)) Mbit/s: $M6_EXP_T1_COUNT downloads"
    exp_handoff_point table1 "$M6_EXP_OUT/table1.csv" "$rate" 0 "$M6_EXP_T1_COUNT"
  done
}

exp_fig2() {
  local rate wait
  M6_EXP_STEP=0 M6_EXP_STEPS=$((${#M6_EXP_F2_RATES[@]} * ${#M6_EXP_F2_WAITS[@]}))
  for rate in "${M6_EXP_F2_RATES[@]}"; do
    for wait in "${M6_EXP_F2_WAITS[@]}"; do
      M6_EXP_STEP=$((M6_EXP_STEP + 1))
      exp_progress fig2 "$M6_EXP_STEP" "$M6_EXP_STEPS" "$((rate / 1000)).$((rate % 1000 / 100)) Mbit/s, donor waits $wait ms: $M6_EXP_F2_COUNT downloads"
      exp_handoff_point fig2 "$M6_EXP_OUT/fig2.csv" "$rate" "$wait" "$M6_EXP_F2_COUNT"
    done
  done
}

exp_usage() {
  cat <<EOF
usage: testbed/run experiment latency|table1|fig2|all [--quick] [--samples N] [--count N]
                                                    [--max-wait MS]
  latency  UDP echo (128 bytes) to the DSA over a LatSS x LatCS1 grid, served by sn1
           (config 1) or by sn2 (config 2); fits X and Y (seed §3.2.1)
  table1   1 MB downloads handed off sn1 -> sn2 right after the 500 kB write, at
           100, 2, 1.5 and 1 Mbit/s between the nodes; the seven phases (seed Table 1)
  fig2     the same with the donor waiting 0..1000 ms (25 ms steps) before the handoff,
           at 2, 1.5 and 1 Mbit/s; client-perceived handoff time (seed Figure 2)
  --quick  a reduced grid (minutes): what CI runs
  --samples N   echo round trips per latency point (default 100, quick 20)
  --count N     downloads per table1/fig2 point (default 20 and 2, quick 1)
  --max-wait MS the longest donor wait of fig2 (default 1000; today's larger send
                buffers need longer than the seed's to drain at 1 Mbit/s)
results: \$M6_RESULTS_DIR (default testbed/results)/<timestamp>/: *.csv, *.svg, report.md
EOF
}

cmd_experiment() {
  local what="" quick=0 samples="" count="" maxwait="" rc=0
  while [ $# -gt 0 ]; do
    case $1 in
      latency | table1 | fig2 | all)
        [ -z "$what" ] || m6_die "experiment: one of latency, table1, fig2, all (got '$what' and '$1')"
        what=$1
        ;;
      --quick) quick=1 ;;
      --samples) samples=${2:?--samples needs a number}; shift ;;
      --count) count=${2:?--count needs a number}; shift ;;
      --max-wait) maxwait=${2:?--max-wait needs milliseconds}; shift ;;
      -h | --help) exp_usage; return 0 ;;
      *) exp_usage >&2; m6_die "experiment: unknown argument '$1'" ;;
    esac
    shift
  done
  [ -n "$what" ] || { exp_usage >&2; m6_die "experiment: which one? latency, table1, fig2 or all"; }
  for n in $samples $count $maxwait; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || m6_die "experiment: '$n' is not a positive number"
  done
  command -v python3 >/dev/null || m6_die "python3 not found: apt-get install python3"
  command -v gnuplot >/dev/null || m6_die "gnuplot not found: apt-get install gnuplot-nox"
  command -v ip6tables >/dev/null || m6_die "ip6tables not found: apt-get install iptables"
  command -v ipset >/dev/null || m6_die "ipset not found: apt-get install ipset"
  command -v nft >/dev/null || m6_die "nft not found: apt-get install nftables"
  # shellcheck disable=SC2034 # mip6d_start reads it
  M6_DATAPATH=user
  # Resolve every binary now, not halfway through.
  m6_bin mip6d >/dev/null
  m6_bin mip6ctl >/dev/null
  m6_bin m6-netbench >/dev/null
  m6_bin m6-ds-server >/dev/null

  M6_EXP_SIZE=1000000
  if [ "$quick" = 1 ]; then
    M6_EXP_SAMPLES=${samples:-20} M6_EXP_WARMUP=5
    M6_EXP_CS1=(0 20) M6_EXP_SS=(0 20)
    M6_EXP_T1_COUNT=${count:-1}
    M6_EXP_F2_COUNT=${count:-1}
    M6_EXP_F2_WAITS=(0 $((${maxwait:-1000} / 2)) "${maxwait:-1000}")
  else
    M6_EXP_SAMPLES=${samples:-100} M6_EXP_WARMUP=20
    M6_EXP_CS1=(0 10 20 40) M6_EXP_SS=(0 10 20 40)
    M6_EXP_T1_COUNT=${count:-20}
    M6_EXP_F2_COUNT=${count:-2}
    mapfile -t M6_EXP_F2_WAITS < <(seq 0 25 "${maxwait:-1000}")
  fi
  M6_EXP_T1_RATES=(100000 2000 1500 1000)
  M6_EXP_F2_RATES=(2000 1500 1000)
  M6_EXP_FAILED=0 M6_EXP_SEQ=""
  M6_EXP_T0=$SECONDS
  M6_EXP_OUT="$M6_RESULTS_DIR/$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$M6_EXP_OUT/logs"
  {
    echo "experiment=$what"
    echo "quick=$quick"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit=$(git -C "$M6_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "mip6d=$(m6_bin mip6d)"
    echo "size=$M6_EXP_SIZE"
    echo "samples=$M6_EXP_SAMPLES"
    echo "table1_count=$M6_EXP_T1_COUNT"
    echo "fig2_count=$M6_EXP_F2_COUNT"
  } >"$M6_EXP_OUT/meta.txt"

  case $what in latency | all) exp_latency ;; esac
  case $what in
    table1 | fig2 | all)
      exp_up
      exp_engine_start
      case $what in table1 | all) exp_table1 ;; esac
      case $what in fig2 | all) exp_fig2 ;; esac
      exp_engine_stop
      cp "$(m6_run_dir)"/*.log "$M6_EXP_OUT/logs/" 2>/dev/null || true
      exp_down
      ;;
  esac
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$M6_EXP_OUT/meta.txt"
  python3 "$M6_ROOT/lib/experiment.py" report "$M6_EXP_OUT" || rc=1
  [ "$M6_EXP_FAILED" = 0 ] || {
    echo "experiment: some downloads failed or were not intact (see $M6_EXP_OUT/report.md and logs/)" >&2
    rc=1
  }
  echo "experiment: results in $M6_EXP_OUT ($((SECONDS - M6_EXP_T0)) s)"
  return "$rc"
}
