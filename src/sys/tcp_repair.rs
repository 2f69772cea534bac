//! `TCP_REPAIR` socket surgery: freeze a live TCP connection and dump its state on the donor
//! ([`freeze`], [`extract`]), rebuild it on the acceptor ([`restore`]) and bring it back to
//! life there ([`activate`]) once the client's packets are routed to the acceptor.
//!
//! The syscall order is the one measured on this kernel (shared reference
//! `tcp-repair.md`); the comments name the pitfall each step avoids. The donor must block
//! the connection's packets *before* freezing ([`super::netlock`]), or the client's ACKs
//! reach the closed socket's listener and the client gets a reset.
//!
//! Every error names the step that failed and carries the errno.

use std::fmt;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::SocketAddrV6;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::ds::conn_state::{ConnState, RepairWindow, TcpOptions, MAX_WSCALE};

// linux/tcp.h
const TCP_REPAIR_ON: libc::c_int = 1;
const TCP_REPAIR_OFF: libc::c_int = 0;
const TCP_NO_QUEUE: libc::c_int = 0;
const TCP_RECV_QUEUE: libc::c_int = 1;
const TCP_SEND_QUEUE: libc::c_int = 2;
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;
const TCP_ESTABLISHED: u8 = 1;
// net/tcp.h option kinds, as TCP_REPAIR_OPTIONS takes them.
const TCPOPT_MSS: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;
// asm-generic/socket.h (the same on every architecture Linux runs this daemon on); the
// libc crate lacks them for glibc targets.
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;
// linux/sockios.h: SIOCOUTQ and SIOCINQ are the tty ioctl numbers.
const SIOCOUTQ: libc::Ioctl = libc::TIOCOUTQ;
const SIOCINQ: libc::Ioctl = libc::FIONREAD;
const SIOCOUTQNSD: libc::Ioctl = libc::SIOCOUTQNSD as libc::Ioctl;

/// One send() in repair mode takes at most about 70 kB of a queue; bigger chunks only
/// return short.
const RESTORE_CHUNK: usize = 64 * 1024;
/// Below this receive queue size the default receive buffer holds it; forcing a size
/// would also switch off the kernel's receive buffer autotuning for the connection.
const RCVBUF_FORCE_ABOVE: usize = 64 * 1024;

/// `struct tcp_repair_opt`
#[repr(C)]
#[derive(Clone, Copy)]
struct TcpRepairOpt {
    opt_code: u32,
    opt_val: u32,
}

/// `struct tcp_repair_window`
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TcpRepairWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

/// A step of the surgery that failed, with the kernel's reason.
#[derive(Debug)]
pub struct RepairError {
    pub step: &'static str,
    pub source: io::Error,
}

impl RepairError {
    /// The errno, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for RepairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TCP repair: {}: {}", self.step, self.source)
    }
}

impl std::error::Error for RepairError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

type Result<T> = std::result::Result<T, RepairError>;

fn at<T>(step: &'static str, r: io::Result<T>) -> Result<T> {
    r.map_err(|source| RepairError { step, source })
}

fn invalid(step: &'static str, msg: String) -> RepairError {
    RepairError {
        step,
        source: io::Error::new(io::ErrorKind::InvalidInput, msg),
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cvt_size(rc: libc::ssize_t) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

fn set_opt<T: Copy>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live, initialised T of exactly the length passed; the
    // kernel only reads it. An invalid fd or option is reported as an error.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    set_opt(fd, level, name, &val)
}

fn set_opts(fd: RawFd, name: libc::c_int, opts: &[TcpRepairOpt]) -> io::Result<()> {
    // SAFETY: the slice is live and holds `opts.len()` initialised #[repr(C)] structs,
    // the layout TCP_REPAIR_OPTIONS reads; the length passed is exactly their size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            name,
            opts.as_ptr().cast(),
            std::mem::size_of_val(opts) as libc::socklen_t,
        )
    })
    .map(drop)
}

/// getsockopt into a `T` that must be filled completely (every T used here is plain
/// integers, valid for any bit pattern).
fn get_opt<T: Copy + Default>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut val = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live T and `len` its size; the kernel writes at most `len` bytes
    // and reports how many it wrote.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut val as *mut T).cast(), &mut len) })?;
    if len as usize != size_of::<T>() {
        return Err(io::Error::other(format!(
            "kernel returned {len} bytes, expected {}",
            size_of::<T>()
        )));
    }
    Ok(val)
}

fn get_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    get_opt(fd, level, name)
}

fn ioctl_int(fd: RawFd, req: libc::Ioctl) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: SIOCOUTQ, SIOCOUTQNSD and SIOCINQ write one int through the pointer, which
    // points to a live c_int.
    cvt(unsafe { libc::ioctl(fd, req, &mut v as *mut libc::c_int) })?;
    u32::try_from(v).map_err(|_| io::Error::other(format!("negative queue length {v}")))
}

fn select_queue(fd: RawFd, queue: libc::c_int) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_QUEUE, queue)
}

/// Copies exactly `len` bytes of the selected repair queue without consuming them.
fn peek_queue(fd: RawFd, len: usize) -> io::Result<Vec<u8>> {
    // One byte more than expected: the send-queue peek returns the whole queue's length
    // whatever the buffer size (pitfall 9), so only `ret == len` proves we got it all.
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` is live and `buf.len()` bytes long; recv writes at most that many.
    let n = cvt_size(unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    })?;
    if n != len {
        return Err(io::Error::other(format!(
            "peeked {n} bytes, the queue length said {len}"
        )));
    }
    buf.truncate(len);
    Ok(buf)
}

/// Writes all of `data` into the selected repair queue, never blocking.
fn fill_queue(fd: RawFd, data: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let chunk = &data[off..data.len().min(off + RESTORE_CHUNK)];
        // SAFETY: `chunk` is a live slice; send only reads `chunk.len()` bytes of it.
        let n = cvt_size(unsafe {
            libc::send(
                fd,
                chunk.as_ptr().cast(),
                chunk.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        })?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "the kernel took 0 bytes at offset {off} of {}",
                data.len()
            )));
        }
        off += n;
    }
    Ok(())
}

fn sockaddr_of(sa: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain integers and arrays; all-zero is a valid value.
    let mut s: libc::sockaddr_in6 = unsafe { MaybeUninit::zeroed().assume_init() };
    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    s.sin6_port = sa.port().to_be();
    s.sin6_addr.s6_addr = sa.ip().octets();
    s.sin6_flowinfo = sa.flowinfo();
    s.sin6_scope_id = sa.scope_id();
    s
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn name(fd: RawFd, f: NameFn) -> io::Result<SocketAddrV6> {
    // SAFETY: as in sockaddr_of.
    let mut s: libc::sockaddr_in6 = unsafe { MaybeUninit::zeroed().assume_init() };
    let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: `f` is getsockname or getpeername; `s` is a live sockaddr_in6 and `len` its
    // size, so the kernel writes within it.
    cvt(unsafe { f(fd, (&mut s as *mut libc::sockaddr_in6).cast(), &mut len) })?;
    if s.sin6_family != libc::AF_INET6 as libc::sa_family_t {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not an IPv6 socket",
        ));
    }
    Ok(SocketAddrV6::new(
        s.sin6_addr.s6_addr.into(),
        u16::from_be(s.sin6_port),
        0,
        s.sin6_scope_id,
    ))
}

/// Freezes the connection: from now on the kernel neither sends nor acknowledges anything
/// on it. Needs CAP_NET_ADMIN (EPERM otherwise, pitfall 11). The network lock must
/// already be in place.
pub fn freeze(fd: BorrowedFd<'_>) -> Result<()> {
    at(
        "TCP_REPAIR on",
        set_int(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR,
            TCP_REPAIR_ON,
        ),
    )
}

/// Dumps a frozen connection. The socket stays frozen: close it to let it go silently (no
/// FIN, no RST: it counts only as `TcpEstabResets` on the donor), or [`activate`] it again
/// to roll back.
pub fn extract(fd: BorrowedFd<'_>) -> Result<ConnState> {
    let fd = fd.as_raw_fd();
    // tcp_info's first bytes have been stable since 2.6: state, ca_state, retransmits,
    // probes, backoff, options, wscales (snd low nibble, rcv high nibble).
    let info: [u8; 8] = at("TCP_INFO", get_info(fd))?;
    if info[0] != TCP_ESTABLISHED {
        return Err(invalid(
            "TCP_INFO",
            format!(
                "the connection is in TCP state {}, only ESTABLISHED ones can be handed off",
                info[0]
            ),
        ));
    }
    let opts = info[5];
    let options = TcpOptions {
        sack: opts & TCPI_OPT_SACK != 0,
        timestamps: opts & TCPI_OPT_TIMESTAMPS != 0,
        wscale: (opts & TCPI_OPT_WSCALE != 0).then_some((info[6] & 0x0f, info[6] >> 4)),
    };
    let outq = at("SIOCOUTQ", ioctl_int(fd, SIOCOUTQ))?;
    let unsent = at("SIOCOUTQNSD", ioctl_int(fd, SIOCOUTQNSD))?;
    let inq = at("SIOCINQ", ioctl_int(fd, SIOCINQ))?;
    let mss = at(
        "TCP_MAXSEG",
        get_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    )?;
    // The low bit is the microsecond-timestamp flag: passed back unchanged.
    let timestamp = at(
        "TCP_TIMESTAMP",
        get_opt::<u32>(fd, libc::IPPROTO_TCP, libc::TCP_TIMESTAMP),
    )?;
    let w: TcpRepairWindow = at(
        "TCP_REPAIR_WINDOW",
        get_opt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW),
    )?;

    at("TCP_REPAIR_QUEUE send", select_queue(fd, TCP_SEND_QUEUE))?;
    let write_seq = at(
        "TCP_QUEUE_SEQ send",
        get_opt::<u32>(fd, libc::IPPROTO_TCP, libc::TCP_QUEUE_SEQ),
    )?;
    let send_queue = at("peek send queue", peek_queue(fd, outq as usize))?;
    at("TCP_REPAIR_QUEUE receive", select_queue(fd, TCP_RECV_QUEUE))?;
    let rcv_nxt = at(
        "TCP_QUEUE_SEQ receive",
        get_opt::<u32>(fd, libc::IPPROTO_TCP, libc::TCP_QUEUE_SEQ),
    )?;
    let recv_queue = at("peek receive queue", peek_queue(fd, inq as usize))?;
    at("TCP_REPAIR_QUEUE none", select_queue(fd, TCP_NO_QUEUE))?;

    let local = at("getsockname", name(fd, libc::getsockname))?;
    let peer = at("getpeername", name(fd, libc::getpeername))?;
    let sndbuf = at("SO_SNDBUF", get_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF))?;
    let rcvbuf = at("SO_RCVBUF", get_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF))?;
    Ok(ConnState {
        local,
        peer,
        write_seq,
        rcv_nxt,
        unsent: unsent.min(outq),
        mss_clamp: u16::try_from(mss).unwrap_or(u16::MAX),
        options,
        timestamp,
        window: RepairWindow {
            snd_wl1: w.snd_wl1,
            snd_wnd: w.snd_wnd,
            max_window: w.max_window,
            rcv_wnd: w.rcv_wnd,
            rcv_wup: w.rcv_wup,
        },
        sndbuf: sndbuf.max(0) as u32,
        rcvbuf: rcvbuf.max(0) as u32,
        bu_sequence: None,
        home_keygen: None,
        phases: Default::default(),
        send_queue,
        recv_queue,
    })
}

fn get_info(fd: RawFd) -> io::Result<[u8; 8]> {
    // The kernel copies min(len, sizeof tcp_info): asking for the first 8 bytes only is
    // allowed and independent of the struct's growth.
    let mut buf = [0u8; 8];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is live and `len` bytes long; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    if (len as usize) < buf.len() {
        return Err(io::Error::other(format!("TCP_INFO returned {len} bytes")));
    }
    Ok(buf)
}

/// Rebuilds `state` as a socket in repair mode, bound to the service address and port and
/// connected to the client, with both queues and every option restored. Nothing has been
/// sent yet: switch the client's route to this node, then [`activate`].
pub fn restore(state: &ConnState) -> Result<OwnedFd> {
    if let Some((snd, rcv)) = state.options.wscale {
        if snd > MAX_WSCALE || rcv > MAX_WSCALE {
            return Err(invalid(
                "check",
                format!("window scale {snd}/{rcv} above 14"),
            ));
        }
    }
    // SAFETY: socket() has no memory preconditions; the result is checked.
    let raw = at(
        "socket",
        cvt(unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }),
    )?;
    // SAFETY: socket() just returned this descriptor and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let fd = sock.as_raw_fd();

    // Before bind: repair mode sets SK_FORCE_REUSE, so the bind succeeds although this
    // node's own listener holds the service port (pitfall 13).
    at(
        "TCP_REPAIR on",
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, TCP_REPAIR_ON),
    )?;
    let (in_flight, _tail) = state.send_queue_split();
    if !in_flight.is_empty() {
        // Nothing is acknowledged in repair mode, so the whole in-flight part must fit
        // the buffer at once (pitfall 10); skb overhead roughly doubles it.
        let want = state.sndbuf.max((in_flight.len() as u32).saturating_mul(2));
        at(
            "SO_SNDBUFFORCE",
            set_int(
                fd,
                libc::SOL_SOCKET,
                SO_SNDBUFFORCE,
                want.min(i32::MAX as u32) as i32,
            ),
        )?;
    }
    if state.recv_queue.len() > RCVBUF_FORCE_ABOVE {
        let want = state
            .rcvbuf
            .max((state.recv_queue.len() as u32).saturating_mul(2));
        at(
            "SO_RCVBUFFORCE",
            set_int(
                fd,
                libc::SOL_SOCKET,
                SO_RCVBUFFORCE,
                want.min(i32::MAX as u32) as i32,
            ),
        )?;
    }
    let local = sockaddr_of(&state.local);
    // SAFETY: `local` is a live sockaddr_in6 and the length is its size.
    at(
        "bind",
        cvt(unsafe {
            libc::bind(
                fd,
                (&local as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }),
    )?;

    // Sequence numbers while the socket is still CLOSE (EPERM after connect, pitfall 7):
    // each queue starts where its restored contents begin.
    let inq = state.recv_queue.len() as u32;
    let outq = state.send_queue.len() as u32;
    at("TCP_REPAIR_QUEUE receive", select_queue(fd, TCP_RECV_QUEUE))?;
    at(
        "TCP_QUEUE_SEQ receive",
        set_opt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUEUE_SEQ,
            &state.rcv_nxt.wrapping_sub(inq),
        ),
    )?;
    at("TCP_REPAIR_QUEUE send", select_queue(fd, TCP_SEND_QUEUE))?;
    at(
        "TCP_QUEUE_SEQ send",
        set_opt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUEUE_SEQ,
            &state.write_seq.wrapping_sub(outq),
        ),
    )?;

    // In repair mode connect sends no SYN: the socket is ESTABLISHED at once.
    let peer = sockaddr_of(&state.peer);
    // SAFETY: as for bind.
    at(
        "connect",
        cvt(unsafe {
            libc::connect(
                fd,
                (&peer as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }),
    )?;

    // After connect, before any data (pitfall 6): without the window scales every window
    // is misread and the connection hangs.
    let mut opts = vec![TcpRepairOpt {
        opt_code: TCPOPT_MSS,
        opt_val: u32::from(state.mss_clamp),
    }];
    if let Some((snd, rcv)) = state.options.wscale {
        opts.push(TcpRepairOpt {
            opt_code: TCPOPT_WINDOW,
            opt_val: u32::from(snd) | (u32::from(rcv) << 16),
        });
    }
    if state.options.sack {
        opts.push(TcpRepairOpt {
            opt_code: TCPOPT_SACK_PERM,
            opt_val: 0,
        });
    }
    if state.options.timestamps {
        opts.push(TcpRepairOpt {
            opt_code: TCPOPT_TIMESTAMP,
            opt_val: 0,
        });
    }
    at(
        "TCP_REPAIR_OPTIONS",
        set_opts(fd, libc::TCP_REPAIR_OPTIONS, &opts),
    )?;
    // Without it TSval jumps to this host's raw clock and the client may drop every
    // segment as a PAWS failure (pitfall 5).
    at(
        "TCP_TIMESTAMP",
        set_opt(fd, libc::IPPROTO_TCP, libc::TCP_TIMESTAMP, &state.timestamp),
    )?;

    at("TCP_REPAIR_QUEUE receive", select_queue(fd, TCP_RECV_QUEUE))?;
    at("restore receive queue", fill_queue(fd, &state.recv_queue))?;
    // After connect (which overwrites it) and after the receive queue (rcv_wup must not
    // pass rcv_nxt), pitfall 8.
    let w = TcpRepairWindow {
        snd_wl1: state.window.snd_wl1,
        snd_wnd: state.window.snd_wnd,
        max_window: state.window.max_window,
        rcv_wnd: state.window.rcv_wnd,
        rcv_wup: state.window.rcv_wup,
    };
    at(
        "TCP_REPAIR_WINDOW",
        set_opt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW, &w),
    )?;
    // Restored as already transmitted; the never-sent tail waits for `activate`, so it
    // cannot leave before the client's route points here.
    at("TCP_REPAIR_QUEUE send", select_queue(fd, TCP_SEND_QUEUE))?;
    at("restore send queue", fill_queue(fd, in_flight))?;
    at("TCP_REPAIR_QUEUE none", select_queue(fd, TCP_NO_QUEUE))?;
    Ok(sock)
}

/// Leaves repair mode (the kernel sends a window probe; the client's answer tells this
/// socket what the client really has), then writes `unsent_tail` — the part of the send
/// queue the donor never transmitted ([`ConnState::send_queue_split`]) — as normal data.
/// Call it only after the client's packets are routed to this node: a probe answered to
/// the donor costs a one-second stall (pitfall 4). Also the donor's rollback: activate the
/// socket it restored from its own dump. A blocking socket blocks on the tail as any write.
pub fn activate(fd: BorrowedFd<'_>, unsent_tail: &[u8]) -> Result<()> {
    let fd = fd.as_raw_fd();
    at(
        "TCP_REPAIR off",
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, TCP_REPAIR_OFF),
    )?;
    let mut off = 0;
    while off < unsent_tail.len() {
        let rest = &unsent_tail[off..];
        // SAFETY: `rest` is a live slice; send only reads `rest.len()` bytes of it.
        let rc = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        match cvt_size(rc) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(fd),
            Err(e) => {
                return Err(RepairError {
                    step: "send unsent tail",
                    source: e,
                })
            }
        }
    }
    Ok(())
}

fn wait_writable(fd: RawFd) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `p` is one live pollfd; a failed or timed-out poll just retries the send.
    unsafe { libc::poll(&mut p, 1, 100) };
}

/// A socket's send sequence numbers: the unacknowledged, next-to-send and last-written
/// positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSeqs {
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub write_seq: u32,
}

/// The send sequence numbers of a socket in repair mode (what [`restore`] rebuilt, to
/// compare with the donor's dump); leaves no repair queue selected.
pub fn send_seqs(fd: BorrowedFd<'_>) -> Result<SendSeqs> {
    let fd = fd.as_raw_fd();
    let outq = at("SIOCOUTQ", ioctl_int(fd, SIOCOUTQ))?;
    let unsent = at("SIOCOUTQNSD", ioctl_int(fd, SIOCOUTQNSD))?;
    at("TCP_REPAIR_QUEUE send", select_queue(fd, TCP_SEND_QUEUE))?;
    let write_seq = at(
        "TCP_QUEUE_SEQ send",
        get_opt::<u32>(fd, libc::IPPROTO_TCP, libc::TCP_QUEUE_SEQ),
    );
    at("TCP_REPAIR_QUEUE none", select_queue(fd, TCP_NO_QUEUE))?;
    let write_seq = write_seq?;
    Ok(SendSeqs {
        snd_una: write_seq.wrapping_sub(outq),
        snd_nxt: write_seq.wrapping_sub(unsent),
        write_seq,
    })
}

/// The bytes written and not yet acknowledged by the peer (SIOCOUTQ): what a drain waits
/// to see reach zero.
pub fn unacked_bytes(fd: BorrowedFd<'_>) -> Result<u32> {
    at("SIOCOUTQ", ioctl_int(fd.as_raw_fd(), SIOCOUTQ))
}

/// The bytes written and never transmitted (SIOCOUTQNSD): the part of a send queue a
/// handoff ships without the client having seen it.
pub fn unsent_bytes(fd: BorrowedFd<'_>) -> Result<u32> {
    at("SIOCOUTQNSD", ioctl_int(fd.as_raw_fd(), SIOCOUTQNSD))
}

/// Bytes received and not yet read (SIOCINQ).
pub fn unread_bytes(fd: BorrowedFd<'_>) -> Result<u32> {
    at("SIOCINQ", ioctl_int(fd.as_raw_fd(), SIOCINQ))
}

/// The drain-before-freeze poll loop: samples SIOCOUTQ every `interval` until `drain`
/// says freeze; returns why and how long it waited.
pub fn drain(
    fd: BorrowedFd<'_>,
    drain: &mut crate::ds::drain::Drain,
    interval: std::time::Duration,
) -> Result<(crate::ds::drain::FreezeReason, std::time::Duration)> {
    use crate::ds::drain::Decision;
    let start = std::time::Instant::now();
    loop {
        let outq = unacked_bytes(fd)?;
        let elapsed = start.elapsed();
        match drain.sample(elapsed, outq) {
            Decision::Freeze(why) => return Ok((why, elapsed)),
            Decision::Wait => {
                let unsent = at("SIOCOUTQNSD", ioctl_int(fd.as_raw_fd(), SIOCOUTQNSD))?;
                if drain.solicit(outq, unsent) {
                    solicit_ack(fd)?;
                }
                std::thread::sleep(interval)
            }
        }
    }
}

/// The connection's TCP state (`TCP_ESTABLISHED` = 1, `TCP_FIN_WAIT1` = 4, ... as in
/// the kernel's `tcp_states.h`): whether our side has closed yet.
pub fn tcp_state(fd: BorrowedFd<'_>) -> Result<u8> {
    at("TCP_INFO", get_info(fd.as_raw_fd())).map(|i| i[0])
}

/// Makes the peer acknowledge at once what it has received: a moment in repair mode,
/// whose exit sends a window probe — a segment just below what the peer acknowledged,
/// which it answers with an immediate ACK instead of a delayed one. Nothing else
/// changes (the socket sends nothing while in repair mode, and the probe carries no
/// data). Needs CAP_NET_ADMIN. The peer answers such probes once per
/// `tcp_invalid_ratelimit` (500 ms by default).
pub fn solicit_ack(fd: BorrowedFd<'_>) -> Result<()> {
    let fd = fd.as_raw_fd();
    at(
        "TCP_REPAIR on (ACK probe)",
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, TCP_REPAIR_ON),
    )?;
    at(
        "TCP_REPAIR off (ACK probe)",
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, TCP_REPAIR_OFF),
    )
}
