//! The handoff engine in mip6d: one [`Machine`] per `DistributedServer` block with a
//! `LocalAddress`, taking handoffs on `ControlPort` (TCP) and performing them when the
//! operator (`mip6ctl handoff`) or an application (the application socket, [`crate::dsapp`])
//! asks.
//!
//! The engine (`dsnode::donor`, `dsnode::acceptor`) blocks, so every handoff runs on a
//! worker thread; workers report to the event loop through a socket pair that is one of
//! the machine's sources, so the loop never waits for a handoff. A connection accepted
//! here stays with a *keeper* thread for as long as it lives: it owns the client's
//! binding and per-connection data path, releases them once our side has closed, and
//! hands the connection on when asked. The per-client BU sequence numbers live in the
//! machine, for every handoff of the daemon.
//!
//! Before it freezes a connection, the donor checks on its own connection to the
//! acceptor's `ControlPort` that the acceptor holds the group's key ([`super::hello`]);
//! the acceptor tells that hello from an Offer by its first bytes.
//!
//! The application socket (`SOCK_SEQPACKET`, one JSON object per message, a descriptor
//! attached with `SCM_RIGHTS` where said) is `<control socket without .sock>-ds-NAME.sock`:
//! - `{"op":"register","port":P}`: send me the connections handed to this node for
//!   (DSA, P); answered `{"ok":true,"op":"register"}`. Offers for a port nobody
//!   registered are rejected (the donor keeps its connection).
//! - `{"op":"handoff","to":NODE,"app":HEX}` + the socket: hand it to NODE (a peer's node
//!   id or address); the application closes its copy right after sending. Answered
//!   `{"ok":true,"op":"handoff","id":N}`, then `{"event":"handoff","id":N,"ok":…,
//!   "outcome":…}` with the socket attached again when the handoff rolled back.
//! - from mip6d: `{"event":"accepted","local":…,"peer":…,"app":HEX,"from_node":N}` + the
//!   restored socket. The application serves it and ends it with `shutdown(SHUT_WR)`:
//!   mip6d keeps a copy, and releases the client's binding once our FIN is acknowledged.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::{info, warn};

use super::acceptor::{accept_on, Accepted, AcceptorConfig, Sequences};
use super::conn_path::{ConnPath, ConnPaths, PathBackend};
use super::conn_xfrm::XfrmPaths;
use super::donor::{
    hand_off_keeping, prepare, send_mh, Contact, DonorConfig, DonorReport, Prepared,
};
use super::hello;
use crate::config::model::{DistributedServer, DsRole};
use crate::crypto::auth::SharedKey;
use crate::daemon::control::Command;
use crate::daemon::machine::{Ctx, Machine};
use crate::ds::handoff::{Outcome, Timeouts};
use crate::ds::phases::{Phases, Spans};
use crate::ds::redirect::unbind;
use crate::hex;
use crate::sys::netlock::NetLock;
use crate::sys::raw::{RawSocket, IPPROTO_RAW};
use crate::sys::seqpacket::{SeqListener, SeqPacket, MAX_MESSAGE};
use crate::sys::{pidfd, proc_net, process, tcp_repair};

/// How many handoffs `mip6ctl handoffs` shows.
const RECORDS_KEPT: usize = 64;
/// First of the two netfilter queues of the per-connection data path (shared by every
/// connection held).
pub const QUEUE_BASE: u16 = 7700;
/// Connections this node can hold at once.
const QUEUE_SLOTS: u16 = 32;
/// How often a keeper looks whether its connection has ended.
const KEEPER_POLL: Duration = Duration::from_millis(20);
/// `tcp_states.h`: the states in which our side has not closed yet.
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE_WAIT: u8 = 8;
/// How long the authentication hello to an acceptor may take.
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an incoming connection on `ControlPort` may take to say what it is.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(5);
/// Fault injection for the test suite: `MIP6D_TEST_FAULT=acceptor-dies-on-offer` makes
/// this daemon kill itself (SIGKILL) when an Offer starts to arrive, as a crashed
/// acceptor would after it accepted the handoff's connection.
const FAULT_ENV: &str = "MIP6D_TEST_FAULT";

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The application socket of block `name`, beside the control socket.
pub fn app_socket_path(control: &Path, name: &str) -> PathBuf {
    let file = control
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.strip_suffix(".sock").unwrap_or(&file);
    control.with_file_name(format!("{stem}-ds-{name}.sock"))
}

/// Who asked for a handoff, to tell them how it ended.
#[derive(Debug, Clone, Copy)]
enum Requester {
    Operator,
    App(u64),
}

/// One line of `mip6ctl handoffs`.
#[derive(Debug, Clone)]
struct Record {
    id: u64,
    /// "out" (this node the donor) or "in".
    direction: &'static str,
    local: Option<SocketAddrV6>,
    peer: Option<SocketAddrV6>,
    /// The other node (id).
    node: Option<u32>,
    started_unix_ms: u64,
    /// "running", "completed", "rolled back: …", "failed: …".
    state: String,
    state_bytes: Option<usize>,
    home_test: Option<Duration>,
    phases: Phases,
    /// Out: of the send queue, the bytes never transmitted (the client's pause came
    /// after byte `written - unsent`).
    unsent: Option<usize>,
    spans: Spans,
}

impl Record {
    fn to_json(&self) -> Value {
        let phases: Vec<Value> = self
            .phases
            .0
            .iter()
            .map(|t| t.micros().map_or(Value::Null, |us| json!(us)))
            .collect();
        json!({
            "id": self.id,
            "direction": self.direction,
            "local": self.local.map(|a| a.to_string()),
            "peer": self.peer.map(|a| a.to_string()),
            "node": self.node,
            "started_unix_ms": self.started_unix_ms,
            "state": self.state,
            "state_bytes": self.state_bytes,
            "home_test_us": self.home_test.map(|d| d.as_micros() as u64),
            "phases_us": phases,
            "total_us": self.phases.total().as_micros() as u64,
            "unsent": self.unsent,
            "spans_us": self.spans.0.iter()
                .map(|(n, d)| json!([n, d.as_micros() as u64]))
                .collect::<Vec<_>>(),
        })
    }
}

/// What workers, keepers and the application socket's threads tell the machine.
enum Event {
    Accepted {
        id: u64,
        slot: Option<u16>,
        result: io::Result<Taken>,
    },
    Donated {
        id: u64,
        requester: Requester,
        result: io::Result<(DonorReport, Option<TcpStream>)>,
        /// Set when a keeper handed its connection on: the slot it held.
        freed_slot: Option<u16>,
        /// The connection, when the handoff failed before anything was frozen.
        untouched: Option<TcpStream>,
    },
    /// An authentication hello was answered (Ok: the donor's node id).
    Hello {
        id: u64,
        slot: Option<u16>,
        result: io::Result<u32>,
    },
    /// A keeper's connection ended; the client now holds sequence `seq`.
    Ended {
        key: ConnKey,
        client: Ipv6Addr,
        seq: Option<u16>,
        slot: Option<u16>,
    },
    App {
        client: u64,
        msg: Value,
        fd: Option<OwnedFd>,
    },
    AppConnected {
        client: u64,
        sock: SeqPacket,
    },
    AppGone {
        client: u64,
    },
}

type ConnKey = (SocketAddrV6, SocketAddrV6);

/// A connection taken over, as its keeper thread reports it (the [`Accepted`] itself
/// stays on that thread: its data path is bound to it).
struct Taken {
    key: ConnKey,
    from_node: u32,
    state_bytes: usize,
    phases: Phases,
    spans: Spans,
    sequence: u16,
    app: Vec<u8>,
    /// For the application that serves the port.
    fd: OwnedFd,
    keeper: mpsc::Sender<HandOn>,
}

/// Tells the loop that events wait.
#[derive(Clone)]
struct Notify {
    tx: mpsc::Sender<Event>,
    wake: Arc<UnixStream>,
}

impl Notify {
    fn send(&self, e: Event) {
        let _ = self.tx.send(e);
        // A full socket already holds a wake-up.
        let _ = (&*self.wake).write(&[1]);
    }
}

/// Asks a keeper to hand its connection on.
struct HandOn {
    id: u64,
    node: u32,
    to: SocketAddrV6,
    app: Vec<u8>,
    requester: Requester,
}

/// Everything a donor worker needs, cheap to share.
struct DonorSide {
    cfg: DonorConfig,
    lock: Mutex<Option<NetLock>>,
    /// Whether this node holds the DSA's home registration (can run the home test).
    contact: bool,
}

pub struct HandoffService {
    name: String,
    ds: DistributedServer,
    local: Ipv6Addr,
    key: SharedKey,
    listener: TcpListener,
    wake_rx: UnixStream,
    notify: Notify,
    events: mpsc::Receiver<Event>,
    donor: Arc<DonorSide>,
    /// Shared with the keepers, which record the number of a binding's deletion the
    /// moment they send it: the client's next connection may come right after.
    sequences: Arc<Mutex<SeqBook>>,
    held: HashMap<ConnKey, mpsc::Sender<HandOn>>,
    slots: Vec<bool>,
    /// The per-connection data path: netfilter queues, or XFRM on a MIP6 kernel.
    backend: PathBackend,
    /// The queues, opened by the first connection taken and kept open (its rules fork
    /// `ip6tables`; each later connection is set elements).
    paths: Arc<Mutex<Option<ConnPaths>>>,
    app_path: PathBuf,
    app_stop: Arc<AtomicBool>,
    apps: HashMap<u64, SeqPacket>,
    /// Port → the application that registered for it.
    registered: HashMap<u16, u64>,
    records: VecDeque<Record>,
    next_id: u64,
}

impl HandoffService {
    /// Binds `ControlPort` (TCP) on `LocalAddress` and the application socket, and
    /// installs the network lock (an nftables table) the donor needs. Connections taken
    /// here go on `backend`'s per-connection binding.
    pub fn new(
        ds: &DistributedServer,
        control_socket: &Path,
        backend: PathBackend,
    ) -> Result<HandoffService, String> {
        let title = format!("DistributedServer \"{}\"", ds.name);
        let local = ds
            .local_address
            .ok_or_else(|| format!("{title}: handoffs need LocalAddress"))?;
        let key =
            SharedKey::load(Path::new(&ds.shared_key_file)).map_err(|e| format!("{title}: {e}"))?;
        let bind = SocketAddrV6::new(local, ds.control_port, 0, 0);
        let listener = TcpListener::bind(bind)
            .map_err(|e| format!("{title}: cannot listen for handoffs on {bind}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{title}: {e}"))?;
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(|e| format!("{title}: {e}"))?;
        for s in [&wake_tx, &wake_rx] {
            s.set_nonblocking(true)
                .map_err(|e| format!("{title}: {e}"))?;
        }
        let (tx, events) = mpsc::channel();
        let notify = Notify {
            tx,
            wake: Arc::new(wake_tx),
        };
        let table: String = format!("mip6d_ds_{}", ds.node_id);
        let lock = match NetLock::install(&table) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!("{title}: no network lock ({e}): this node cannot hand connections off");
                None
            }
        };
        let donor = Arc::new(DonorSide {
            cfg: DonorConfig {
                contact: Contact {
                    dsa: ds.address,
                    home_agent: ds.home_agent_address,
                    care_of: local,
                },
                node_id: ds.node_id,
                key: key.clone(),
                drain: ds.handoff_drain,
                drain_bound: Duration::from_secs(2),
                timeouts: Timeouts::default(),
            },
            lock: Mutex::new(lock),
            contact: ds.role == DsRole::Contact,
        });
        let app_path = app_socket_path(control_socket, &ds.name);
        let apps = SeqListener::bind(&app_path).map_err(|e| {
            format!(
                "{title}: cannot create the application socket {}: {e}",
                app_path.display()
            )
        })?;
        let app_stop = Arc::new(AtomicBool::new(false));
        spawn_app_listener(apps, app_stop.clone(), notify.clone());
        info!(
            "{title}: handoffs on {bind} (node {}, {}), applications on {}; per-connection binding on {}",
            ds.node_id,
            if donor.contact { "contact" } else { "acceptor" },
            app_path.display(),
            backend.name()
        );
        Ok(HandoffService {
            name: format!("ds-handoff:{}", ds.name),
            ds: ds.clone(),
            local,
            key,
            listener,
            wake_rx,
            notify,
            events,
            donor,
            sequences: Arc::default(),
            held: HashMap::new(),
            slots: vec![false; usize::from(QUEUE_SLOTS)],
            backend,
            paths: Arc::default(),
            app_path,
            app_stop,
            apps: HashMap::new(),
            registered: HashMap::new(),
            records: VecDeque::new(),
            next_id: 1,
        })
    }

    fn title(&self) -> String {
        format!("DistributedServer \"{}\"", self.ds.name)
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn record(&mut self, r: Record) {
        if self.records.len() == RECORDS_KEPT {
            self.records.pop_front();
        }
        self.records.push_back(r);
    }

    fn record_mut(&mut self, id: u64, direction: &str) -> Option<&mut Record> {
        self.records
            .iter_mut()
            .rev()
            .find(|r| r.id == id && r.direction == direction)
    }

    fn take_slot(&mut self) -> Option<u16> {
        let i = self.slots.iter().position(|used| !used)?;
        self.slots[i] = true;
        Some(i as u16)
    }

    fn free_slot(&mut self, slot: Option<u16>) {
        if let Some(s) = slot.and_then(|s| self.slots.get_mut(usize::from(s))) {
            *s = false;
        }
    }

    /// NODE: a peer's node id or address from the block's `Peers`.
    fn resolve(&self, node: &str) -> Result<(u32, SocketAddrV6), String> {
        let node = node.trim();
        let peer = match node.parse::<u32>() {
            Ok(id) => self.ds.peers.iter().find(|p| p.node_id == id),
            Err(_) => match node.trim_matches(['[', ']']).parse::<Ipv6Addr>() {
                Ok(a) => self.ds.peers.iter().find(|p| p.address == a),
                Err(_) => {
                    return Err(format!(
                    "--to {node}: a node id or address from the Peers of DistributedServer \"{}\"",
                    self.ds.name
                ))
                }
            },
        };
        let p = peer.ok_or_else(|| {
            let known: Vec<String> = self
                .ds
                .peers
                .iter()
                .map(|p| format!("{} ({})", p.node_id, p.address))
                .collect();
            format!(
                "unknown node {node}: DistributedServer \"{}\" has peers {}",
                self.ds.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        Ok((
            p.node_id,
            SocketAddrV6::new(p.address, self.ds.control_port, 0, 0),
        ))
    }

    /// Starts handing `s` (our descriptor of the connection) to `node`. `original`: the
    /// socket is also open in another process (the operator's path), so a rollback
    /// resumes it rather than rebuilding it.
    fn start_donor(
        &mut self,
        s: Option<TcpStream>,
        (local, peer): ConnKey,
        original: Option<OwnedFd>,
        node: &str,
        app: Vec<u8>,
        requester: Requester,
    ) -> Result<u64, String> {
        let (node_id, to) = self.resolve(node)?;
        if *local.ip() != self.ds.address {
            return Err(format!(
                "the connection's local address {} is not the DSA {}",
                local.ip(),
                self.ds.address
            ));
        }
        let id = self.new_id();
        self.record(Record {
            id,
            direction: "out",
            local: Some(local),
            peer: Some(peer),
            node: Some(node_id),
            started_unix_ms: unix_ms(),
            state: "running".into(),
            state_bytes: None,
            home_test: None,
            phases: Phases::default(),
            unsent: None,
            spans: Spans::default(),
        });
        if let Some(keeper) = self.held.get(&(local, peer)) {
            // Accepted here earlier: its keeper holds the binding and hands it on.
            drop(s);
            drop(original);
            let h = HandOn {
                id,
                node: node_id,
                to,
                app,
                requester,
            };
            if keeper.send(h).is_ok() {
                return Ok(id);
            }
            return Err("the connection ended meanwhile".into());
        }
        let Some(s) = s else {
            return Err("the connection ended meanwhile".into());
        };
        if !self.donor.contact {
            return Err(format!(
                "this node is not the contact node of DistributedServer \"{}\" and did not accept {peer}: it cannot run the home test for it",
                self.ds.name
            ));
        }
        let side = self.donor.clone();
        let notify = self.notify.clone();
        let carried = self
            .sequences
            .lock()
            .ok()
            .and_then(|b| b.last.get(peer.ip()).copied());
        thread::spawn(move || {
            // Nothing is frozen for a node that cannot prove it holds our key.
            let (result, untouched) = match hello::probe(
                side.cfg.contact.care_of,
                to,
                node_id,
                &side.cfg.key,
                side.cfg.node_id,
                HELLO_TIMEOUT,
            ) {
                Ok(()) => donate(&side, s, original, to, id, app, Err(carried)),
                Err(e) => (Err(e), Some(s)),
            };
            notify.send(Event::Donated {
                id,
                requester,
                result,
                freed_slot: None,
                untouched,
            });
        });
        Ok(id)
    }

    /// `mip6ctl handoff --conn CLIENT:PORT --to NODE`.
    fn operator_handoff(&mut self, args: &Value) -> Option<Result<Value, String>> {
        let conn = args["conn"].as_str().unwrap_or("");
        let to = args["to"].as_str().unwrap_or("");
        let Ok(peer) = conn.parse::<SocketAddrV6>() else {
            return Some(Err(format!("--conn {conn:?}: the client's [ADDRESS]:PORT")));
        };
        if let Some(ds) = args["ds"].as_str() {
            if ds != self.ds.name {
                return None;
            }
        }
        let rows = match proc_net::tcp6() {
            Ok(r) => r,
            Err(e) => return Some(Err(format!("reading /proc/net/tcp6: {e}"))),
        };
        let Some(row) = rows
            .iter()
            .find(|r| r.peer == peer && *r.local.ip() == self.ds.address && r.established())
        else {
            // Another block's DSA may have it.
            if rows.iter().any(|r| r.peer == peer && r.established()) {
                return None;
            }
            return Some(Err(format!(
                "no such connection: nothing on this node is connected to {peer} from the DSA {}",
                self.ds.address
            )));
        };
        let key = (row.local, row.peer);
        if self.held.contains_key(&key) {
            // Taken over here earlier: its keeper hands it on with its own descriptor.
            return Some(
                self.start_donor(None, key, None, to, Vec::new(), Requester::Operator)
                    .map(|id| json!({"id": id, "state": "running"})),
            );
        }
        let me = std::process::id();
        let owners: Vec<(u32, RawFd)> = proc_net::owners(row.inode)
            .into_iter()
            .filter(|(pid, _)| *pid != me)
            .collect();
        let Some(&(pid, fd)) = owners.first() else {
            return Some(Err(format!(
                "no process holds the connection with {peer} (inode {})",
                row.inode
            )));
        };
        let taken = pidfd::take(pid, fd).and_then(|a| Ok((a.try_clone()?, a)));
        let (ours, original) = match taken {
            Ok(t) => t,
            Err(e) => {
                return Some(Err(format!(
                    "cannot take descriptor {fd} of process {pid}: {e}"
                )))
            }
        };
        Some(
            self.start_donor(
                Some(TcpStream::from(ours)),
                key,
                Some(original),
                to,
                Vec::new(),
                Requester::Operator,
            )
            .map(|id| json!({"id": id, "state": "running", "owner_pid": pid})),
        )
    }

    fn send_app(&mut self, client: u64, msg: &Value, fd: Option<std::os::fd::BorrowedFd<'_>>) {
        let Some(sock) = self.apps.get(&client) else {
            return;
        };
        if let Err(e) = sock.send(msg.to_string().as_bytes(), fd) {
            warn!("{}: application socket: {e}", self.title());
            self.apps.remove(&client);
            self.registered.retain(|_, c| *c != client);
        }
    }

    fn on_app(&mut self, client: u64, msg: Value, fd: Option<OwnedFd>) {
        let op = msg["op"].as_str().unwrap_or("");
        match op {
            "register" => {
                let port = msg["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                let answer = match port {
                    Some(p) if p != 0 => {
                        self.registered.insert(p, client);
                        info!("{}: an application serves port {p}", self.title());
                        json!({"ok": true, "op": "register", "port": p})
                    }
                    _ => json!({"ok": false, "op": "register", "error": "\"port\": 1-65535"}),
                };
                self.send_app(client, &answer, None);
            }
            "handoff" => {
                let to = msg["to"].as_str().map(str::to_string).unwrap_or_else(|| {
                    msg["to"]
                        .as_u64()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                });
                let app = msg["app"]
                    .as_str()
                    .map(|h| hex::decode(h).unwrap_or_default())
                    .unwrap_or_default();
                let result = match fd {
                    None => Err("no socket came with the request".to_string()),
                    Some(fd) => {
                        let s = TcpStream::from(fd);
                        match (s.local_addr(), s.peer_addr()) {
                            (Ok(SocketAddr::V6(l)), Ok(SocketAddr::V6(p))) => self.start_donor(
                                Some(s),
                                (l, p),
                                None,
                                &to,
                                app,
                                Requester::App(client),
                            ),
                            _ => Err("not a connected IPv6 TCP socket".to_string()),
                        }
                    }
                };
                let answer = match result {
                    Ok(id) => json!({"ok": true, "op": "handoff", "id": id}),
                    Err(e) => json!({"ok": false, "op": "handoff", "error": e}),
                };
                self.send_app(client, &answer, None);
            }
            _ => {
                let shown: String = op.chars().take(40).collect();
                self.send_app(
                    client,
                    &json!({"ok": false, "error": format!("unknown op {shown:?}: register or handoff")}),
                    None,
                );
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::AppConnected { client, sock } => {
                self.apps.insert(client, sock);
            }
            Event::AppGone { client } => {
                self.apps.remove(&client);
                self.registered.retain(|_, c| *c != client);
            }
            Event::App { client, msg, fd } => self.on_app(client, msg, fd),
            Event::Accepted { id, slot, result } => self.on_accepted(id, slot, result),
            Event::Donated {
                id,
                requester,
                result,
                freed_slot,
                untouched,
            } => self.on_donated(id, requester, result, freed_slot, untouched),
            Event::Hello { id, slot, result } => {
                self.free_slot(slot);
                match result {
                    // Not a handoff: no line in `mip6ctl handoffs`.
                    Ok(_) => self
                        .records
                        .retain(|r| !(r.id == id && r.direction == "in")),
                    Err(e) => {
                        warn!("{}: {e}", self.title());
                        if let Some(r) = self.record_mut(id, "in") {
                            r.state = format!("refused: {e}");
                        }
                    }
                }
            }
            Event::Ended {
                key,
                client,
                seq,
                slot,
            } => {
                self.held.remove(&key);
                self.free_slot(slot);
                if let Some(seq) = seq {
                    record_sequence(&self.sequences, client, seq);
                }
            }
        }
    }

    fn on_accepted(&mut self, id: u64, slot: Option<u16>, result: io::Result<Taken>) {
        let title = self.title();
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                self.free_slot(slot);
                warn!("{title}: incoming handoff {id}: {e}");
                // A donor that skipped the hello and holds another key.
                let state = if e.to_string().contains("not authentic") {
                    format!("refused: authentication failed: {e}")
                } else {
                    format!("failed: {e}")
                };
                if let Some(r) = self.record_mut(id, "in") {
                    r.state = state;
                }
                return;
            }
        };
        let (local, peer) = a.key;
        record_sequence(&self.sequences, *peer.ip(), a.sequence);
        info!(
            "{title}: took {peer} from node {} ({} bytes of state, {:.3} ms)",
            a.from_node,
            a.state_bytes,
            a.phases.total().as_secs_f64() * 1e3
        );
        if let Some(r) = self.record_mut(id, "in") {
            r.local = Some(local);
            r.peer = Some(peer);
            r.node = Some(a.from_node);
            r.state = "completed".into();
            r.state_bytes = Some(a.state_bytes);
            r.phases = a.phases;
            r.spans = a.spans;
        }
        if let Some(&client) = self.registered.get(&local.port()) {
            let msg = json!({
                "event": "accepted",
                "id": id,
                "local": local.to_string(),
                "peer": peer.to_string(),
                "app": hex::encode(&a.app),
                "from_node": a.from_node,
            });
            self.send_app(client, &msg, Some(a.fd.as_fd()));
        }
        self.held.insert((local, peer), a.keeper);
    }

    fn on_donated(
        &mut self,
        id: u64,
        requester: Requester,
        result: io::Result<(DonorReport, Option<TcpStream>)>,
        freed_slot: Option<u16>,
        untouched: Option<TcpStream>,
    ) {
        let title = self.title();
        let mut back = untouched;
        let (ok, state) = match result {
            Ok((report, b)) => {
                back = b.or(back);
                let state = match report.outcome {
                    Outcome::Completed => "completed".to_string(),
                    Outcome::RolledBack(why) => format!("rolled back: {why:?}"),
                    o => format!("failed: {o:?}"),
                };
                info!(
                    "{title}: handoff {id} of {}: {state} ({} bytes of state)",
                    report.client, report.state_bytes
                );
                if let Some(r) = self.record_mut(id, "out") {
                    r.state_bytes = Some(report.state_bytes);
                    r.home_test = Some(report.home_test);
                    r.phases = report.phases;
                    r.unsent = Some(report.unsent);
                    r.spans = report.spans.clone();
                }
                (report.outcome == Outcome::Completed, state)
            }
            Err(e) => {
                warn!("{title}: handoff {id}: {e}");
                (false, format!("failed: {e}"))
            }
        };
        if ok {
            self.free_slot(freed_slot);
        }
        if let Some(r) = self.record_mut(id, "out") {
            r.state = state.clone();
        }
        if let Requester::App(client) = requester {
            let msg = json!({"event": "handoff", "id": id, "ok": ok, "outcome": state});
            // After a rollback the application gets its connection back.
            let fd = back.as_ref().map(|s| s.as_fd());
            self.send_app(client, &msg, fd);
        }
    }

    fn accept_incoming(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("{}: accepting a handoff: {e}", self.title());
                    return;
                }
            };
            let _ = stream.set_nonblocking(false);
            let id = self.new_id();
            let slot = if self.donor.contact {
                None
            } else {
                match self.take_slot() {
                    Some(s) => Some(s),
                    None => {
                        warn!(
                            "{}: holding {QUEUE_SLOTS} connections already; refusing a handoff",
                            self.title()
                        );
                        continue;
                    }
                }
            };
            let from = stream.peer_addr().ok();
            self.record(Record {
                id,
                direction: "in",
                local: None,
                peer: None,
                node: None,
                started_unix_ms: unix_ms(),
                state: format!(
                    "running (from {})",
                    from.map_or("?".into(), |a| a.ip().to_string())
                ),
                state_bytes: None,
                home_test: None,
                phases: Phases::default(),
                unsent: None,
                spans: Spans::default(),
            });
            let cfg = AcceptorConfig {
                dsa: self.ds.address,
                care_of: self.local,
                node_id: self.ds.node_id,
                key: self.key.clone(),
                timeouts: Timeouts::default(),
                path: self.backend.clone(),
                ports: self.registered.keys().copied().collect(),
                contact: self.donor.contact,
            };
            let sequences = self.sequences.clone();
            let notify = self.notify.clone();
            let side = self.donor.clone();
            let paths = self.paths.clone();
            thread::spawn(move || {
                let mut stream = stream;
                match hello::starts_with_hello(&stream, FIRST_BYTES_TIMEOUT) {
                    Ok(true) => {
                        let result = hello::answer_on(&mut stream, &cfg.key, cfg.node_id);
                        notify.send(Event::Hello { id, slot, result });
                        return;
                    }
                    Ok(false) => {
                        if std::env::var(FAULT_ENV).is_ok_and(|f| f == "acceptor-dies-on-offer") {
                            warn!("{FAULT_ENV}: dying as an Offer arrives");
                            process::kill_self();
                        }
                    }
                    Err(e) => {
                        notify.send(Event::Accepted {
                            id,
                            slot,
                            result: Err(e),
                        });
                        return;
                    }
                }
                if let (false, PathBackend::Queue(q)) = (cfg.contact, &cfg.path) {
                    keep_open(&paths, *q);
                }
                let snapshot = sequences
                    .lock()
                    .map(|s| s.acceptor.clone())
                    .unwrap_or_default();
                let a = match accept_on(stream, &cfg, &snapshot).and_then(take) {
                    Ok(a) => a,
                    Err(e) => {
                        notify.send(Event::Accepted {
                            id,
                            slot,
                            result: Err(e),
                        });
                        return;
                    }
                };
                let (a, taken, rx) = a;
                let key = taken.key;
                notify.send(Event::Accepted {
                    id,
                    slot,
                    result: Ok(taken),
                });
                record_sequence(&sequences, *key.1.ip(), a.sequence);
                keep(a, key, slot, rx, &side, &notify, &sequences);
            });
        }
    }
}

fn keep_open(paths: &Mutex<Option<ConnPaths>>, queue: u16) {
    let mut p = paths.lock().unwrap_or_else(|p| p.into_inner());
    if p.is_none() {
        match ConnPaths::open(queue) {
            Ok(open) => *p = Some(open),
            // The handoff opens its own and says why that failed.
            Err(e) => warn!("per-connection data path: {e}"),
        }
    }
}

/// The newest BU sequence number this node used for the DSA with each client: for the
/// acceptor machine, and to carry in the Offers of the contact node, whose own deletions
/// of a client's binding (a connection coming home) count too.
#[derive(Default)]
struct SeqBook {
    acceptor: Sequences,
    last: HashMap<Ipv6Addr, u16>,
}

fn record_sequence(s: &Mutex<SeqBook>, client: Ipv6Addr, seq: u16) {
    if let Ok(mut s) = s.lock() {
        s.acceptor.record(client, seq);
        s.last.insert(client, seq);
    }
}

/// What the machine learns of a connection just taken over, and the keeper's end of
/// the channel that asks it to hand the connection on.
fn take(a: Accepted) -> io::Result<(Accepted, Taken, mpsc::Receiver<HandOn>)> {
    let key = match (a.stream.local_addr()?, a.stream.peer_addr()?) {
        (SocketAddr::V6(l), SocketAddr::V6(p)) => (l, p),
        _ => return Err(io::Error::other("not IPv6")),
    };
    let fd = a.stream.as_fd().try_clone_to_owned()?;
    let (keeper, rx) = mpsc::channel();
    let t = Taken {
        key,
        from_node: a.from_node,
        state_bytes: a.state_bytes,
        phases: a.phases,
        spans: a.spans.clone(),
        sequence: a.sequence,
        app: a.app.clone(),
        fd,
        keeper,
    };
    Ok((a, t, rx))
}

type Donation = io::Result<(DonorReport, Option<TcpStream>)>;

/// One donor handoff on a worker or keeper thread, under the network lock. `prepared`:
/// the keeper's, or the newest sequence number used with the client (the home test is
/// then run here). A failure before the connection is frozen gives it back untouched
/// (the second value).
fn donate(
    side: &DonorSide,
    s: TcpStream,
    original: Option<OwnedFd>,
    to: SocketAddrV6,
    id: u64,
    app: Vec<u8>,
    prepared: Result<Prepared, Option<u16>>,
) -> (Donation, Option<TcpStream>) {
    let prepared = match prepared {
        Ok(p) => p,
        Err(carried) => {
            let Ok(SocketAddr::V6(peer)) = s.peer_addr() else {
                return (
                    Err(io::Error::other("not a connected IPv6 socket")),
                    Some(s),
                );
            };
            // The home test while the connection still serves: off the client's pause.
            match prepare(&side.cfg, *peer.ip()) {
                Ok(p) => Prepared {
                    bu_sequence: carried,
                    ..p
                },
                Err(e) => return (Err(io::Error::other(format!("home test: {e}"))), Some(s)),
            }
        }
    };
    let Ok(mut lock) = side.lock.lock() else {
        return (Err(io::Error::other("network lock poisoned")), Some(s));
    };
    let Some(lock) = lock.as_mut() else {
        let e = io::Error::other("no network lock on this node (is nft installed?)");
        return (Err(e), Some(s));
    };
    let r = hand_off_keeping(s, to, id, app, &side.cfg, lock, Some(prepared), original);
    (r, None)
}

/// Deletes the client's binding to this node for the DSA (a connection that came back
/// after a failed handoff onwards: its binding's machine went with that handoff). The
/// deletion comes from the home address with the home keygen token (RFC 6275 §5.2.5),
/// numbered past the binding.
fn release_returned(dsa: Ipv6Addr, client: Ipv6Addr, p: &Prepared) -> Option<u16> {
    let seq = p.bu_sequence?.wrapping_add(1);
    let sent = RawSocket::new(IPPROTO_RAW)
        .and_then(|raw| send_mh(&raw, &unbind(dsa, client, &p.home, seq)));
    if let Err(e) = sent {
        warn!("deleting the binding of {client} for {dsa}: {e}");
    }
    Some(seq)
}

/// Ends our side of a connection and waits (1 s at most) until the client acknowledged
/// everything, our FIN included: its last ACK must still reach this node.
fn shut_and_wait(s: &TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end && tcp_repair::unacked_bytes(s.as_fd()).is_ok_and(|n| n > 0) {
        thread::sleep(Duration::from_millis(1));
    }
}

/// What a keeper holds: a connection accepted here with the client's binding, or one
/// that came back after a failed handoff onwards (the binding's machine went with the
/// handoff; only its data path is left).
enum Kept {
    Bound(Box<Accepted>),
    Returned(TcpStream, Prepared, Option<ConnPath>),
}

impl Kept {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Kept::Bound(a) => a.stream.as_fd(),
            Kept::Returned(s, _, _) => s.as_fd(),
        }
    }
}

/// A connection accepted here, for as long as it lives: until our side closes (then the
/// client's binding is released) or it is handed on.
fn keep(
    a: Accepted,
    key: ConnKey,
    slot: Option<u16>,
    commands: mpsc::Receiver<HandOn>,
    side: &DonorSide,
    notify: &Notify,
    sequences: &Mutex<SeqBook>,
) {
    let client = *key.1.ip();
    let dsa = *key.0.ip();
    let mut kept = Kept::Bound(Box::new(a));
    loop {
        match commands.recv_timeout(KEEPER_POLL) {
            Ok(h) => {
                // Checked before the binding's machine is given up: on failure the
                // connection stays as it was, and the application gets a copy back.
                if let Err(e) = hello::probe(
                    side.cfg.contact.care_of,
                    h.to,
                    h.node,
                    &side.cfg.key,
                    side.cfg.node_id,
                    HELLO_TIMEOUT,
                ) {
                    let copy = kept.fd().try_clone_to_owned().ok().map(TcpStream::from);
                    notify.send(Event::Donated {
                        id: h.id,
                        requester: h.requester,
                        result: Err(e),
                        freed_slot: None,
                        untouched: copy,
                    });
                    continue;
                }
                let (s, prepared, path) = match kept {
                    Kept::Bound(a) => a.into_handoff(),
                    Kept::Returned(s, p, path) => (s, p, path),
                };
                let (result, untouched) = donate(side, s, None, h.to, h.id, h.app, Ok(prepared));
                // The data path stays until the handoff is over: the client sends here
                // until it is redirected.
                let (result, back) = match (result, untouched) {
                    (Ok((report, Some(back))), _) => (Ok((report, None)), back),
                    (Err(e), Some(s)) => (Err(e), s),
                    (other, _) => {
                        drop(path);
                        let seq = other.as_ref().ok().and(prepared.bu_sequence);
                        notify.send(Event::Donated {
                            id: h.id,
                            requester: h.requester,
                            result: other,
                            freed_slot: slot,
                            untouched: None,
                        });
                        notify.send(Event::Ended {
                            key,
                            client,
                            seq,
                            slot,
                        });
                        return;
                    }
                };
                // Ours again: the application gets a copy.
                let copy = back.as_fd().try_clone_to_owned().ok().map(TcpStream::from);
                notify.send(Event::Donated {
                    id: h.id,
                    requester: h.requester,
                    result,
                    freed_slot: None,
                    untouched: copy,
                });
                kept = Kept::Returned(back, prepared, path);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        let open = tcp_repair::tcp_state(kept.fd())
            .is_ok_and(|st| st == TCP_ESTABLISHED || st == TCP_CLOSE_WAIT);
        if !open {
            let seq = match kept {
                // Recorded the moment the deletion is sent: the client's next connection
                // may be handed here before the data path is torn down.
                Kept::Bound(a) => {
                    Some(a.finish_with(|seq| record_sequence(sequences, client, seq)))
                }
                Kept::Returned(s, p, path) => {
                    shut_and_wait(&s);
                    drop(s);
                    // A binding exists only where the connection had a data path.
                    let seq = match path {
                        Some(_) => release_returned(dsa, client, &p),
                        None => p.bu_sequence,
                    };
                    // Before the data path's teardown, as `finish_with` does.
                    if let Some(seq) = seq {
                        record_sequence(sequences, client, seq);
                    }
                    drop(path);
                    seq
                }
            };
            if let Some(seq) = seq {
                record_sequence(sequences, client, seq);
            }
            notify.send(Event::Ended {
                key,
                client,
                seq,
                slot,
            });
            return;
        }
    }
}

/// The application socket's listener thread: each application gets a reader thread.
fn spawn_app_listener(listener: SeqListener, stop: Arc<AtomicBool>, notify: Notify) {
    thread::spawn(move || {
        let mut next = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let sock = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(_) => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let client = next;
            next += 1;
            let reader = match sock.try_clone() {
                Ok(r) => r,
                Err(_) => continue,
            };
            notify.send(Event::AppConnected { client, sock });
            let (notify, stop) = (notify.clone(), stop.clone());
            thread::spawn(move || {
                let _ = reader.set_nonblocking(false);
                let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = vec![0u8; MAX_MESSAGE];
                while !stop.load(Ordering::Relaxed) {
                    match reader.recv(&mut buf) {
                        Ok((0, _)) => break,
                        Ok((n, fd)) => {
                            let msg = serde_json::from_slice(&buf[..n])
                                .unwrap_or_else(|_| json!({"op": "not JSON"}));
                            notify.send(Event::App { client, msg, fd });
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
                notify.send(Event::AppGone { client });
            });
        }
    });
}

impl Machine for HandoffService {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn sources(&self) -> Vec<RawFd> {
        vec![self.listener.as_raw_fd(), self.wake_rx.as_raw_fd()]
    }

    fn on_readable(&mut self, fd: RawFd, _now: Instant, _ctx: &mut Ctx<'_>) {
        if fd == self.listener.as_raw_fd() {
            self.accept_incoming();
            return;
        }
        let mut buf = [0u8; 256];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        while let Ok(e) = self.events.try_recv() {
            self.on_event(e);
        }
    }

    fn request(
        &mut self,
        cmd: Command,
        args: &Value,
        _now: Instant,
    ) -> Option<Result<Value, String>> {
        match cmd {
            Command::Handoffs => Some(Ok(json!({
                "handoffs": self.records.iter().map(|r| {
                    let mut v = r.to_json();
                    v["ds"] = json!(self.ds.name);
                    v
                }).collect::<Vec<_>>(),
            }))),
            Command::Handoff => self.operator_handoff(args),
            _ => None,
        }
    }

    fn status(&self) -> Value {
        json!({
            "held": self.held.len(),
            "registered_ports": self.registered.keys().collect::<Vec<_>>(),
            "application_socket": self.app_path.display().to_string(),
        })
    }
}

impl Drop for HandoffService {
    fn drop(&mut self) {
        self.app_stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.app_path);
        if let Ok(mut l) = self.donor.lock.lock() {
            if let Some(l) = l.take() {
                let _ = l.remove();
            }
        }
    }
}

/// Starts one handoff service per `DistributedServer` block that has a `LocalAddress`.
pub fn start_all(daemon: &mut crate::daemon::Daemon) -> Result<(), String> {
    let blocks = daemon.config().distributed_servers.clone();
    let control = daemon.control_socket().to_path_buf();
    let datapath = daemon.config().datapath;
    for ds in blocks.iter().filter(|d| d.local_address.is_some()) {
        let backend = if ds.role == DsRole::Contact {
            // The contact node redirects a returning connection by deleting the
            // client's binding: it holds no per-connection binding.
            PathBackend::Queue(QUEUE_BASE)
        } else {
            backend_for(datapath, &ds.name, daemon.registry_mut())?
        };
        let m = HandoffService::new(ds, &control, backend)?;
        daemon.add_machine(Box::new(m))?;
    }
    Ok(())
}

/// Settles the per-connection binding against `Datapath` and the running kernel as the
/// roles do (`datapath::probe`): XFRM where the kernel data path runs, netfilter queues
/// otherwise. The XFRM binding's objects are the registry's to remove on shutdown.
fn backend_for(
    datapath: crate::config::Datapath,
    name: &str,
    registry: &mut crate::daemon::registry::Registry,
) -> Result<PathBackend, String> {
    use crate::datapath::probe::{self, Backend};
    let title = format!("DistributedServer \"{name}\"");
    let sel = probe::select(datapath, || probe::probe_kernel(false))
        .map_err(|e| format!("{title}: per-connection binding: {e}"))?;
    if sel.backend != Backend::Kernel {
        info!(
            "{title}: per-connection binding on netfilter queues ({})",
            sel.reason
        );
        return Ok(PathBackend::Queue(QUEUE_BASE));
    }
    let paths = XfrmPaths::open().map_err(|e| format!("{title}: per-connection binding: {e}"))?;
    info!("{title}: per-connection binding on XFRM ({})", sel.reason);
    let p = paths.clone();
    registry.record(
        format!("{title}: per-connection XFRM policies and states"),
        move || p.cleanup(),
    );
    Ok(PathBackend::Kernel(paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_socket_sits_beside_the_control_socket() {
        assert_eq!(
            app_socket_path(Path::new("/run/mip6d.sock"), "web"),
            Path::new("/run/mip6d-ds-web.sock")
        );
        assert_eq!(
            app_socket_path(Path::new("/tmp/x/ctl"), "a"),
            Path::new("/tmp/x/ctl-ds-a.sock")
        );
    }
}
