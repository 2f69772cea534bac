//! The authentication check before a handoff (`ds::hello`) over its own TCP connection
//! to the acceptor's `ControlPort`: the donor's [`probe`], the acceptor's [`answer_on`].

use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

use super::other;
use crate::crypto::auth::SharedKey;
use crate::ds::hello::{self, ANSWER_HEAD, HELLO_HEAD, NONCE_LEN};
use crate::sys::tcp_connect;

fn counter() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn refused(e: hello::HelloError) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
}

/// Checks, from our own address `from`, that node `node` at `to` holds our group's key;
/// the error of a node that does not says "authentication failed".
pub fn probe(
    from: Ipv6Addr,
    to: SocketAddrV6,
    node: u32,
    group: &SharedKey,
    me: u32,
    give_up: Duration,
) -> io::Result<()> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| other("no randomness"))?;
    let mut s = tcp_connect::connect_from(from, to, give_up)
        .map_err(|e| io::Error::new(e.kind(), format!("node {node} at {to}: {e}")))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(give_up))?;
    s.set_write_timeout(Some(give_up))?;
    let timed_out = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "node {node} at {to} did not answer our authentication hello in {give_up:?}"
                ),
            )
        } else {
            io::Error::new(e.kind(), format!("node {node} at {to}: {e}"))
        }
    };
    s.write_all(&hello::hello(group, me, node, counter(), &nonce))
        .map_err(timed_out)?;
    let mut head = [0u8; ANSWER_HEAD];
    s.read_exact(&mut head).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            refused(hello::HelloError::Malformed {
                node,
                why: "it closed the connection: an older mip6d, or not a handoff port",
            })
        } else {
            timed_out(e)
        }
    })?;
    let len = hello::answer_head(node, &head).map_err(refused)?;
    let mut frame = vec![0u8; len];
    s.read_exact(&mut frame).map_err(timed_out)?;
    hello::check_welcome(group, me, node, &nonce, &frame).map_err(refused)
}

/// Whether `s` (just accepted on `ControlPort`) starts with a hello; waits for its first
/// four bytes at most `give_up`.
pub fn starts_with_hello(s: &TcpStream, give_up: Duration) -> io::Result<bool> {
    let end = Instant::now() + give_up;
    let mut first = [0u8; 4];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        s.set_read_timeout(Some(left))?;
        match s.peek(&mut first) {
            Ok(0) => return Ok(false),
            Ok(n) if n == first.len() => return Ok(hello::is_hello(&first)),
            // Part of the head: the rest follows at once.
            Ok(_) => std::thread::sleep(Duration::from_micros(200)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Answers the hello on `s`. Returns the donor's node id, or an error saying
/// "authentication failed" after telling the donor so.
pub fn answer_on(s: &mut TcpStream, group: &SharedKey, me: u32) -> io::Result<u32> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = [0u8; HELLO_HEAD];
    s.read_exact(&mut head)?;
    let len = hello::frame_len([head[4], head[5], head[6], head[7]])
        .ok_or_else(|| other("authentication failed: a hello frame too long"))?;
    let mut frame = vec![0u8; len];
    s.read_exact(&mut frame)?;
    let (reply, from) = hello::answer(group, me, counter(), &frame);
    s.write_all(&reply)?;
    from.ok_or_else(|| {
        other(format!(
            "authentication failed: a hello from {} did not verify with our SharedKeyFile",
            s.peer_addr().map_or("?".into(), |a| a.ip().to_string())
        ))
    })
}
