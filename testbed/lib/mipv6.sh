# shellcheck shell=bash
# `testbed/run mipv6`: Mobile IPv6 end to end on the testbed, with mip6d as home agent (ha1),
# mobile node (mn) and correspondent node (client). Small pieces: start/stop a daemon, ask
# one over its control socket, wait for a condition, snapshot a node's kernel state, run a
# TCP transfer, capture on the router; cmd_mipv6 strings them into the six checks.

M6_DATAPATH=${M6_DATAPATH:-user}
# Per node: M6_DATAPATH_HA1, M6_DATAPATH_CLIENT, M6_DATAPATH_MN override M6_DATAPATH.

# m6_node_datapath NODE: the --datapath NODE's daemon gets.
m6_node_datapath() {
  local var
  var=M6_DATAPATH_$(m6_upper "$1")
  echo "${!var:-$M6_DATAPATH}"
}

# The binary NAME: $M6_MIP6D / $M6_MIP6CTL / $M6_NETBENCH (m6-netbench), else the build in
# target/ (release first).
m6_bin() {
  local name=$1 var d
  var=M6_$(m6_upper "${name#m6-}")
  var=${var//-/_}
  if [ -n "${!var:-}" ]; then
    echo "${!var}"
    return
  fi
  for d in "${CARGO_TARGET_DIR:-$M6_ROOT/../target}/release" "${CARGO_TARGET_DIR:-$M6_ROOT/../target}/debug"; do
    [ -x "$d/$name" ] && { echo "$d/$name"; return; }
  done
  m6_die "no $name binary: run 'cargo build' first, or set $var"
}

m6_run_dir() { echo "$M6_STATE_DIR/${M6_PREFIX}-mipv6"; }

# mip6d_start NODE CONF: mip6d in NODE's namespace, in the foreground of a background job.
mip6d_start() {
  local node=$1 conf=$2 dir
  dir=$(m6_run_dir)
  ip netns exec "$(m6_ns "$node")" "$(m6_bin mip6d)" -f -d 1 -c "$conf" \
    --datapath "$(m6_node_datapath "$node")" --tunnel "${M6_TUNNEL:-queue}" --control-socket "$dir/$node.sock" \
    --pid-file "$dir/$node.pid" </dev/null >"$dir/$node.log" 2>&1 &
  echo $! >"$dir/$node.job"
}

# mip6d_stop NODE: SIGTERM, and wait (5 s at most) for it to exit; its status is the
# function's.
mip6d_stop() {
  local node=$1 pid dir
  dir=$(m6_run_dir)
  pid=$(cat "$dir/$node.job" 2>/dev/null) || return 1
  kill -TERM "$pid" 2>/dev/null || return 1
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return; }
    sleep 0.1
  done
  return 1
}

# m6ctl NODE ARGS...: mip6ctl against NODE's daemon.
m6ctl() {
  local node=$1
  shift
  "$(m6_bin mip6ctl)" "$@" --socket "$(m6_run_dir)/$node.sock"
}

# m6_json NODE CMD PYEXPR: evaluates PYEXPR on the JSON answer (as `d`) and prints it.
m6_json() {
  m6ctl "$1" "$2" --json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($3)" 2>/dev/null
}

# m6_wait SECONDS CMD...: polls CMD every 0.1 s until it succeeds. SECONDS is multiplied
# by $M6_WAIT_SCALE (default 1): under software emulation (scripts/vm-test) everything is
# 10-30 times slower.
m6_wait() {
  local deadline=$((SECONDS + $1 * ${M6_WAIT_SCALE:-1}))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# m6_capture NODE PCAP TSHARK-ARGS...: starts tshark in NODE writing PCAP, in the
# background ($M6_CAPTURE_PID), and returns once it is capturing: under load tshark can
# take seconds to start, and packets sent before that are not in the file.
m6_capture() {
  local node=$1 pcap=$2
  shift 2
  ip netns exec "$(m6_ns "$node")" tshark -q "$@" -w "$pcap" >/dev/null 2>"$pcap.log" &
  M6_CAPTURE_PID=$!
  m6_wait 30 grep -q "Capturing on" "$pcap.log" || echo "tshark in $node did not start: $(cat "$pcap.log")" >&2
}

# The kernel objects a daemon may install, one listing per node (counters, RA lifetimes
# and neighbour states left out: they change on their own).
m6_snapshot() {
  local ns
  ns=$(m6_ns "$1")
  {
    echo "# ip6tables"
    # Rules and user-defined chains; an empty table (listing it creates it) is nothing.
    ip netns exec "$ns" ip6tables-save | grep -E '^-A|^:[^ ]+ - ' || true
    echo "# rules"
    ip -n "$ns" -6 rule show
    echo "# routes"
    ip -n "$ns" -6 route show table all | sed -E 's/ expires [0-9]+sec//; s/ hoplimit [0-9]+//' | sort
    echo "# addresses"
    ip -n "$ns" -6 -o addr show | awk '{print $2, $4}' | sort
    echo "# proxy neighbours"
    ip -n "$ns" -6 neigh show proxy
    echo "# SRv6 tunnel source"
    ip netns exec "$ns" ip sr tunsrc show 2>/dev/null || true
    echo "# proxy_ndp"
    # Read inside the namespace (/proc/sys/net is the reader's namespace's).
    ip netns exec "$ns" sh -c 'cat /proc/sys/net/ipv6/conf/*/proxy_ndp' 2>/dev/null | paste -sd' ' || true
    echo "# ip sets"
    ip netns exec "$ns" ipset save 2>/dev/null || true
    echo "# xfrm"
    ip -n "$ns" xfrm policy list 2>/dev/null | grep -v '^\s*lastused' || true
    ip -n "$ns" xfrm state list 2>/dev/null || true
    echo "# links"
    # ip6tnl0 is the kernel's fallback device, made in every namespace when ip6_tunnel
    # loads, not the daemon's.
    ip -n "$ns" -o link show | awk '{print $2}' | sed 's/@.*//; s/:$//' | grep -vx ip6tnl0 | sort
  }
}

# One result line; failures are counted in M6_FAILED.
m6_check() {
  local n=$1 what=$2 ok=$3 detail=${4:-}
  if [ "$ok" = 1 ]; then
    printf 'PASS %s %s\n' "$n" "$what"
  else
    printf 'FAIL %s %s%s\n' "$n" "$what" "${detail:+: $detail}"
    M6_FAILED=$((M6_FAILED + 1))
  fi
}

# spoof_send OUTER_SRC OUTER_DST INNER_SRC INNER_DST: one IPv6-in-IPv6 UDP packet from the
# MN's namespace through a raw socket (any source address).
spoof_send() {
  ip netns exec "$(m6_ns mn)" python3 - "$@" <<'PY'
import socket, struct, sys
osrc, odst, isrc, idst = (socket.inet_pton(socket.AF_INET6, a) for a in sys.argv[1:5])
udp = struct.pack("!HHHH", 40000, 9, 8 + 4, 0) + b"m6sp"
inner = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + isrc + idst + udp
outer = struct.pack("!IHBB", 6 << 28, len(inner), 41, 64) + osrc + odst + inner
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(outer, (sys.argv[2], 0))
PY
}

# tcp_transfer BYTES SECS [DURING...]: the client sends to the MN's home address; DURING
# (a command) runs one second into the transfer. Prints "ok" or what went wrong.
tcp_transfer() {
  local bytes=$1 secs=$2 dir out port sent got
  shift 2
  dir=$(m6_run_dir)
  out="$dir/recv.$RANDOM"
  port=$((20000 + RANDOM % 10000))
  ip netns exec "$(m6_ns mn)" python3 "$M6_ROOT/lib/tcpxfer.py" recv "$M6_HOA" "$port" "$out" &
  local rpid=$!
  m6_wait 15 test -e "$out.ready" || true
  ip netns exec "$(m6_ns client)" python3 "$M6_ROOT/lib/tcpxfer.py" send "$M6_HOA" "$port" "$bytes" "$secs" >"$out.sent" &
  local spid=$!
  if [ $# -gt 0 ]; then
    sleep 1
    "$@" >/dev/null
  fi
  wait "$spid" || true
  wait "$rpid" || true
  sent=$(cat "$out.sent" 2>/dev/null)
  got=$(cat "$out" 2>/dev/null)
  if [ -n "$sent" ] && [ "$sent" = "$got" ] && [ "${sent#error}" = "$sent" ]; then
    echo ok
  else
    echo "sent '${sent:-nothing}', received '${got:-nothing}'"
  fi
}

# What went through ha1's tunnel: on the user data path, the packet counter of the rule
# that queues what is addressed to a registered home address (or, with the tunnel in the
# kernel, of the nftables rule that lets the reverse tunnel in); on the kernel data path,
# the transmit counters of its ip6ip6 devices.
ha1_tunnelled() {
  local ns
  ns=$(m6_ns ha1)
  if ip netns exec "$ns" ip6tables-save -t raw | grep -q -- "--match-set mip6d-home dst"; then
    ip netns exec "$ns" ip6tables-save -c -t raw | grep -- "--match-set mip6d-home dst" | sed -n 's/^\[\([0-9]*\):.*/\1/p' | head -1
  elif ip netns exec "$ns" nft list table ip6 mip6d >/dev/null 2>&1; then
    # The tunnel in the kernel (--tunnel seg6): the packets the §10.4.5 check let in from
    # the reverse tunnel.
    ip netns exec "$ns" nft list chain ip6 mip6d reverse_tunnel 2>/dev/null |
      sed -n 's/.*@tunnels counter packets \([0-9]*\) .*/\1/p' | head -1
  else
    ip -n "$ns" -j -s link show type ip6tnl |
      python3 -c "import json,sys; print(sum(l['stats64']['tx']['packets'] for l in json.load(sys.stdin) if l['ifname'].startswith('ip6m')))"
  fi
}

# m6_kernel_proof HA CN COA: with ha1, the client and (unless M6_DATAPATH_MN says
# otherwise) the MN on the kernel data path, the MN registered at COA and route-optimised
# with the client: the XFRM objects umip installs are there (listings saved in the run
# directory), no daemon on the kernel path installed a single netfilter rule (so no packet
# can reach its queues), and the client's `auto` was logged as kernel. Prints "ok" or what
# is missing.
m6_kernel_proof() {
  local ha=$1 cn=$2 coa=$3 dir miss="" node f nodes=(ha1 client)
  dir=$(m6_run_dir)
  [ "$(m6_node_datapath mn)" = kernel ] && nodes+=(mn)
  for node in "${nodes[@]}"; do
    ip -n "$(m6_ns "$node")" -o xfrm state list >"$dir/$node.xfrm-state"
    ip -n "$(m6_ns "$node")" -o xfrm policy list >"$dir/$node.xfrm-policy"
    ip -n "$(m6_ns "$node")" -d -o link show type ip6tnl >"$dir/$node.tunnels"
    ip netns exec "$(m6_ns "$node")" ip6tables-save >"$dir/$node.ip6tables"
  done
  # need FILE ERE WHAT: one line of FILE matches ERE.
  need() { grep -Eq -- "$2" "$dir/$1" || miss+=" $3;"; }
  # Home agent: BA out with RH2 and BU in with HAO, by states carrying the care-of address.
  need ha1.xfrm-state "src $ha dst $M6_HOA.*proto route2 .*mode ro.*coa $coa" "ha1 RH2 state to the CoA"
  need ha1.xfrm-state "src $M6_HOA dst $ha.*proto hao .*mode ro.*coa $coa" "ha1 HAO state from the CoA"
  need ha1.xfrm-state "src :: dst ::.*proto hao .*mode ro.*flag wildrecv" "ha1 wildcard HAO receive state"
  need ha1.xfrm-policy "src $ha/128 dst $M6_HOA/128 proto (ipv6-mh|mobility-header|135) type 6.*dir out priority 2 ptype sub.*tmpl.*proto route2.*mode ro" "ha1 BA sub-policy (priority 2)"
  need ha1.xfrm-policy "src $M6_HOA/128 dst $ha/128 proto (ipv6-mh|mobility-header|135) type 5.*dir in priority 2 ptype sub.*tmpl.*proto hao.*mode ro" "ha1 BU sub-policy (priority 2)"
  need ha1.tunnels "ip6tnl ip6ip6 remote $coa local $ha" "ha1 ip6ip6 tunnel to the CoA"
  # Correspondent: route optimisation by the kernel.
  need client.xfrm-state "src $cn dst $M6_HOA.*proto route2 .*mode ro.*coa $coa" "client RH2 state"
  need client.xfrm-state "src $M6_HOA dst $cn.*proto hao .*mode ro.*coa $coa" "client HAO state"
  need client.xfrm-state "src :: dst ::.*proto hao .*mode ro.*flag wildrecv" "client wildcard HAO receive state"
  need client.xfrm-policy "src $cn/128 dst $M6_HOA/128 .*dir out priority 16 ptype sub.*tmpl.*proto route2.*mode ro" "client RO data sub-policy out (priority 16)"
  need client.xfrm-policy "src $M6_HOA/128 dst $cn/128 .*dir in priority 16 ptype sub.*tmpl.*proto hao.*mode ro" "client RO data sub-policy in (priority 16)"
  need client.xfrm-policy "src ::/0 dst ::/0 proto (ipv6-mh|mobility-header|135) type 5.*dir in priority 9 ptype sub" "client BU-in sub-policy (priority 9)"
  if [ "${nodes[2]:-}" = mn ]; then
    # Mobile node: the BU's and the data's Home Address option, the routing header taken
    # off by the wildcard state, the reverse tunnel and table 252 (umip's objects).
    need mn.xfrm-state "src $M6_HOA dst $ha.*proto hao .*mode ro.*coa $coa" "mn HAO state to ha1"
    need mn.xfrm-state "src $M6_HOA dst $cn.*proto hao .*mode ro.*coa $coa" "mn HAO state to the client"
    need mn.xfrm-state "src $cn dst $M6_HOA.*proto route2 .*mode ro.*coa $coa" "mn RH2 state from the client"
    need mn.xfrm-state "src :: dst ::.*proto route2 .*mode ro.*flag wildrecv" "mn wildcard RH2 receive state"
    need mn.xfrm-policy "src $M6_HOA/128 dst $ha/128 proto (ipv6-mh|mobility-header|135) type 5.*dir out priority 2 ptype sub.*tmpl.*proto hao.*mode ro" "mn BU sub-policy (priority 2)"
    need mn.xfrm-policy "src $M6_HOA/128 dst $cn/128 .*dir out priority 15 ptype sub.*tmpl.*proto hao.*mode ro" "mn RO data sub-policy out (priority 15)"
    need mn.xfrm-policy "src $M6_HOA/128 dst $cn/128 proto (ipv6-mh|mobility-header|135) type 1.*dir out priority 10 ptype sub" "mn HoTI bypass (priority 10)"
    need mn.tunnels "ip6tnl ip6ip6 remote $ha local $coa" "mn ip6ip6 tunnel to ha1"
    ip -n "$(m6_ns mn)" -6 rule show >"$dir/mn.rules"
    ip -n "$(m6_ns mn)" -6 route show table 252 >"$dir/mn.table252"
    need mn.rules "^1001:.*from $M6_HOA lookup 252" "mn rule 1001 from the HoA to table 252"
    need mn.table252 "^default dev ip6m" "mn table 252 default route into the tunnel"
  fi
  for node in "${nodes[@]}"; do
    grep -q NFQUEUE "$dir/$node.ip6tables" && miss+=" $node has NFQUEUE rules;"
  done
  grep -q "Datapath auto: kernel" "$dir/client.log" || miss+=" the client's --datapath auto was not logged as kernel;"
  echo "${miss:-ok}"
}

ha_has_binding() {
  [ "$(m6_json ha1 bc "sum(1 for e in d['entries'] if e['home_address']=='$M6_HOA' and e['kind']=='home' and e['care_of_address']=='$1')")" = 1 ]
}
mn_bound_to() {
  [ "$(m6_json mn bul "sum(1 for e in d['entries'] if e['peer']=='$1' and e['state']=='bound' and e['care_of_address']=='$2')")" = 1 ]
}
mn_coa() { m6_json mn status "d['roles']['mn']['location'].get('care_of_address','')"; }
mn_coa_in() { case $(mn_coa) in "$1"*) return 0 ;; *) return 1 ;; esac; }
ha_empty() {
  [ "$(m6_json ha1 bc "len(d['entries'])")" = 0 ] && [ "$(m6_json mn bul "len(d['entries'])")" = 0 ]
}

cmd_mipv6() {
  local dir conf="$M6_ROOT/conf" ha cn coa="" r node pcap n_hao n_rh2 n_via before proof="" checks=6
  M6_FAILED=0
  # Every check runs and reports, whatever the one before it did.
  set +e
  command -v python3 >/dev/null || m6_die "python3 not found: apt-get install python3"
  command -v tshark >/dev/null || m6_die "tshark not found: apt-get install tshark"
  command -v ip6tables >/dev/null || m6_die "ip6tables not found: apt-get install iptables"
  command -v ipset >/dev/null || m6_die "ipset not found: apt-get install ipset"
  M6_RA=1
  # ip6_tunnel gives every namespace a fallback device (ip6tnl0, with its own sysctls)
  # when it loads: load it before the "before" pictures, not when the first daemon probes.
  [ "$M6_DATAPATH" = user ] || modprobe -q ip6_tunnel 2>/dev/null || true
  cmd_up
  dir=$(m6_run_dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  M6_HOA=$(m6_state_get M6_MN_HOME_ADDR)
  ha=$(m6_state_get M6_HA1_ADDR)
  cn=$(m6_state_get M6_CLIENT_ADDR)
  local f1 f2
  f1=$(m6_state_get M6_FOREIGN1_PREFIX)
  f2=$(m6_state_get M6_FOREIGN2_PREFIX)
  # The SLAAC address on the home link must exist before the "before" picture.
  m6_wait 10 sh -c "ip -n $(m6_ns mn) -6 addr show dev home1 scope global | grep -q inet6" ||
    m6_die "the MN got no address on home1 from the router advertisements"
  for node in ha1 client mn; do m6_snapshot "$node" >"$dir/$node.before"; done

  cmd_move mn foreign1
  mip6d_start ha1 "$conf/ha1.conf"
  mip6d_start client "$conf/cn.conf"
  mip6d_start mn "$conf/mn.conf"

  # 1. Registration, seen from both ends.
  m6_wait 15 mn_coa_in "${f1%::/64}:" && coa=$(mn_coa)
  r=0
  m6_wait 15 ha_has_binding "$coa" && m6_wait 5 mn_bound_to "$ha" "$coa" && r=1
  m6_check 1 "MN registers its care-of address $coa with ha1 (mip6ctl bc on ha1, bul on the MN)" $r \
    "$(m6ctl ha1 bc 2>&1 | tail -n +2) / $(m6ctl mn bul 2>&1 | tail -n +2)"

  # 2. The client reaches the home address through the home agent's tunnel.
  r=0
  local pings tunnelled xfer
  pings=$(ip netns exec "$(m6_ns client)" ping -6 -c 3 -i 0.2 -W $((2 * ${M6_WAIT_SCALE:-1})) "$M6_HOA" 2>&1)
  # The packet counter of ha1's rule that queues what is addressed to a registered home
  # address for the tunnel.
  tunnelled=$(ha1_tunnelled)
  xfer=$(tcp_transfer 2000000 1)
  # A correspondent on the kernel data path loses the mobile node's first route-optimised
  # packet when it overtakes the Binding Update it follows: the MN route-optimises as soon
  # as it sends a BU without the A flag (RFC 6275 §11.7.2), and the kernel refuses the
  # Home Address option until the daemon has installed the binding (on the user data path
  # both wait in one queue, in order). The pings here start route optimisation, so one
  # of the three may be that packet there.
  local lost_ok=" 0% packet loss"
  [ "$(m6_node_datapath client)" = user ] || lost_ok="% packet loss"
  [[ $pings == *"$lost_ok"* ]] && ! [[ $pings == *" 100% packet loss"* ]] &&
    [ "$(echo "$pings" | grep -c 'bytes from')" -ge 2 ] && [ "${tunnelled:-0}" -ge 1 ] && [ "$xfer" = ok ] && r=1
  m6_check 2 "client reaches the home address via ha1's tunnel: ping, 2 MB TCP with sha256" $r \
    "ping: $(echo "$pings" | grep -o '[0-9]*% packet loss'), via ha1: ${tunnelled:-0} packets, tcp: $xfer"
  echo "   ($(m6_node_datapath ha1) data path on ha1: ${tunnelled:-0} packets into the tunnel)"

  # 2b. With the tunnel in the kernel: a reverse-tunnelled packet whose outer source is
  # not the registered care-of address is dropped by the §10.4.5 check; the same packet
  # from the care-of address passes it (the control).
  if ip netns exec "$(m6_ns ha1)" nft list table ip6 mip6d >/dev/null 2>&1; then
    local d0 a0 d1 a1
    nft_count() {
      ip netns exec "$(m6_ns ha1)" nft list chain ip6 mip6d reverse_tunnel |
        sed -n "s/.*$1 counter packets \([0-9]*\) .*/\1/p" | head -1
    }
    d0=$(nft_count "@endpoints"); a0=$(nft_count "@tunnels")
    spoof_send "${f1%::/64}::bad" "$ha" "$M6_HOA" "$cn"
    spoof_send "$coa" "$ha" "$M6_HOA" "$cn"
    d1=$(nft_count "@endpoints"); a1=$(nft_count "@tunnels")
    r=0
    [ "$((d1 - d0))" -eq 1 ] && [ "$((a1 - a0))" -ge 1 ] && r=1
    m6_check 2b "a reverse-tunnelled packet from a forged care-of address is dropped by ha1 (nftables §10.4.5 check), the registered one passes" $r \
      "dropped $((d1 - d0)), accepted $((a1 - a0))"
  fi

  # 2c. With the tunnel in the kernel on the mobile node too (its mip6d got --tunnel
  # seg6 as well): its reverse tunnel is an SRv6 route to ha1 in table 250, from the
  # registered care-of address (ip sr tunsrc), and mip6ctl status says so.
  if [ "${M6_TUNNEL:-queue}" = seg6 ]; then
    local kt routes tsrc
    kt=$(m6_json mn status "d['roles']['mn']['kernel_tunnel']")
    routes=$(ip -n "$(m6_ns mn)" -6 route show table 250)
    tsrc=$(ip netns exec "$(m6_ns mn)" ip sr tunsrc show)
    r=0
    [ "$kt" = True ] && [[ $routes == *"encap seg6 mode encap.red segs 1 [ $ha ]"* ]] &&
      [ "$tsrc" = "tunsrc addr $coa" ] && r=1
    m6_check 2c "the MN's reverse tunnel is in the kernel: SRv6 route to ha1 in table 250 from $coa" $r \
      "status kernel_tunnel: ${kt:-?}; table 250: ${routes:-none}; $tsrc"
  fi

  # 3. A move in the middle of a TCP transfer.
  xfer=$(tcp_transfer 8000000 4 cmd_move mn foreign2)
  r=0
  m6_wait 10 mn_coa_in "${f2%::/64}:" && coa=$(mn_coa)
  [ "$xfer" = ok ] && m6_wait 5 ha_has_binding "$coa" && r=1
  m6_check 3 "MN moves to foreign2 ($coa) during an 8 MB TCP transfer: intact, no reset" $r "$xfer"

  # 4. Route optimisation: after RR and BU, the direct path, seen on the router.
  r=0
  pcap="$dir/router.pcapng"
  if m6_wait 20 mn_bound_to "$cn" "$coa"; then
    m6_capture router "$pcap" -a duration:$((8 * ${M6_WAIT_SCALE:-1})) -i foreign2 -i uplink1
    local tpid=$M6_CAPTURE_PID
    ip netns exec "$(m6_ns client)" ping -6 -c 5 -i 0.2 -W 2 "$M6_HOA" >/dev/null 2>&1
    xfer=$(tcp_transfer 500000 0.5)
    wait "$tpid"
    n_rh2=$(tshark -r "$pcap" -Y "frame.interface_name == \"foreign2\" && ipv6.src == $cn && ipv6.routing.mipv6.home_address == $M6_HOA" 2>/dev/null | wc -l)
    n_hao=$(tshark -r "$pcap" -Y "frame.interface_name == \"foreign2\" && ipv6.dst == $cn && ipv6.opt.mipv6.home_address == $M6_HOA" 2>/dev/null | wc -l)
    n_via=$(tshark -r "$pcap" -Y "frame.interface_name == \"uplink1\" && ipv6.addr == $cn && !mipv6" 2>/dev/null | wc -l)
    [ "$n_rh2" -ge 5 ] && [ "$n_hao" -ge 5 ] && [ "$n_via" = 0 ] && [ "$xfer" = ok ] && r=1
    [ "$M6_DATAPATH" = kernel ] && proof=$(m6_kernel_proof "$ha" "$cn" "$coa")
  fi
  m6_check 4 "route optimisation: CN->MN with RH2, MN->CN with HAO on foreign2, none via ha1 (tshark on the router)" $r \
    "RH2 ${n_rh2:-?}, HAO ${n_hao:-?}, via ha1 ${n_via:-?}, tcp ${xfer:-?}"
  [ "$r" = 1 ] || tshark -r "$pcap" 2>/dev/null | head -20 | sed 's/^/   capture: /'

  if [ "$M6_DATAPATH" = kernel ]; then
    checks=7
    r=0
    [ "${proof:-}" = ok ] && r=1
    m6_check 7 "the kernel does it: ha1's, the client's and the MN's XFRM states/sub-policies, ip6ip6 tunnels and table 252 as umip's, no NFQUEUE rule on any, client's auto = kernel" $r \
      "${proof:-not reached}"
    echo "   (ip xfrm listings: $dir/{ha1,client,mn}.xfrm-{state,policy})"
  fi

  # 5. Home again: deregistration, and ha1 keeps nothing for the home address.
  cmd_move mn home1
  r=0
  local left=""
  if m6_wait 15 ha_empty; then
    left=$( { ip netns exec "$(m6_ns ha1)" ip6tables-save; ip netns exec "$(m6_ns ha1)" ipset save; } | grep -c "$M6_HOA" || true)
    left+=" $(ip -n "$(m6_ns ha1)" -6 neigh show proxy | grep -c "$M6_HOA" || true)"
    left+=" $(ip -n "$(m6_ns ha1)" -6 route show table all | grep -c "$M6_HOA" || true)"
    # Both care-of addresses the MN used (foreign1, then foreign2) are no longer tunnel
    # endpoints.
    left+=" $(ip netns exec "$(m6_ns ha1)" ipset save mip6d-coa 2>/dev/null | grep -c '^add ' || true)"
    # The kernel data path's: XFRM objects naming the HoA, ip6ip6 devices.
    left+=" $({ ip -n "$(m6_ns ha1)" xfrm state; ip -n "$(m6_ns ha1)" xfrm policy; } | grep -c "$M6_HOA" || true)"
    left+=" $(ip -n "$(m6_ns ha1)" -o link show type ip6tnl | grep -c ' ip6m' || true)"
    [ "$left" = "0 0 0 0 0 0" ] && r=1
  fi
  m6_check 5 "MN back home deregisters; ha1 removes its tunnel rules, routes and proxy entry" $r \
    "bc: $(m6_json ha1 bc "len(d['entries'])") entries; rules+set elements/proxy/routes naming the HoA, tunnel endpoints, XFRM objects naming the HoA, ip6ip6 devices: ${left:-?}"

  # 6. SIGTERM leaves nothing behind.
  r=1
  local diffs=""
  for node in mn client ha1; do
    mip6d_stop "$node" || { r=0; diffs+=" $node did not exit 0;"; }
  done
  for node in ha1 client mn; do
    m6_snapshot "$node" >"$dir/$node.after"
    if ! diff -u "$dir/$node.before" "$dir/$node.after" >"$dir/$node.diff"; then
      r=0
      diffs+=" $node: $(grep -c '^[-+][^-+]' "$dir/$node.diff") lines differ ($dir/$node.diff);"
    fi
  done
  m6_check 6 "SIGTERM on every daemon leaves no rule, route, address or proxy entry behind" $r "$diffs"

  if [ "$M6_FAILED" -gt 0 ]; then
    echo "mipv6: $M6_FAILED of $checks checks failed; daemon logs in $dir" >&2
  fi
  M6_QUIET=1 cmd_down
  [ "$M6_FAILED" = 0 ]
}
