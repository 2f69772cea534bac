//! The handoff control channel as the tests run it: length-prefixed frames sealed with
//! `ds::handoff::seal` over a TCP stream between two server nodes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

use mip6d::crypto::auth::{CounterSource, ReplayWindow, SharedKey};
use mip6d::ds::conn_state::Limits;
use mip6d::ds::handoff::{self, Message};

pub fn write_frame(s: &mut TcpStream, frame: &[u8]) {
    s.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
    s.write_all(frame).unwrap();
}

pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0; 4];
    s.read_exact(&mut len).expect("control frame length");
    let mut buf = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("control frame");
    buf
}

pub struct Control {
    pub key: SharedKey,
    pub me: u32,
    pub counter: CounterSource,
    pub replay: ReplayWindow,
}

impl Control {
    pub fn new(me: u32) -> Control {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        Control {
            key: SharedKey::from_bytes(b"tcprepair test shared key, 32+ bytes")
                .unwrap()
                .derive("handoff"),
            me,
            counter: CounterSource::new(now),
            replay: ReplayWindow::new(),
        }
    }

    pub fn send(&mut self, s: &mut TcpStream, m: &Message) {
        let frame = handoff::seal(&self.key, self.me, self.counter.next(), m);
        write_frame(s, &frame);
    }

    pub fn recv(&mut self, s: &mut TcpStream) -> Message {
        let frame = read_frame(s);
        handoff::open(&self.key, &mut self.replay, &frame, &Limits::default())
            .expect("authentic handoff message")
            .1
    }

    /// A message, or None when the read timed out.
    pub fn try_recv(&mut self, c: &mut TcpStream) -> Option<Message> {
        let mut len = [0; 4];
        match c.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e) => panic!("control channel: {e}"),
        }
        let mut buf = vec![0; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut buf).expect("control frame");
        let (_, m) = handoff::open(&self.key, &mut self.replay, &buf, &Limits::default())
            .expect("authentic handoff message");
        Some(m)
    }
}

/// Tcp and TcpExt counters of namespace `ns`.
pub fn tcp_counters(ns: &str) -> std::collections::HashMap<String, u64> {
    let mut m = std::collections::HashMap::new();
    for file in ["/proc/net/snmp", "/proc/net/netstat"] {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "cat", file])
            .output()
            .expect("spawn ip");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            if let [head, vals] = pair {
                let proto = head.split(':').next().unwrap_or("");
                for (k, v) in head.split_whitespace().zip(vals.split_whitespace()).skip(1) {
                    if let Ok(v) = v.parse() {
                        m.insert(format!("{proto}{k}"), v);
                    }
                }
            }
        }
    }
    m
}
