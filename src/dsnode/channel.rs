//! The handoff control channel: each `ds::handoff` message sealed with the `handoff`
//! subkey of the shared key (`crypto::auth`), preceded by its length (u32, big-endian),
//! over one TCP connection per handoff, opened by the donor to the acceptor's
//! `ControlPort`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::other;
use crate::crypto::auth::{CounterSource, ReplayWindow, SharedKey};
use crate::ds::conn_state::Limits;
use crate::ds::handoff::{self, Message, MAX_APP_LEN};
use crate::sys::sockbuf;

/// Frames above this size get the socket tuned for them ([`sockbuf`]).
const BULK: usize = 64 * 1024;

/// What the sealed frame adds to a message's payload, generously.
const FRAME_OVERHEAD: usize = 256;

pub struct Channel {
    stream: TcpStream,
    key: SharedKey,
    me: u32,
    counter: CounterSource,
    replay: ReplayWindow,
    limits: Limits,
    /// How long the last message took: (sealing, writing) for a send; (reading the
    /// frame once its length had come, opening it) for a receive.
    pub last_send: (Duration, Duration),
    pub last_recv: (Duration, Duration),
}

impl Channel {
    /// `group` is the Distributed Servers shared key; the channel uses its `handoff`
    /// subkey. `me` is our node id.
    pub fn new(
        stream: TcpStream,
        group: &SharedKey,
        me: u32,
        limits: Limits,
    ) -> io::Result<Channel> {
        let key = group.derive("handoff");
        stream.set_nodelay(true)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(Channel {
            stream,
            key,
            me,
            counter: CounterSource::new(now),
            replay: ReplayWindow::new(),
            limits,
            last_send: Default::default(),
            last_recv: Default::default(),
        })
    }

    pub fn send(&mut self, m: &Message) -> io::Result<()> {
        let t = Instant::now();
        let frame = handoff::seal(&self.key, self.me, self.counter.next(), m);
        let mut b = (frame.len() as u32).to_be_bytes().to_vec();
        b.extend(frame);
        if b.len() > BULK {
            // One write, not one per acknowledgement: an Offer with full queues is
            // hundreds of kB and the default buffer 16 kB.
            sockbuf::set_send_buffer(self.stream.as_fd(), b.len())?;
        }
        let sealed = t.elapsed();
        let t = Instant::now();
        let r = self.stream.write_all(&b);
        self.last_send = (sealed, t.elapsed());
        r
    }

    /// The next message with its sender's node id, or `None` when `deadline` passed
    /// first. A frame that is not authentic, a replay or malformed is an error: the
    /// channel is then closed by the caller (there is no resynchronising a stream).
    pub fn recv(&mut self, deadline: Option<Instant>) -> io::Result<Option<(u32, Message)>> {
        let wait = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_micros(100))
        });
        self.stream.set_read_timeout(wait)?;
        let mut len = [0; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len) as usize;
        let max = self.limits.max_send_queue as usize
            + self.limits.max_recv_queue as usize
            + MAX_APP_LEN
            + FRAME_OVERHEAD;
        if len > max {
            return Err(other(format!(
                "handoff control frame of {len} bytes, limit {max}"
            )));
        }
        let t = Instant::now();
        let mut buf = vec![0; len];
        // The rest of a frame that has begun comes at once.
        self.stream.set_read_timeout(None)?;
        // No SO_RCVLOWAT for the whole frame: waking once per frame looked cheaper, but
        // the reader then sometimes slept for hundreds of ms with the frame's tail
        // already sent (an Offer of 400 kB missed the donor's 500 ms accept timeout
        // in about one handoff in ten on the testbed; none in 20 without the mark).
        self.stream.read_exact(&mut buf)?;
        let read = t.elapsed();
        let t = Instant::now();
        let r = handoff::open(&self.key, &mut self.replay, &buf, &self.limits)
            .map(Some)
            .map_err(|e| other(e.to_string()));
        self.last_recv = (read, t.elapsed());
        r
    }
}
