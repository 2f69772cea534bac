# shellcheck shell=bash
# `testbed/run dhaad`: home agent discovery and the home agent's neighbour duties (RFC 6275
# §10.4.1, §10.5, §11.4.1). The mobile node's configuration names no home agent; another
# node on home1 ("dup") first owns the home address, so ha1's Duplicate Address Detection
# must refuse the registration (status 134); once dup lets the address go, the mobile node
# registers with the home agent DHAAD found. tshark on ha1 (home1 and uplink1) checks the
# packets. Then the mobile node's side sends a Mobile Prefix Solicitation with a Home
# Address option (built by scapy, M6_PYTHON with scapy, default /usr/bin/python3) and ha1
# must answer with an advertisement to the care-of address with a Type 2 Routing Header.
# Last, dup plays a second home agent: its Router Advertisement with the H bit, a Home
# Agent Information option (preference 10) and its address in a Prefix Information option
# with the R bit must put it at the head of ha1's Home Agents List.
# Prints PASS/FAIL lines; exit status 0 when all pass.

cmd_dhaad() {
  local dir pcap ha hoa any ll dupns ha1ns conf n
  M6_FAILED=0
  set +e
  command -v tshark >/dev/null || m6_die "tshark not found: apt-get install tshark"
  local py=${M6_PYTHON:-/usr/bin/python3}
  "$py" -c "import scapy.layers.inet6" 2>/dev/null || m6_die "scapy not found for $py: apt-get install python3-scapy"
  M6_RA=1
  cmd_up
  dir=$(m6_run_dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  hoa=$(m6_state_get M6_MN_HOME_ADDR)
  M6_HOA=$hoa
  ha=$(m6_state_get M6_HA1_ADDR)
  any=2001:db8:1:0:fdff:ffff:ffff:fffe
  ha1ns=$(m6_ns ha1)
  dupns=$(m6_ns dup)
  ll=$(ip -n "$ha1ns" -6 -o addr show dev home1 scope link | awk '{print $4}' | cut -d/ -f1 | head -1)
  cmd_move mn foreign1
  # dup: one more node on home1, owning the home address.
  ip netns add "$dupns"
  ip -n "$ha1ns" link add home1-dup type veth peer name eth0 netns "$dupns"
  ip -n "$ha1ns" link set home1-dup master home1 up
  ip -n "$dupns" link set eth0 up
  ip -n "$dupns" addr add "$hoa/64" dev eth0 nodad
  conf="$dir/mn-dhaad.conf"
  sed '/HomeAgentAddress/d' "$M6_ROOT/conf/mn.conf" >"$conf"
  pcap="$dir/ha1.pcapng"
  m6_capture ha1 "$pcap" -i home1 -i uplink1
  local tpid=$M6_CAPTURE_PID
  mip6d_start ha1 "$M6_ROOT/conf/ha1.conf"
  mip6d_start mn "$conf"

  # 1. The duplicate makes ha1 refuse the registration with 134.
  local r=0
  m6_wait 15 grep -q "status Some(134)" "$dir/mn.log" && r=1
  m6_check 1 "dup owns $hoa on home1: ha1 refuses the registration with status 134" $r
  ip -n "$dupns" addr del "$hoa/64" dev eth0

  # 2. Without the duplicate, the MN registers with the home agent it discovered.
  r=0
  local coa found
  m6_wait 5 mn_coa_in 2001:db8:41: && coa=$(mn_coa) && m6_wait 20 ha_has_binding "$coa" && r=1
  found=$(m6_json mn status "d['roles']['mn']['home_agent'], d['roles']['mn']['home_agent_discovery']['state']")
  [ "$found" = "$ha found" ] || r=0
  m6_check 2 "MN without HomeAgentAddress finds ha1 by DHAAD and registers (status: $found)" $r

  # 6 (sent now, checked below): a Mobile Prefix Solicitation from the registered MN.
  ip netns exec "$(m6_ns mn)" "$py" -c "
from scapy.all import IPv6, IPv6ExtHdrDestOpt, HAO, ICMPv6MPSol, send
send(IPv6(src='$coa', dst='$ha')/IPv6ExtHdrDestOpt(options=[HAO(hoa='$hoa')])/ICMPv6MPSol(id=4321), verbose=0)
" >"$dir/mps.log" 2>&1
  sleep 1
  kill -INT "$tpid" 2>/dev/null
  wait "$tpid"
  # 3.-5. What tshark decodes (an independent dissector).
  tsc() { tshark -r "$pcap" -Y "$1" 2>/dev/null | wc -l; }
  local req rep
  req=$(tsc "icmpv6.type == 144 && ipv6.dst == $any")
  rep=$(tsc "icmpv6.type == 145 && icmpv6.mip6.home_agent_address == $ha")
  r=0
  [ "$req" -ge 1 ] && [ "$rep" -ge 1 ] && r=1
  m6_check 3 "tshark: DHAAD request to $any and reply naming $ha" $r "requests $req, replies $rep"
  local ns na ba
  ns=$(tsc "frame.interface_name == \"home1\" && icmpv6.type == 135 && ipv6.src == :: && icmpv6.nd.ns.target_address == $hoa && ipv6.hlim == 255")
  na=$(tsc "frame.interface_name == \"home1\" && icmpv6.type == 136 && ipv6.src == $ll && icmpv6.nd.na.target_address == $hoa && icmpv6.nd.na.flag.o == 1 && ipv6.hlim == 255")
  r=0
  [ "$ns" -ge 2 ] && [ "$na" -ge 1 ] && r=1
  m6_check 4 "tshark on home1: DAD probes from :: for $hoa and ha1's proxy NA (override set)" $r "DAD NS $ns, proxy NA $na"
  ba=$(tsc "mip6.ba.status == 134")
  r=0
  [ "$ba" -ge 1 ] && r=1
  m6_check 5 "tshark: a Binding Acknowledgement with status 134" $r "$ba"

  local mps mpa
  mps=$(tsc "icmpv6.type == 146 && icmpv6.mip6.identifier == 4321 && ipv6.opt.mipv6.home_address == $hoa")
  mpa=$(tsc "frame.interface_name == \"uplink1\" && icmpv6.type == 147 && icmpv6.mip6.identifier == 4321 && ipv6.src == $ha && ipv6.dst == $coa && ipv6.routing.mipv6.home_address == $hoa && icmpv6.opt.prefix == 2001:db8:1::")
  r=0
  [ "$mps" -ge 1 ] && [ "$mpa" -ge 1 ] && r=1
  m6_check 6 "tshark: Mobile Prefix Solicitation with HAO answered by an advertisement of 2001:db8:1::/64 to $coa with RH2" $r "MPS $mps, MPA $mpa"

  # 7. Another home agent's RA heard on home1 (hop limit 255, link-local source).
  local dupll=fe80::dead:1 dupga=2001:db8:1::200 list
  ip -n "$dupns" addr add "$dupll/64" dev eth0 nodad
  ip -n "$dupns" addr add "$dupga/64" dev eth0 nodad
  ip netns exec "$dupns" "$py" -c "
from scapy.all import IPv6, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptHAInfo, send
send(IPv6(src='$dupll', dst='ff02::1', hlim=255)/ICMPv6ND_RA(H=1, routerlifetime=1800)
     /ICMPv6NDOptHAInfo(pref=10, lifetime=600)
     /ICMPv6NDOptPrefixInfo(prefixlen=64, R=1, prefix='$dupga'), iface='eth0', verbose=0)
" >>"$dir/mps.log" 2>&1
  r=0
  m6_wait 5 sh -c "[ \"\$('$(m6_bin mip6ctl)' status --json --socket '$dir/ha1.sock' | '$py' -c 'import json,sys; print(\",\".join(json.load(sys.stdin)[\"roles\"][\"ha\"][\"home_agents_list\"]))')\" = '$dupga,$ha' ]" && r=1
  list=$(m6_json ha1 status "','.join(d['roles']['ha']['home_agents_list'])")
  m6_check 7 "ha1's Home Agents List takes another agent's RA (H bit, preference 10) first: $list" $r

  mip6d_stop mn
  mip6d_stop ha1
  ip netns del "$dupns" 2>/dev/null
  if [ "$M6_FAILED" -gt 0 ]; then
    echo "dhaad: $M6_FAILED of 7 checks failed; logs and capture in $dir" >&2
  fi
  M6_QUIET=1 cmd_down
  [ "$M6_FAILED" = 0 ]
}
