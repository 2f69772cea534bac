//! The kernel-facing layer (DESIGN.md layer 5): sockets and system calls the higher layers
//! use through small safe types. Every `unsafe` block and every `libc` call of the crate
//! lives under this module, each with a comment saying why it is sound.
//!
//! - [`nfqueue`]: netfilter queue — packets a netfilter rule hands to userspace, answered
//!   with a verdict and optionally a rewritten packet (the `user` data path's receive side).
//! - [`rtnl`]: rtnetlink — links, IPv6 addresses, routes, rules, proxy neighbours, and the
//!   multicast events that report changes to them.
//! - [`raw`]: raw IPv6 sockets (send whole packets with `IPPROTO_RAW`, receive ICMPv6).
//! - [`netlink`]: netlink framing and a request socket that believes only the kernel.
//! - [`ipset`]: IP sets over nfnetlink (per-binding state matched by constant rules).
//! - [`mh_socket`]: the raw Mobility Header socket with ancillary data (kernel data path).
//! - [`netns`]: move the calling thread into a named network namespace (tests, testbed).
//! - [`signals`]: signals as a file descriptor (signalfd) the event loop polls.
//! - [`sockbuf`]: send buffer and receive low-water mark for bulk stream transfers.
//! - [`tcp_repair`]: freeze, dump, rebuild and reactivate a live TCP connection.
//! - [`netlock`]: the donor's nftables drop set for connections being handed off.
//! - [`xfrm`]: XFRM netlink — the kernel's MIP6 route-optimisation states, sub-policies
//!   and reports (the `kernel` data path).
//! - [`tap`]: TAP devices, Ethernet frames through a file descriptor (link emulator).
//! - [`timer`]: the monotonic clock in nanoseconds and an absolute-time timerfd.
//! - [`process`]: daemonizing, standard descriptors, process liveness, the file-mode mask.
//! - [`pidfd`]: a copy of another process's descriptor (`pidfd_getfd`).
//! - [`proc_net`]: a TCP connection's socket inode and the processes holding it.
//! - [`seqpacket`]: Unix sequenced-packet sockets carrying descriptors (`SCM_RIGHTS`).
//! - [`udp`]: UDP sockets bound to an address not (yet) local (`IPV6_FREEBIND`).

pub mod ipset;
pub mod mh_socket;
pub mod netlink;
pub mod netlock;
pub mod netns;
pub mod nfqueue;
pub mod nft_sets;
pub mod pidfd;
pub mod proc_net;
pub mod process;
pub mod raw;
pub mod rtnl;
pub mod seqpacket;
pub mod signals;
pub mod sockbuf;
pub mod tap;
pub mod tcp_connect;
pub mod tcp_repair;
pub mod timer;
pub mod udp;
pub mod xfrm;
