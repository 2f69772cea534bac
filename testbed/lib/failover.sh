# shellcheck shell=bash
# `testbed/run failover`: Distributed Servers contact failover with real daemons. mip6d
# runs as home agent on ha1 and as a Distributed Servers member on sn1 (the genesis
# contact), sn2 and sn3 (backups), each with `ContactInterface`, so whichever is the
# contact registers the DSA at ha1 through its own (held) mobile node role; two snodes
# (membership only) run in ha2's namespace (which runs nothing else here) on addresses of
# their own — not beside a member, whose care-of address must be the only one on its link. Checks, one
# PASS/FAIL line each: the group agrees and ha1 binds the DSA to sn1; a client reaches
# sn1 through the DSA; `kill -9` of sn1 moves ha1's binding to a new contact and a new
# client connection reaches it (both timed from the kill); sn1 restarts and rejoins as a
# backup without taking the DSA back; cutting the two backups from each other never
# gives two contacts in one epoch; a join with a wrong key is rejected and logged; and
# over the whole run no epoch had two contacts (the daemons' logs).

FO_PORT=8080
FO_CPORT=7780

fo_py() { echo "$M6_ROOT/lib/failover.py"; }

# fo_conf FILE NODEID ROLE LOCAL KEY STATE [CONTACT-INTERFACE]
fo_conf() {
  local file=$1 id=$2 role=$3 local=$4 key=$5 state=$6 iface=${7:-} p
  {
    echo "NodeConfig CN;"
    echo "Datapath user;"
    echo "DistributedServer \"fo\" {"
    echo "	Address $FO_DSA;"
    echo "	HomeAgentAddress $FO_HA;"
    echo "	Role $role;"
    echo "	NodeId $id;"
    echo "	LocalAddress $local;"
    echo "	Peers {"
    for p in $FO_PEERS; do
      IFS=: read -r pid prole paddr <<<"$p"
      [ "$pid" = "$id" ] || echo "		Peer $pid ${paddr//_/:} $prole;"
    done
    echo "	}"
    echo "	SharedKeyFile \"$key\";"
    echo "	StateFile \"$state\";"
    echo "	HeartbeatInterval 0.1;"
    echo "	FailureTimeout ${M6_FO_FAILURE_TIMEOUT:-0.25};"
    echo "	ControlPort $FO_CPORT;"
    [ -z "$iface" ] || echo "	ContactInterface \"$iface\";"
    echo "}"
  } >"$file"
}

# fo_start NAME NODE [MIP6D-ARGS...]: mip6d with $dir/NAME.conf in NODE's namespace.
fo_start() {
  local name=$1 node=$2 dir
  shift 2
  dir=$(m6_run_dir)
  ip netns exec "$(m6_ns "$node")" "$(m6_bin mip6d)" -f -d 1 -c "$dir/$name.conf" \
    --control-socket "$dir/$name.sock" --pid-file "$dir/$name.pid" "$@" \
    </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.job"
  # Killing it is part of the scenario: no "Killed" notice from the shell.
  disown $!
}

fo_kill() {
  local f pid
  for f in "$@"; do
    pid=$(cat "$f" 2>/dev/null) || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
}

# fo_members NAME PYEXPR: evaluates PYEXPR on NAME's membership view (as `v`).
fo_members() {
  m6ctl "$1" members --json 2>/dev/null |
    python3 -c "import json,sys; v=json.load(sys.stdin)['servers'][0]; print($2)" 2>/dev/null
}

# The care-of address ha1 binds the DSA to (empty when none).
fo_ha_coa() {
  m6_json ha1 bc "' '.join(e['care_of_address'] for e in d['entries'] if e['home_address']=='$FO_DSA' and e['kind']=='home')"
}

fo_ha_is() { [ "$(fo_ha_coa)" = "$1" ]; }

# The snodes a member's view holds (registered with the contact, not merely configured).
fo_snodes() { fo_members "$1" "sorted(v['snodes'])"; }
fo_snodes_known() { [ "$(fo_snodes "$1")" = "[11, 12]" ]; }

# fo_agreed ID: every live member's view names contact ID.
fo_agreed() {
  local want=$1 n c
  for n in $FO_LIVE; do
    c=$(fo_members "$n" "v['contact'] if v['state'] in ('contact','backup') else None")
    [ "$c" = "$want" ] || return 1
  done
}

fo_view_size() {
  [ "$(fo_members "$1" "sum(1 for m in v['members'] if m['role'] in ('contact','backup'))")" = "$2" ]
}

# One TCP connection from the client to the DSA: prints who answered.
fo_ask() {
  ip netns exec "$(m6_ns client)" python3 -c "
import socket,sys
s=socket.create_connection(('$FO_DSA',$FO_PORT),timeout=2)
print(s.recv(64).decode().strip())" 2>/dev/null
}

fo_answers() { [ "$(fo_ask)" = "$1" ]; }

# A member logged a rejected frame from ADDR.
fo_rejected() { cat "$(m6_run_dir)"/sn?.log | grep -q "rejected a membership frame from \[$1\]"; }

# Every "now the contact node of epoch E" line in the members' logs, as "E node".
fo_contact_epochs() {
  local dir n
  dir=$(m6_run_dir)
  for n in $FO_MEMBERS; do
    sed -n 's/.*now the contact node of epoch \([^ ]*\).*/\1/p' "$dir/$n.log" | sed "s/\$/ $n/"
  done | sort -u
}

fo_cut() {
  local a=$1 b=$2 aaddr baddr
  aaddr=$(fo_addr "$a")
  baddr=$(fo_addr "$b")
  ip netns exec "$(m6_ns "$a")" nft -f - <<NFT
table ip6 m6_fo_split {
  chain in { type filter hook input priority -10; ip6 saddr $baddr drop; }
  chain out { type filter hook output priority -10; ip6 daddr $baddr drop; }
}
NFT
  ip netns exec "$(m6_ns "$b")" nft -f - <<NFT
table ip6 m6_fo_split {
  chain in { type filter hook input priority -10; ip6 saddr $aaddr drop; }
  chain out { type filter hook output priority -10; ip6 daddr $aaddr drop; }
}
NFT
}

fo_uncut() {
  local n
  for n in "$@"; do
    ip netns exec "$(m6_ns "$n")" nft delete table ip6 m6_fo_split 2>/dev/null || true
  done
}

fo_addr() { m6_state_get "M6_$(m6_upper "$1")_$(m6_upper "$1")NET_ADDR"; }
fo_id() { echo "${1#sn}"; }
fo_node() { echo "sn$1"; }

fo_cleanup() {
  local dir
  dir=$(m6_run_dir)
  fo_uncut sn1 sn2 sn3
  fo_kill "$dir"/*.job "$dir"/serve-*.pid
  mip6d_stop ha1 || true
  sleep 0.5
  M6_QUIET=1 cmd_down
}

cmd_failover() {
  command -v python3 >/dev/null || m6_die "python3 not found: apt-get install python3"
  command -v ip6tables >/dev/null || m6_die "ip6tables not found: apt-get install iptables"
  command -v ipset >/dev/null || m6_die "ipset not found: apt-get install ipset"
  command -v nft >/dev/null || m6_die "nft not found: apt-get install nftables"
  M6_FAILED=0
  # shellcheck disable=SC2034 # read by mip6d_start (ha1)
  M6_DATAPATH=user
  set +e
  cmd_up
  local dir conf="$M6_ROOT/conf" n key badkey t
  dir=$(m6_run_dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  trap fo_cleanup EXIT
  FO_DSA=$(m6_state_get M6_DSA_ADDR)
  FO_HA=$(m6_state_get M6_HA1_ADDR)
  FO_MEMBERS="sn1 sn2 sn3"
  FO_LIVE=$FO_MEMBERS
  local sn1 sn2 sn3 snode11 snode12 intruder
  sn1=$(fo_addr sn1) sn2=$(fo_addr sn2) sn3=$(fo_addr sn3)
  local up2
  up2=$(m6_state_get M6_HA2_UPLINK2_ADDR)
  snode11=${up2%::*}::11 snode12=${up2%::*}::12
  intruder=$(m6_state_get M6_CLIENT_ADDR)
  ip -n "$(m6_ns ha2)" addr add "$snode11/64" dev uplink2 nodad
  ip -n "$(m6_ns ha2)" addr add "$snode12/64" dev uplink2 nodad
  FO_PEERS="1:contact:${sn1//:/_} 2:backup:${sn2//:/_} 3:backup:${sn3//:/_} 11:snode:${snode11//:/_} 12:snode:${snode12//:/_}"
  key="$dir/shared.key" badkey="$dir/wrong.key"
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key" &&
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$badkey")
  fo_conf "$dir/sn1.conf" 1 contact "$sn1" "$key" "$dir/sn1.state" sn1net
  fo_conf "$dir/sn2.conf" 2 backup "$sn2" "$key" "$dir/sn2.state" sn2net
  fo_conf "$dir/sn3.conf" 3 backup "$sn3" "$key" "$dir/sn3.state" sn3net
  fo_conf "$dir/snode11.conf" 11 snode "$snode11" "$key" "$dir/snode11.state"
  fo_conf "$dir/snode12.conf" 12 snode "$snode12" "$key" "$dir/snode12.state"
  FO_PEERS="$FO_PEERS 99:backup:${intruder//:/_}"
  fo_conf "$dir/intruder.conf" 99 backup "$intruder" "$badkey" "$dir/intruder.state"

  for n in $FO_MEMBERS; do
    ip netns exec "$(m6_ns "$n")" python3 "$(fo_py)" serve "$n" "$FO_PORT" >"$dir/serve-$n.log" 2>&1 &
    echo $! >"$dir/serve-$n.pid"
    disown $!
  done
  mip6d_start ha1 "$conf/ha1.conf"
  for n in $FO_MEMBERS; do fo_start "$n" "$n" --datapath user; done
  fo_start snode11 ha2 --no-datapath
  fo_start snode12 ha2 --no-datapath

  # 1. The group agrees on sn1, knows the snodes, and ha1 binds the DSA to sn1.
  local r=0 snodes
  m6_wait 20 fo_agreed 1
  m6_wait 20 fo_ha_is "$sn1"
  m6_wait 10 fo_snodes_known sn1
  snodes=$(fo_snodes sn1)
  fo_agreed 1 && [ "$(fo_ha_coa)" = "$sn1" ] && [ "$snodes" = "[11, 12]" ] && r=1
  m6_check 1 "members agree on contact 1 (sn1) with snodes 11 and 12; ha1 binds the DSA $FO_DSA to sn1" $r \
    "ha1: '$(fo_ha_coa)', snodes on sn1: $snodes, contacts: $(for n in $FO_MEMBERS; do fo_members "$n" "v['contact']"; done | paste -sd,)"

  # 2. A client reaches the contact through the DSA (ha1's tunnel to sn1).
  r=0
  local who
  m6_wait 10 fo_answers sn1 && r=1
  who=$(fo_ask)
  m6_check 2 "a client's TCP connection to the DSA reaches sn1 through ha1's tunnel" $r "answered by '${who}'"

  # 3. kill -9 the contact (its daemon and its server): timed until ha1's binding moves
  #    and until a new client connection succeeds.
  r=0
  local out binding_ms connect_ms new_coa new_node server
  out=$(ip netns exec "$(m6_ns client)" python3 "$(fo_py)" measure \
    --kill "$(cat "$dir/sn1.job")" --kill "$(cat "$dir/serve-sn1.pid")" \
    --mip6ctl "$(m6_bin mip6ctl)" --ha-socket "$dir/ha1.sock" --dsa "$FO_DSA" --port "$FO_PORT" \
    --old sn1 --old-coa "$sn1" --names "$sn2=sn2" --names "$sn3=sn3" --timeout 10)
  echo "$out" >"$dir/measure.json"
  binding_ms=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('binding_ms',''))" "$out" 2>/dev/null)
  connect_ms=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('connect_ms',''))" "$out" 2>/dev/null)
  new_node=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('binding_node',''))" "$out" 2>/dev/null)
  server=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('server',''))" "$out" 2>/dev/null)
  new_coa=$(fo_addr "${new_node:-none}" 2>/dev/null)
  echo "failover: kill -9 of the contact -> ha1's binding for the DSA at ${new_node:-?} (${new_coa:-?}): ${binding_ms:-never} ms"
  echo "failover: kill -9 of the contact -> a new client connection to the DSA answered by ${server:-nobody}: ${connect_ms:-never} ms"
  echo "failover: target 300 ms with HeartbeatInterval 0.1 and FailureTimeout ${M6_FO_FAILURE_TIMEOUT:-0.25}"
  rm -f "$dir/sn1.job"
  FO_LIVE="sn2 sn3"
  [ -n "$binding_ms" ] && [ -n "$connect_ms" ] && [ "$server" = "$new_node" ] &&
    m6_wait 5 fo_agreed "$(fo_id "$new_node")" 2>/dev/null && r=1
  m6_check 3 "kill -9 of sn1: ha1 binds the DSA to the new contact ${new_node:-?} and new client connections reach it" $r "$out"

  # 4. sn1 restarts and rejoins at the end of the line; the DSA stays with the contact.
  r=0
  local contact_node=${new_node:-sn2}
  fo_start sn1 sn1 --datapath user
  FO_LIVE=$FO_MEMBERS
  m6_wait 15 fo_view_size "$contact_node" 3 && m6_wait 5 fo_agreed "$(fo_id "$contact_node")" &&
    [ "$(fo_ha_coa)" = "$(fo_addr "$contact_node")" ] &&
    [ "$(fo_members sn1 "v['acting']")" = False ] && r=1
  m6_check 4 "sn1 restarts and rejoins as a backup; ha1's binding stays with $contact_node" $r \
    "view on $contact_node: $(fo_members "$contact_node" "[(m['node_id'], m['role']) for m in v['members']]"), ha1: $(fo_ha_coa)"

  # 5. Cut the two backups from each other for 6 s: they remove each other in turn (with
  #    back-off), but no epoch ever has two contacts, and the group heals afterwards.
  r=0
  local others="" a b samples="$dir/partition.samples" epochs_before epochs_after
  for n in $FO_MEMBERS; do [ "$n" = "$contact_node" ] || others+=" $n"; done
  read -r a b <<<"$others"
  epochs_before=$(fo_members "$contact_node" "v['epoch']")
  fo_cut "$a" "$b"
  : >"$samples"
  t=$((SECONDS + 6))
  while [ "$SECONDS" -lt "$t" ]; do
    for n in $FO_MEMBERS; do
      fo_members "$n" "'%s %s %s' % (v['epoch_value'], v['acting'], '$n')" >>"$samples"
    done
    sleep 0.1
  done
  epochs_after=$(fo_members "$contact_node" "v['epoch']")
  fo_uncut "$a" "$b"
  local double
  double=$(awk '$2 == "True" {print $1, $3}' "$samples" | sort -u | awk '{c[$1]++} END {for (e in c) if (c[e] > 1) print e}')
  m6_wait 15 fo_view_size "$contact_node" 3
  local healed
  healed=$(for n in $FO_MEMBERS; do fo_members "$n" "v['acting']"; done | grep -c True)
  [ -z "$double" ] && [ "$healed" = 1 ] && r=1
  echo "partition: $a <-> $b cut for 6 s: $(awk '{print $1}' "$samples" | sort -u | wc -l) epochs seen; contact's epoch $epochs_before -> $epochs_after; acting after healing: $healed"
  m6_check 5 "backups $a and $b cut from each other: never two contacts in one epoch, one contact after healing" $r \
    "epochs with two acting: '${double}', acting after healing: $healed"

  # 6. A join with the wrong key is rejected and logged, and never joins.
  r=0
  fo_start intruder client --no-datapath
  m6_wait 10 fo_rejected "$intruder"
  local logged seen99
  logged=$(cat "$dir"/sn?.log | grep "rejected a membership frame from \[$intruder\]" | head -1)
  seen99=$(for n in $FO_MEMBERS; do fo_members "$n" "[m['node_id'] for m in v['members'] if m['node_id']==99 and m['role'] in ('contact','backup')]"; done | grep -c 99)
  [ -n "$logged" ] && [ "$seen99" = 0 ] && r=1
  m6_check 6 "a join with a wrong key is rejected and logged, and node 99 is in no view" $r "log: '${logged}', views with 99: $seen99"
  fo_kill "$dir/intruder.job"

  # 7. Over the whole run, from the daemons' own logs.
  r=0
  local epochs dup
  epochs=$(fo_contact_epochs)
  dup=$(echo "$epochs" | awk 'NF == 2 {c[$1]++} END {for (e in c) if (c[e] > 1) print e}')
  [ -n "$epochs" ] && [ -z "$dup" ] && r=1
  m6_check 7 "no epoch had two contacts over the whole run ($(echo "$epochs" | grep -c .) contact epochs in the logs)" $r \
    "epochs claimed twice: '${dup}'"

  fo_cleanup
  trap - EXIT
  echo "failover: $((7 - M6_FAILED))/7 checks passed (logs in $dir)"
  [ "$M6_FAILED" -eq 0 ]
}
