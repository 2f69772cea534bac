# shellcheck shell=bash
# Router advertisements on the mobile node's links (`up --ra`), with radvd from Debian: one
# radvd per advertising namespace (the router for the foreign links, each home agent for its
# home link), its configuration, pid file and log in the state directory. `down` stops them
# with every other process in the testbed's namespaces.

# Writes the radvd configuration for the links "IFACE PREFIX/64 ..." (pairs) to stdout.
# Intervals are Mobile IPv6's (RFC 6275 §7.5 allows a MinRtrAdvInterval of 0.03 s and a
# MaxRtrAdvInterval of 0.07 s with the Advertisement Interval option), so a mobile node
# learns of a new link in well under a second even without a solicitation.
m6_radvd_conf() {
  local ifname prefix
  while [ $# -ge 2 ]; do
    ifname=$1 prefix=$2
    shift 2
    cat <<EOC
interface $ifname {
  AdvSendAdvert on;
  IgnoreIfMissing on;
  MinRtrAdvInterval 0.5;
  MaxRtrAdvInterval 1.5;
  MinDelayBetweenRAs 0.05;
  AdvIntervalOpt on;
  AdvDefaultLifetime 60;
  prefix $prefix {
    AdvOnLink on;
    AdvAutonomous on;
    AdvRouterAddr on;
  };
};
EOC
  done
}

# m6_radvd_start NODE IFACE PREFIX/64 [IFACE PREFIX/64 ...]
m6_radvd_start() {
  local node=$1 base
  shift
  command -v radvd >/dev/null 2>&1 ||
    m6_die "radvd not found (up --ra advertises the MN's links with it): apt-get install radvd"
  base="$M6_STATE_DIR/${M6_PREFIX}-radvd-$node"
  m6_radvd_conf "$@" >"$base.conf"
  # radvd refuses to run without forwarding (a router) and forks into the background
  # itself once the configuration is good.
  ip netns exec "$(m6_ns "$node")" radvd -C "$base.conf" -p "$base.pid" -m logfile -l "$base.log" ||
    m6_die "radvd in $(m6_ns "$node") failed; see $base.log"
}

# Advertise every MN link from its side-A node: the foreign links from the router, home1
# from ha1.
m6_ra_start_all() {
  local name pfx a aid b bid kind
  local -A links=()
  while read -r name pfx a aid b bid kind; do
    [ "$b" = mn ] || continue
    links[$a]+="$name ${pfx}/64 "
  done < <(m6_links)
  for a in "${!links[@]}"; do
    # shellcheck disable=SC2086 # pairs of words
    m6_radvd_start "$a" ${links[$a]}
  done
}
