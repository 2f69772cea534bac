//! The kernel-facing layer (DESIGN.md layer 5): sockets and system calls the higher layers
//! use through small safe types. Every `unsafe` block and every `libc` call of the crate
//! lives under this module, each with a comment saying why it is sound.
//!
//! - [`nfqueue`]: netfilter queue — packets a netfilter rule hands to userspace, answered
//!   with a verdict and optionally a rewritten packet (the `user` data path's receive side).
//! - [`raw`]: raw IPv6 sockets (send whole packets with `IPPROTO_RAW`, receive ICMPv6).
//! - [`netns`]: move the calling thread into a named network namespace (tests, testbed).
//! - [`signals`]: signals as a file descriptor (signalfd) the event loop polls.
//! - [`tap`]: TAP devices, Ethernet frames through a file descriptor (link emulator).
//! - [`timer`]: the monotonic clock in nanoseconds and an absolute-time timerfd.
//! - [`process`]: daemonizing, standard descriptors, process liveness, the file-mode mask.

pub mod netns;
pub mod nfqueue;
pub mod process;
pub mod raw;
pub mod signals;
pub mod tap;
pub mod timer;
