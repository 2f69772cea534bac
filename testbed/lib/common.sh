# shellcheck shell=bash
# Helpers shared by the testbed commands: errors, preflight checks, namespace access, state.

m6_die() {
  echo "testbed: error: $*" >&2
  exit 1
}

m6_log() {
  [ "${M6_QUIET:-0}" = 1 ] || echo "testbed: $*" >&2
}

# Fail early with the fix, not with whatever `ip` prints halfway through building the network.
m6_preflight() {
  if [ "$(id -u)" -ne 0 ]; then
    m6_die "must run as root (network namespaces and veth links need CAP_SYS_ADMIN and CAP_NET_ADMIN); try: sudo $0 $*"
  fi
  if ! command -v ip >/dev/null 2>&1; then
    m6_die "'ip' not found; install it with: apt-get install iproute2"
  fi
  if ! ip netns list >/dev/null 2>&1; then
    m6_die "'ip netns' does not work here (kernel without network namespaces, or a too old iproute2)"
  fi
  if [ ! -d /proc/sys/net/ipv6 ]; then
    m6_die "the kernel has no IPv6 (/proc/sys/net/ipv6 missing)"
  fi
}

# Prefixes become part of namespace names and of the state file name, and tests match
# namespaces by "<prefix>-": no '-' or '/' so one prefix can never be a prefix of another's
# namespaces (m6 vs m6-x).
m6_check_prefix() {
  [[ $1 =~ ^[A-Za-z0-9_]{1,24}$ ]] ||
    m6_die "bad prefix '$1': use 1-24 letters, digits or '_' (no '-')"
}

m6_ns() { echo "${M6_PREFIX}-$1"; }

m6_ns_exists() {
  # `ip netns list` prints "name (id: N)" for namespaces with an id.
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$(m6_ns "$1")"
}

# Write IPv6 sysctls inside a namespace. /proc/sys/net shows the namespace of the reader, and
# writing the files directly avoids depending on procps' sysctl.
#   m6_sysctl NODE "conf/all/forwarding=1" "conf/default/accept_ra=0" ...
m6_sysctl() {
  local node=$1 script="" kv
  shift
  for kv in "$@"; do
    script+="echo ${kv#*=} > /proc/sys/net/ipv6/${kv%%=*} || exit 1;"
  done
  ip netns exec "$(m6_ns "$node")" sh -c "$script"
}

# Run a batch of `ip` commands (one per line on stdin) inside a node's namespace: one process
# per node instead of one per command keeps `up` fast.
m6_ipb() {
  ip -n "$(m6_ns "$1")" -batch -
}

m6_state_file() { echo "${M6_STATE_DIR}/${M6_PREFIX}.env"; }

# Replace (or append) KEY=value in the state file; written to a temporary file and renamed so a
# reader never sees half a file.
m6_state_set() {
  local f tmp key=$1 value=$2
  f=$(m6_state_file)
  tmp="$f.tmp.$$"
  { grep -v "^${key}=" "$f" 2>/dev/null || true; echo "${key}=${value}"; } >"$tmp"
  mv -f "$tmp" "$f"
}

m6_state_get() {
  local f
  f=$(m6_state_file)
  [ -f "$f" ] || return 1
  sed -n "s/^$1=//p" "$f" | tail -n1
}

m6_upper() { echo "${1^^}"; }
