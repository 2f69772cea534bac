# shellcheck shell=bash
# Link emulation on the router's links (testbed/README.md, "Link emulation"): choosing
# netem or the userspace emulator at `up`, starting and stopping emulator processes, the
# `link` command, and the emulation part of `status`.
#
# Directions are named from the router: `down` is router -> node, `up` is node -> router.
# netem: one qdisc per direction on the sending end of the link's veth (the router's end for
#   down, the node's end for up), so neither direction needs an ingress (ifb) device.
# user:  the link is two TAP devices named after the link (one in the router's namespace,
#   one in the node's) and an `m6-linkemu` process in the router's namespace forwarding
#   frames between them; `link` talks to it over its control socket.

# Requested at `up` (none | netem | user | auto); emu_resolve turns auto into netem or user.
M6_EMULATOR=${M6_EMULATOR:-none}
M6_EMULATOR_WHY=""

emu_dir() { echo "${M6_STATE_DIR}/${M6_PREFIX}.emu"; }

# The emulated links: every link the router is on (M6_EMULATION_IFACES).
emu_links() { m6_links | awk '$3 == "router" {print $1}'; }

emu_is_link() { emu_links | grep -qxF "$1"; }

# The mode of the testbed that is up (from its state file), for `link` and `status`.
emu_mode() { m6_state_get M6_EMULATOR 2>/dev/null || echo none; }

# Whether `up` builds LINK from two TAP devices instead of a veth pair.
emu_uses_tap() { [ "$M6_EMULATOR" = user ] && emu_is_link "$1"; }

# The emulator binary: $M6_LINKEMU, a cargo build of this tree, or PATH.
emu_bin() {
  local c root=${M6_ROOT%/testbed}
  for c in "${M6_LINKEMU:-}" \
    "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/m6-linkemu}" \
    "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/debug/m6-linkemu}" \
    "$root/target/release/m6-linkemu" "$root/target/debug/m6-linkemu" \
    "$(command -v m6-linkemu 2>/dev/null || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
      echo "$c"
      return 0
    fi
  done
  m6_die "m6-linkemu not found: build it (cargo build --release --bin m6-linkemu) or set M6_LINKEMU to its path"
}

# Whether this kernel has netem: a qdisc on a veth in a scratch namespace. Prints the
# kernel's answer when it has not.
emu_netem_probe() {
  local ns="${M6_PREFIX}-netemprobe" err rc=0
  command -v tc >/dev/null 2>&1 || {
    echo "'tc' not found (apt-get install iproute2)"
    return 1
  }
  ip netns add "$ns" || return 1
  err=$(ip -n "$ns" link add name probe0 type veth peer name probe1 2>&1 &&
    ip netns exec "$ns" tc qdisc add dev probe0 root netem delay 1ms 2>&1) || rc=1
  ip netns del "$ns" 2>/dev/null || true
  [ "$rc" = 0 ] || echo "${err:-tc qdisc add ... netem failed}"
  return "$rc"
}

# Turns the requested mode into the one used, with the reason, before anything is built.
emu_resolve() {
  local err
  case $M6_EMULATOR in
    none) M6_EMULATOR_WHY="no link emulation requested" ;;
    netem)
      err=$(emu_netem_probe) || m6_die "--emulator netem: this kernel has no netem ($err); use --emulator user"
      M6_EMULATOR_WHY="requested"
      ;;
    user)
      emu_bin >/dev/null
      M6_EMULATOR_WHY="requested"
      ;;
    auto)
      if err=$(emu_netem_probe); then
        M6_EMULATOR=netem M6_EMULATOR_WHY="auto: tc netem works on this kernel"
      else
        emu_bin >/dev/null
        M6_EMULATOR=user M6_EMULATOR_WHY="auto: tc netem unavailable (${err//$'\n'/ })"
      fi
      ;;
    *) m6_die "--emulator '$M6_EMULATOR': one of netem, user, auto, none" ;;
  esac
  [ "$M6_EMULATOR" = none ] || m6_log "link emulation: $M6_EMULATOR ($M6_EMULATOR_WHY)"
}

emu_create_taps() {
  local l l_prefix l_a l_aid l_b l_bid l_kind
  [ "$M6_EMULATOR" = user ] || return 0
  while read -r l; do
    m6_link "$l"
    ip -n "$(m6_ns router)" tuntap add dev "$l" mode tap
    ip -n "$(m6_ns "$l_b")" tuntap add dev "$l" mode tap
  done < <(emu_links)
}

# One emulator per link, in the router's namespace; returns once every one answers on its
# control socket (a TAP has carrier only while a process holds it, so `up` waits for this
# before it waits for carrier).
emu_start() {
  local bin dir l pid i=0 deadline l_prefix l_a l_aid l_b l_bid l_kind
  [ "$M6_EMULATOR" != none ] || return 0
  dir=$(emu_dir)
  # Settings of an earlier testbed with this prefix (netem keeps its words here) must not
  # leak into this one.
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$M6_EMULATOR" = user ] || return 0
  bin=$(emu_bin)
  # sun_path holds 108 bytes.
  [ ${#dir} -le 90 ] || m6_die "state directory path too long for control sockets: $dir"
  while read -r l; do
    m6_link "$l"
    i=$((i + 1))
    # `ip netns exec` execs the emulator, so $! is the emulator's pid. No inherited
    # stdout/stderr: a caller reading our output to EOF must not wait for the emulator.
    ip netns exec "$(m6_ns router)" "$bin" run --link "$l" --node-netns "$(m6_ns "$l_b")" \
      --ctl "$dir/$l.sock" --seed "$((${M6_EMU_SEED:-1} * 100 + i))" --realtime "${M6_EMU_RT:-10}" \
      </dev/null >>"$dir/$l.log" 2>&1 &
    echo "$!" >"$dir/$l.pid"
  done < <(emu_links)
  deadline=$((SECONDS + 5))
  while read -r l; do
    pid=$(cat "$dir/$l.pid")
    until "$bin" ctl --socket "$dir/$l.sock" show >/dev/null 2>&1; do
      kill -0 "$pid" 2>/dev/null || m6_die "emulator for $l exited: $(tail -n3 "$dir/$l.log")"
      [ "$SECONDS" -lt "$deadline" ] || m6_die "emulator for $l not ready after 5 s: $(tail -n3 "$dir/$l.log")"
      sleep 0.05
    done
  done < <(emu_links)
}

emu_write_state() {
  m6_state_set M6_EMULATOR "$M6_EMULATOR"
  m6_state_set M6_EMULATOR_WHY "$M6_EMULATOR_WHY"
}

# Stops the emulators by their recorded pids (only if the pid is still an m6-linkemu, in
# case it was reused), then forgets the emulation state.
emu_stop() {
  local dir f pid pids=()
  dir=$(emu_dir)
  [ -d "$dir" ] || return 0
  for f in "$dir"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = m6-linkemu ] && pids+=("$pid")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "${pids[@]}" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

# --- link ----------------------------------------------------------------------------------

emu_link_usage() {
  cat <<EOF
usage: testbed/run link LINK [--dir both|up|down] [--clear] [--delay MS] [--jitter MS]
                        [--rate KBIT] [--burst BYTES] [--loss PCT] [--loss-ge P,R,1-H,1-K]
                        [--queue PKTS]
  LINK is one of: $(emu_links | paste -sd' ')
  up = node -> router, down = router -> node (default: both). Options not given keep their
  current value; --clear first resets the direction(s) to a plain link. --rate 0 is
  unlimited, --loss 0 no loss. --loss-ge is Gilbert-Elliott loss (percent, as netem's
  'loss gemodel'). --burst is the user emulator's token bucket (netem has none).
EOF
}

emu_num() {
  [[ $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] || m6_die "link: $1 '$2' is not a non-negative number"
}

cmd_link() {
  local link="" dir=both clear=0 mode words=() opt val d
  [ $# -gt 0 ] || {
    emu_link_usage >&2
    exit 2
  }
  while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
      --clear)
        clear=1
        shift
        continue
        ;;
      -h | --help)
        emu_link_usage
        return 0
        ;;
      --*)
        [ $# -ge 2 ] || m6_die "link: $opt needs a value"
        val=$2
        shift 2
        ;;
      *)
        [ -z "$link" ] || m6_die "link: unexpected argument '$opt'"
        link=$opt
        shift
        continue
        ;;
    esac
    case $opt in
      --dir)
        case $val in up | down | both) dir=$val ;; *) m6_die "link: --dir '$val': one of both, up, down" ;; esac
        ;;
      --delay) emu_num "$opt" "$val" && words+=("delay=${val}ms") ;;
      --jitter) emu_num "$opt" "$val" && words+=("jitter=${val}ms") ;;
      --rate) emu_num "$opt" "$val" && words+=("rate=${val}kbit") ;;
      --loss) emu_num "$opt" "$val" && words+=("loss=${val}%") ;;
      --burst)
        [[ $val =~ ^[0-9]+$ ]] || m6_die "link: --burst '$val' is not a number of bytes"
        words+=("burst=$val")
        ;;
      --queue)
        [[ $val =~ ^[1-9][0-9]*$ ]] || m6_die "link: --queue '$val' is not a number of packets (>= 1)"
        words+=("queue=$val")
        ;;
      --loss-ge)
        [[ $val =~ ^[0-9.]+(,[0-9.]+){0,3}$ ]] || m6_die "link: --loss-ge '$val': P[,R[,1-H[,1-K]]] in percent"
        words+=("ge=$val")
        ;;
      *) m6_die "link: unknown option '$opt' (see testbed/run link --help)" ;;
    esac
  done
  [ -n "$link" ] || m6_die "link: which link? ($(emu_links | paste -sd' '))"
  emu_is_link "$link" || m6_die "link: unknown link '$link' (emulated links: $(emu_links | paste -sd' '))"
  m6_ns_exists router || m6_die "testbed '$M6_PREFIX' is not up"
  [ "$clear" = 1 ] || [ ${#words[@]} -gt 0 ] || m6_die "link: nothing to change (see testbed/run link --help)"
  mode=$(emu_mode)
  case $mode in
    user)
      if [ "$clear" = 1 ]; then
        "$(emu_bin)" ctl --socket "$(emu_dir)/$link.sock" clear "$dir" || m6_die "link: emulator for $link refused"
      fi
      if [ ${#words[@]} -gt 0 ]; then
        "$(emu_bin)" ctl --socket "$(emu_dir)/$link.sock" set "$dir" "${words[@]}" ||
          m6_die "link: emulator for $link refused the change"
      fi
      ;;
    netem)
      for d in up down; do
        [ "$dir" = both ] || [ "$dir" = "$d" ] || continue
        emu_netem_set "$link" "$d" "$clear" "${words[@]}"
      done
      ;;
    *) m6_die "testbed '$M6_PREFIX' has no link emulation; bring it up with: testbed/run up --emulator auto" ;;
  esac
  m6_log "$link: $(emu_show_link "$link" | cut -d' ' -f1-7 | paste -sd';')"
}

# netem keeps no settings we could merge into, so the words live in the state directory.
emu_netem_set() {
  # shellcheck disable=SC2034 # m6_link sets all l_*; only l_b is read
  local link=$1 d=$2 clear=$3 f w k node ws=() l_prefix l_a l_aid l_b l_bid l_kind
  shift 3
  local -A cur=([delay]=0ms [jitter]=0ms [rate]=0kbit [burst]=0 [loss]=0% [queue]=1000)
  f="$(emu_dir)/$link.$d"
  mkdir -p "$(emu_dir)"
  if [ "$clear" = 0 ] && [ -f "$f" ]; then
    read -ra ws <"$f"
    for w in "${ws[@]}"; do cur[${w%%=*}]=${w#*=}; done
  fi
  for w in "$@"; do
    k=${w%%=*}
    # Random and Gilbert-Elliott loss replace each other.
    case $k in loss) unset 'cur[ge]' ;; ge) cur[loss]=0% ;; esac
    cur[$k]=${w#*=}
  done
  : >"$f"
  for k in delay jitter rate burst loss ge queue; do
    [ -n "${cur[$k]:-}" ] && printf '%s=%s ' "$k" "${cur[$k]}" >>"$f"
  done
  m6_link "$link"
  if [ "$d" = down ]; then node=router; else node=$l_b; fi
  local args=(limit "${cur[queue]}" delay "${cur[delay]}" "${cur[jitter]}")
  [ "${cur[rate]}" = 0kbit ] || args+=(rate "${cur[rate]}")
  if [ -n "${cur[ge]:-}" ]; then
    args+=(loss gemodel)
    for w in ${cur[ge]//,/ }; do args+=("$w%"); done
  elif [ "${cur[loss]}" != 0% ]; then
    args+=(loss random "${cur[loss]}")
  fi
  [ "${cur[burst]}" = 0 ] || m6_log "netem has no token bucket; --burst ignored"
  ip netns exec "$(m6_ns "$node")" tc qdisc replace dev "$link" root netem "${args[@]}" ||
    m6_die "tc netem on $node/$link failed"
}

# One line per direction: "up WORDS [COUNTERS]", "down ...".
emu_show_link() {
  # shellcheck disable=SC2034 # m6_link sets all l_*; only l_b is read
  local link=$1 d f l_prefix l_a l_aid l_b l_bid l_kind node
  case $(emu_mode) in
    user) "$(emu_bin)" ctl --socket "$(emu_dir)/$link.sock" show 2>&1 | grep -E '^(up|down) ' ;;
    netem)
      m6_link "$link"
      for d in up down; do
        f="$(emu_dir)/$link.$d"
        if [ "$d" = down ]; then node=router; else node=$l_b; fi
        echo "$d $(cat "$f" 2>/dev/null || echo 'transparent') $(ip netns exec "$(m6_ns "$node")" tc -s qdisc show dev "$link" 2>/dev/null | awk '/Sent/ {print "sent=" $2 "B/" $4 "pkt dropped=" $7}' | tr -d ',')"
      done
      ;;
  esac
}

emu_status() {
  local mode l line
  mode=$(emu_mode)
  [ "$mode" != none ] || return 0
  echo
  echo "link emulation: $mode ($(m6_state_get M6_EMULATOR_WHY || true)); up = node -> router"
  printf '%-9s %s\n' LINK "DIRECTION SETTINGS COUNTERS"
  while read -r l; do
    while read -r line; do
      printf '%-9s %s\n' "$l" "$line"
    done < <(emu_show_link "$l")
  done < <(emu_links)
}
