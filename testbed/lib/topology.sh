# shellcheck shell=bash disable=SC2034 # sourced by testbed/run, which uses these
# The testbed's shape, as data. Everything else in testbed/ is generated from these tables,
# so changing an address or adding a link happens here and nowhere else.
#
# Addresses are the same in every testbed instance: instances are isolated by namespace, not
# by address, so scripts and tests can rely on fixed values and still run side by side.

# Nodes, in the order status prints them. Namespace of node N is "<prefix>-N".
M6_NODES=(client router ha1 ha2 sn1 sn2 sn3 mn)

# One line per link (one /64 each): name, /64 prefix, side A node and host id, side B node and
# host id, kind. The interface on a link is named after the link in every namespace, so
# "uplink1" is the same link seen from the router and from ha1.
#   p2p    veth pair A <-> B, both ends up.
#   visit  veth pair router <-> mn, MN end down until `move mn <link>` attaches it.
#   home   bridge named after the link in the HA's namespace (the HA's home interface);
#          B (if any) attaches through a bridge port "<link>-<B>". A bridge rather than a veth
#          so more nodes can join the home link later without changing the HA side.
m6_links() {
  cat <<'EOF'
cnet     2001:db8:10:: router 1 client 2   p2p
uplink1  2001:db8:21:: router 1 ha1    2   p2p
uplink2  2001:db8:22:: router 1 ha2    2   p2p
sn1net   2001:db8:31:: router 1 sn1    2   p2p
sn2net   2001:db8:32:: router 1 sn2    2   p2p
sn3net   2001:db8:33:: router 1 sn3    2   p2p
foreign1 2001:db8:41:: router 1 mn     100 visit
foreign2 2001:db8:42:: router 1 mn     100 visit
home1    2001:db8:1::  ha1    1 mn     100 home
home2    2001:db8:2::  ha2    1 -      -   home
EOF
}

# Home prefixes are reached through their home agent: the router needs a route for each,
# via the HA's uplink address. (home prefix link, uplink link, HA node)
m6_home_routes() {
  cat <<'EOF'
home1 uplink1 ha1
home2 uplink2 ha2
EOF
}

# Where each fixed node sends everything that is not on-link. The MN's default route follows
# its current link and is set by `move`.
m6_default_link() {
  case "$1" in
    client) echo cnet ;;
    ha1) echo uplink1 ;;
    ha2) echo uplink2 ;;
    sn1) echo sn1net ;;
    sn2) echo sn2net ;;
    sn3) echo sn3net ;;
    *) return 1 ;;
  esac
}

# Links the MN can be attached to, and the one it starts on.
M6_MN_LINKS=(home1 foreign1 foreign2)
M6_MN_START_LINK=home1

# The Distributed Server address: a home address on ha1's home link that no interface carries;
# the contact node registers it with ha1 (host id 200 next to the MN's 100).
M6_DSA_HOSTID=200

# Nodes that forward packets: the router and the home agents (an HA is its home link's gateway,
# as in the seed's Figure 1 where the server networks reach the NISTnet core through their HAs).
m6_is_forwarder() {
  case "$1" in router | ha1 | ha2) return 0 ;; *) return 1 ;; esac
}

# Look up one link's fields into the caller's variables l_prefix l_a l_aid l_b l_bid l_kind.
m6_link() {
  local name pfx a aid b bid kind
  while read -r name pfx a aid b bid kind; do
    if [ "$name" = "$1" ]; then
      # shellcheck disable=SC2034 # consumed by the caller
      l_prefix=$pfx l_a=$a l_aid=$aid l_b=$b l_bid=$bid l_kind=$kind
      return 0
    fi
  done < <(m6_links)
  return 1
}
