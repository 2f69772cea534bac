//! The application side of a Distributed Servers handoff: a server hands a live
//! connection to another node through its local mip6d, and receives the connections
//! other nodes hand to it. The protocol (one JSON object per `SOCK_SEQPACKET` message,
//! the socket attached with `SCM_RIGHTS`) is described in `dsnode::service` and the
//! README's "Distributed Servers" section.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use mip6d::dsapp::DsApp;
//! let mut app = DsApp::connect("/run/mip6d-ds-web.sock".as_ref())?;
//! app.register(8000)?;
//! let handed = app.accept()?; // a connection another node handed here
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddrV6, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use serde_json::{json, Value};

use crate::hex;
use crate::sys::seqpacket::{SeqPacket, MAX_MESSAGE};

/// A connection handed to this node.
#[derive(Debug)]
pub struct Handed {
    pub stream: TcpStream,
    /// What the donor's application sent along (e.g. how far the reply got).
    pub app: Vec<u8>,
    pub from_node: u32,
    pub local: SocketAddrV6,
    pub peer: SocketAddrV6,
}

/// How a handoff this application asked for ended.
#[derive(Debug)]
pub struct HandoffResult {
    pub id: u64,
    /// The acceptor serves the connection now.
    pub completed: bool,
    /// "completed", "rolled back: …", "failed: …".
    pub outcome: String,
    /// The connection back, after a rollback: keep serving it.
    pub back: Option<TcpStream>,
}

pub struct DsApp {
    sock: SeqPacket,
    /// Messages that arrived while waiting for another kind.
    pending: VecDeque<(Value, Option<OwnedFd>)>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl DsApp {
    /// Connects to mip6d's application socket of one `DistributedServer` block.
    pub fn connect(path: &Path) -> io::Result<DsApp> {
        Ok(DsApp {
            sock: SeqPacket::connect(path)?,
            pending: VecDeque::new(),
        })
    }

    fn send(&self, v: &Value, fd: Option<std::os::fd::BorrowedFd<'_>>) -> io::Result<()> {
        self.sock.send(v.to_string().as_bytes(), fd)
    }

    fn recv(&self) -> io::Result<(Value, Option<OwnedFd>)> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, fd) = self.sock.recv(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "mip6d closed the application socket",
            ));
        }
        let v = serde_json::from_slice(&buf[..n]).map_err(|e| bad(e.to_string()))?;
        Ok((v, fd))
    }

    /// The next message that `want` accepts; others wait in order for their reader.
    fn wait_for(&mut self, want: impl Fn(&Value) -> bool) -> io::Result<(Value, Option<OwnedFd>)> {
        if let Some(i) = self.pending.iter().position(|(v, _)| want(v)) {
            if let Some(m) = self.pending.remove(i) {
                return Ok(m);
            }
        }
        loop {
            let m = self.recv()?;
            if want(&m.0) {
                return Ok(m);
            }
            self.pending.push_back(m);
        }
    }

    fn answer(&mut self, op: &str) -> io::Result<Value> {
        let (v, _) = self.wait_for(|v| v["op"] == op && v.get("event").is_none())?;
        if v["ok"] == true {
            Ok(v)
        } else {
            Err(io::Error::other(format!(
                "mip6d refused {op}: {}",
                v["error"].as_str().unwrap_or("no reason given")
            )))
        }
    }

    /// Asks for the connections handed to this node for (DSA, `port`).
    pub fn register(&mut self, port: u16) -> io::Result<()> {
        self.send(&json!({"op": "register", "port": port}), None)?;
        self.answer("register").map(|_| ())
    }

    /// Waits for the next connection handed here.
    pub fn accept(&mut self) -> io::Result<Handed> {
        let (v, fd) = self.wait_for(|v| v["event"] == "accepted")?;
        let fd = fd.ok_or_else(|| bad("an accepted connection without its socket"))?;
        let addr = |k: &str| -> io::Result<SocketAddrV6> {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("\"{k}\" is not an address")))
        };
        Ok(Handed {
            stream: TcpStream::from(fd),
            app: v["app"]
                .as_str()
                .map(|h| hex::decode(h).unwrap_or_default())
                .unwrap_or_default(),
            from_node: v["from_node"].as_u64().unwrap_or(0) as u32,
            local: addr("local")?,
            peer: addr("peer")?,
        })
    }

    /// Hands `stream` to `node` (a peer's node id or address) with `app` for the
    /// acceptor's application, and waits until the handoff is over. Our descriptor is
    /// closed once mip6d has its own, before the connection is frozen.
    pub fn hand_off(
        &mut self,
        stream: TcpStream,
        node: &str,
        app: &[u8],
    ) -> io::Result<HandoffResult> {
        let id = self.start_hand_off(stream, node, app)?;
        self.wait_hand_off(id)
    }

    /// The first half of [`DsApp::hand_off`]: returns the handoff's id.
    pub fn start_hand_off(&mut self, stream: TcpStream, node: &str, app: &[u8]) -> io::Result<u64> {
        let msg = json!({"op": "handoff", "to": node, "app": hex::encode(app)});
        self.send(&msg, Some(stream.as_fd()))?;
        drop(stream);
        let v = self.answer("handoff")?;
        v["id"].as_u64().ok_or_else(|| bad("no handoff id"))
    }

    /// The second half: how handoff `id` ended.
    pub fn wait_hand_off(&mut self, id: u64) -> io::Result<HandoffResult> {
        let (v, fd) = self.wait_for(|v| v["event"] == "handoff" && v["id"].as_u64() == Some(id))?;
        Ok(HandoffResult {
            id,
            completed: v["ok"] == true,
            outcome: v["outcome"].as_str().unwrap_or("").to_string(),
            back: fd.map(TcpStream::from),
        })
    }
}
