//! The membership protocol ([`membership::Node`]) in the daemon: one [`Machine`] per
//! `DistributedServer` block, owning the UDP socket on `ControlPort` (bound to
//! `LocalAddress`), the state file, and what `mip6ctl members` shows.
//!
//! The node is sans-IO; this is only its plumbing: frames from the socket and the loop's
//! timer go in, and its actions come out here — frames to the peers' addresses (or to the
//! DSA, where the contact answers), `Persist` to the state file before anything after it,
//! and the contact's DSA registration to the [`DsaRegistrar`].

use super::membership::{
    self, Action, Command, Dest, EpochDisplay, Node, NodeId, Rejection, StopReason,
};
use super::state_file::StateFile;
use crate::config::model::{DistributedServer, DsRole};
use crate::crypto::auth::SharedKey;
use crate::daemon::machine::{Ctx, Machine};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// Larger than any frame the codec produces (bounded views and snode lists).
const MAX_FRAME: usize = 16 * 1024;
/// How many recent protocol events `mip6ctl members` shows.
const EVENTS_KEPT: usize = 16;
/// Rejected frames are logged at most this often per machine (a node with the wrong key
/// sends ten heartbeats a second).
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// **The join point with the contact's registration of the DSA at the home agent.**
///
/// The membership protocol decides *when* this node must register the DSA and with which
/// sequence number (committed before use, so always newer than a deposed contact's); the
/// Binding Update itself, its retransmission and the HA's answer belong to the registrar.
/// [`LogOnly`] is what runs until a real registrar is plugged in with
/// [`MembershipMachine::new`].
pub trait DsaRegistrar {
    /// We are the contact of `epoch`: register the DSA with sequence number `seq`.
    fn register(&mut self, epoch: u64, seq: u16, now: Instant);
    /// We stopped acting as contact of `epoch`: stop refreshing the registration.
    fn withdraw(&mut self, epoch: u64, now: Instant);
    /// What the home agent's answers mean for the protocol
    /// ([`Command::DsaSeqRejected`], [`Command::RefreshDsa`]); asked after every wake-up.
    fn poll_command(&mut self) -> Option<Command> {
        None
    }
    /// What `mip6ctl members` shows of the registration beyond the protocol's request.
    fn status(&self) -> Value {
        Value::Null
    }
}

/// Registers nothing: the decision is logged and shown by `mip6ctl members`.
pub struct LogOnly;

impl DsaRegistrar for LogOnly {
    fn register(&mut self, _epoch: u64, _seq: u16, _now: Instant) {}
    fn withdraw(&mut self, _epoch: u64, _now: Instant) {}
}

/// The last registration the protocol asked for.
#[derive(Clone, Copy, Debug)]
struct DsaRequest {
    epoch: u64,
    seq: u16,
    at_unix_ms: u64,
}

pub struct MembershipMachine {
    name: String,
    ds: DistributedServer,
    node: Node,
    socket: UdpSocket,
    /// Bound to the DSA with `IPV6_FREEBIND`: joins and snode registrations sent to the
    /// DSA reach whoever holds it — the contact, through the home agent's tunnel. `None`
    /// when `socket` already listens on every address.
    dsa_socket: Option<UdpSocket>,
    state: StateFile,
    /// Where each node's frames go: the configured peers, then whatever address an
    /// authenticated frame last came from (a joiner not in our `Peers`).
    addresses: BTreeMap<NodeId, SocketAddr>,
    registrar: Box<dyn DsaRegistrar>,
    dsa_request: Option<DsaRequest>,
    /// The registrar was told to register and not told to withdraw since.
    registering: bool,
    /// While acting without registering (restarted as contact, or acting again in the
    /// same epoch after a lapse), a new sequence number was asked for once.
    refresh_asked: bool,
    /// A failed `Persist` leaves the promise unwritten: nothing that depends on it may go
    /// out until a later one succeeds (the peers see it as message loss).
    persist_failed: bool,
    events: VecDeque<Value>,
    rejections_suppressed: u64,
    last_rejection_log: Option<Instant>,
    send_errors: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn role_word(r: DsRole) -> &'static str {
    match r {
        DsRole::Contact => "contact",
        DsRole::Backup => "backup",
        DsRole::Snode => "snode",
    }
}

impl MembershipMachine {
    /// Loads the key and the state file and binds the socket; nothing is sent yet.
    pub fn new(
        ds: &DistributedServer,
        registrar: Box<dyn DsaRegistrar>,
        now: Instant,
    ) -> Result<MembershipMachine, String> {
        let title = format!("DistributedServer \"{}\"", ds.name);
        let key = SharedKey::load(std::path::Path::new(&ds.shared_key_file))
            .map_err(|e| format!("{title}: {e}"))?;
        let state = StateFile::open(&ds.state_path()).map_err(|e| format!("{title}: {e}"))?;
        let durable = state.load().map_err(|e| format!("{title}: {e}"))?;
        let restored = durable.is_some();
        let local = ds.local_address.unwrap_or(Ipv6Addr::UNSPECIFIED);
        let bind = SocketAddrV6::new(local, ds.control_port, 0, 0);
        let socket = UdpSocket::bind(bind).map_err(|e| {
            format!(
                "{title}: cannot bind the membership socket [{local}]:{}: {e}",
                ds.control_port
            )
        })?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("{title}: {e}"))?;
        // Only a member that may become the contact listens there. A second daemon of
        // the same namespace holding it already (tests run several side by side) only
        // costs that daemon the joins sent to the DSA, so it is not fatal.
        let dsa_socket = match ds.local_address {
            Some(_) if ds.role != DsRole::Snode => {
                let at = SocketAddrV6::new(ds.address, ds.control_port, 0, 0);
                crate::sys::udp::bind_freebind(at)
                    .map_err(|e| {
                        warn!(
                            "{title}: not listening on the DSA [{}]:{}: {e}",
                            ds.address, ds.control_port
                        )
                    })
                    .ok()
            }
            _ => None,
        };
        let addresses = ds
            .peers
            .iter()
            .map(|p| {
                let a = SocketAddrV6::new(p.address, ds.control_port, 0, 0);
                (p.node_id, SocketAddr::V6(a))
            })
            .collect();
        let node = Node::new(
            membership::Config::from_ds(ds),
            &key,
            durable,
            now,
            unix_ms().saturating_mul(1000),
        );
        info!(
            "{title}: membership on [{local}]:{} as node {} ({}), epoch {}{}, state in {}",
            ds.control_port,
            ds.node_id,
            role_word(ds.role),
            EpochDisplay(node.committed().epoch),
            if restored { " (restored)" } else { "" },
            state.path().display()
        );
        Ok(MembershipMachine {
            name: format!("ds:{}", ds.name),
            ds: ds.clone(),
            node,
            socket,
            dsa_socket,
            state,
            addresses,
            registrar,
            dsa_request: None,
            registering: false,
            refresh_asked: false,
            persist_failed: false,
            events: VecDeque::new(),
            rejections_suppressed: 0,
            last_rejection_log: None,
            send_errors: 0,
        })
    }

    fn event(&mut self, what: &str, detail: Value) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events
            .push_back(json!({"at_unix_ms": unix_ms(), "event": what, "detail": detail}));
    }

    /// `Dest::Dsa` goes to the DSA on our port: once the contact holds the DSA (its
    /// registration at the home agent), joins and snode registrations reach it there. The
    /// socket is bound to `LocalAddress`, so the contact must also listen on the DSA by
    /// then; until the registration exists, joiners reach the contact they know directly.
    fn dest_addr(&self, to: Dest) -> Option<SocketAddr> {
        match to {
            Dest::Node(n) => self.addresses.get(&n).copied(),
            Dest::Dsa => Some(SocketAddr::V6(SocketAddrV6::new(
                self.ds.address,
                self.ds.control_port,
                0,
                0,
            ))),
        }
    }

    /// Carries out what the node decided, in order. `from` is where the frame that
    /// produced them came from, for the log of rejections.
    fn drain(&mut self, now: Instant, from: Option<SocketAddr>) {
        let title = format!("DistributedServer \"{}\"", self.ds.name);
        while let Some(a) = self.node.poll_action() {
            match a {
                Action::Persist(d) => match self.state.store(&d) {
                    Ok(()) => self.persist_failed = false,
                    Err(e) => {
                        if !self.persist_failed {
                            error!("{title}: {e}; sending nothing until it can be written");
                        }
                        self.persist_failed = true;
                    }
                },
                Action::Send { .. } if self.persist_failed => {}
                Action::Send { to, frame } => {
                    let Some(addr) = self.dest_addr(to) else {
                        continue;
                    };
                    match self.socket.send_to(&frame, addr) {
                        Ok(_) => {}
                        // A full socket buffer or an unreachable peer is message loss,
                        // which the protocol is built to survive.
                        Err(e) => {
                            self.send_errors += 1;
                            if self.send_errors.is_power_of_two() {
                                warn!(
                                    "{title}: sending to {addr}: {e} ({} so far)",
                                    self.send_errors
                                );
                            }
                        }
                    }
                }
                Action::Committed(v) => {
                    let nodes: Vec<NodeId> = v.nodes().collect();
                    info!(
                        "{title}: view {} committed: {:?} (contact {:?}, DSA sequence {})",
                        EpochDisplay(v.epoch),
                        nodes,
                        v.contact(),
                        v.dsa_seq
                    );
                    self.event(
                        "committed",
                        json!({"epoch": EpochDisplay(v.epoch).to_string(), "members": nodes, "dsa_seq": v.dsa_seq}),
                    );
                }
                Action::BecomeContact { epoch } => {
                    info!(
                        "{title}: now the contact node of epoch {}",
                        EpochDisplay(epoch)
                    );
                    self.event(
                        "become_contact",
                        json!({"epoch": EpochDisplay(epoch).to_string()}),
                    );
                }
                Action::RegisterDsa { epoch, seq } => {
                    info!(
                        "{title}: register the DSA {} at the home agent {} with sequence {seq} (epoch {})",
                        self.ds.address,
                        self.ds.home_agent_address,
                        EpochDisplay(epoch)
                    );
                    self.dsa_request = Some(DsaRequest {
                        epoch,
                        seq,
                        at_unix_ms: unix_ms(),
                    });
                    self.event(
                        "register_dsa",
                        json!({"epoch": EpochDisplay(epoch).to_string(), "seq": seq}),
                    );
                    self.registering = true;
                    self.registrar.register(epoch, seq, now);
                }
                Action::StopContact { epoch, reason } => {
                    let why = match reason {
                        StopReason::NewerEpoch => "a newer epoch was committed",
                        StopReason::LostMajority => "lost contact with a majority",
                        StopReason::Deposed => "deposed by a newer view",
                    };
                    warn!(
                        "{title}: no longer the contact node of epoch {}: {why}",
                        EpochDisplay(epoch)
                    );
                    self.event(
                        "stop_contact",
                        json!({"epoch": EpochDisplay(epoch).to_string(), "reason": why}),
                    );
                    self.registering = false;
                    self.refresh_asked = false;
                    self.registrar.withdraw(epoch, now);
                }
                Action::Joined { epoch } => {
                    info!("{title}: joined in epoch {}", EpochDisplay(epoch));
                    self.event("joined", json!({"epoch": EpochDisplay(epoch).to_string()}));
                }
                Action::Removed { epoch } => {
                    warn!(
                        "{title}: removed from the view in epoch {}; joining again",
                        EpochDisplay(epoch)
                    );
                    self.event("removed", json!({"epoch": EpochDisplay(epoch).to_string()}));
                }
                Action::SnodesChanged(list) => {
                    info!("{title}: snodes {list:?}");
                    self.event("snodes", json!(list));
                }
                Action::Rejected { sender, why } => self.log_rejection(now, from, sender, why),
            }
        }
        // The protocol asks for a registration only when the committed number changes;
        // acting without one registered here needs a fresh number (the home agent
        // refuses an old one), committed first like any other.
        if self.node.acting().is_some() && !self.registering && !self.refresh_asked {
            self.refresh_asked = true;
            self.node.handle_command(Command::RefreshDsa, now);
            self.drain(now, None);
        }
    }

    fn log_rejection(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        sender: Option<NodeId>,
        why: Rejection,
    ) {
        if self
            .last_rejection_log
            .is_some_and(|t| now.duration_since(t) < REJECTION_LOG_INTERVAL)
        {
            self.rejections_suppressed += 1;
            return;
        }
        let why = match why {
            Rejection::Auth(e) => e.to_string(),
            Rejection::WrongKind(k) => format!("not a membership frame (kind {k:#04x})"),
            Rejection::FromSelf => "claims to come from this node (reflected)".to_string(),
            Rejection::Malformed(e) => format!("malformed: {e}"),
        };
        let sender = sender.map_or("unauthenticated sender".to_string(), |s| {
            format!("node {s}")
        });
        let from = from.map_or("?".to_string(), |a| a.to_string());
        let more = match std::mem::take(&mut self.rejections_suppressed) {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        warn!(
            "DistributedServer \"{}\": rejected a membership frame from {from} ({sender}): {why}{more}",
            self.ds.name
        );
        self.last_rejection_log = Some(now);
    }

    fn poll_registrar(&mut self, now: Instant) {
        while let Some(cmd) = self.registrar.poll_command() {
            self.node.handle_command(cmd, now);
        }
    }

    /// This node's view for `mip6ctl members`.
    fn view_json(&self, now: Instant) -> Value {
        let n = &self.node;
        let v = n.committed();
        let me = self.ds.node_id;
        let heard = |id: NodeId| -> Value {
            if id == me {
                return Value::Null;
            }
            n.last_heard(id).map_or(Value::Null, |t| {
                json!(now.saturating_duration_since(t).as_millis() as u64)
            })
        };
        let address = |id: NodeId| -> Value {
            if id == me {
                return json!(self.ds.local_address.map(|a| a.to_string()));
            }
            self.addresses
                .get(&id)
                .map_or(Value::Null, |a| json!(a.ip().to_string()))
        };
        let contact = n.contact();
        let mut members: Vec<Value> = v
            .members
            .iter()
            .map(|m| {
                json!({
                    "node_id": m.node,
                    "role": if Some(m.node) == v.contact() { "contact" } else { "backup" },
                    "rank": m.rank,
                    "address": address(m.node),
                    "last_heard_ms": heard(m.node),
                    "self": m.node == me,
                })
            })
            .collect();
        for s in n.snodes() {
            members.push(json!({
                "node_id": s, "role": "snode", "rank": null, "address": address(s),
                "last_heard_ms": null, "self": s == me,
            }));
        }
        // Configured peers the view does not hold (failed, not yet joined, snodes we
        // have not heard of): shown so a missing node is visible, not silently absent.
        let listed: Vec<NodeId> = members
            .iter()
            .filter_map(|m| m["node_id"].as_u64().map(|x| x as NodeId))
            .collect();
        let configured = self
            .ds
            .peers
            .iter()
            .map(|p| (p.node_id, p.role))
            .chain(std::iter::once((me, self.ds.role)));
        for (id, role) in configured {
            if !listed.contains(&id) {
                let role = if role == DsRole::Snode {
                    "snode"
                } else {
                    "out"
                };
                members.push(json!({
                    "node_id": id, "role": role, "rank": null, "address": address(id),
                    "last_heard_ms": heard(id), "self": id == me,
                }));
            }
        }
        let rank = v.members.iter().find(|m| m.node == me).map(|m| m.rank);
        let state = if n.acting().is_some() {
            "contact"
        } else if n.is_member() {
            "backup"
        } else if n.role() == membership::Role::Snode {
            "snode"
        } else {
            "joining"
        };
        let st = n.stats();
        json!({
            "name": self.ds.name,
            "dsa": self.ds.address.to_string(),
            "home_agent": self.ds.home_agent_address.to_string(),
            "node_id": me,
            "configured_role": role_word(self.ds.role),
            "state": state,
            "acting": n.acting().is_some(),
            "rank": rank,
            "epoch": EpochDisplay(v.epoch).to_string(),
            "epoch_value": v.epoch,
            "contact": contact,
            "dsa_seq": v.dsa_seq,
            "dsa_registration": self.dsa_request.map(|r| json!({
                "epoch": EpochDisplay(r.epoch).to_string(),
                "seq": r.seq,
                "at_unix_ms": r.at_unix_ms,
            })),
            "snodes": n.snodes().collect::<Vec<_>>(),
            "dsa_registrar": self.registrar.status(),
            "dsa_socket": self.dsa_socket.is_some(),
            "heartbeat_ms": self.ds.heartbeat_interval.as_millis() as u64,
            "failure_timeout_ms": self.ds.failure_timeout.as_millis() as u64,
            "members": members,
            "stats": {
                "received": st.received,
                "sent": st.sent,
                "bad_auth": st.bad_auth,
                "replayed": st.replayed,
                "malformed": st.malformed,
                "rounds_started": st.rounds_started,
                "rounds_committed": st.rounds_committed,
                "send_errors": self.send_errors,
            },
            "state_file": self.state.path().display().to_string(),
            "events": self.events.iter().collect::<Vec<_>>(),
        })
    }
}

impl Machine for MembershipMachine {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
        self.drain(now, None);
    }

    fn sources(&self) -> Vec<RawFd> {
        let mut v = vec![self.socket.as_raw_fd()];
        v.extend(self.dsa_socket.as_ref().map(AsRawFd::as_raw_fd));
        v
    }

    fn on_readable(&mut self, fd: RawFd, now: Instant, _ctx: &mut Ctx<'_>) {
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let socket = match &self.dsa_socket {
                Some(d) if d.as_raw_fd() == fd => d,
                _ => &self.socket,
            };
            match socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    let accepted = self.node.stats().received;
                    self.node.handle_frame(&buf[..len], now);
                    if self.node.stats().received > accepted {
                        if let Some(sender) = sender_of(&buf[..len]) {
                            self.addresses.insert(sender, from);
                        }
                    }
                    self.drain(now, Some(from));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors from earlier sends surface here; the next read goes on.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    warn!("DistributedServer \"{}\": receiving: {e}", self.ds.name);
                    return;
                }
            }
        }
    }

    fn apply_actions(&mut self, now: Instant, _ctx: &mut Ctx<'_>) {
        self.poll_registrar(now);
        self.drain(now, None);
    }

    fn status(&self) -> Value {
        let n = &self.node;
        json!({
            "epoch": EpochDisplay(n.committed().epoch).to_string(),
            "contact": n.contact(),
            "acting": n.acting().is_some(),
        })
    }

    fn members(&self, now: Instant) -> Value {
        self.view_json(now)
    }
}

/// The sender id in a frame's header (`crypto::auth`'s layout); only believed for a frame
/// the node has just accepted, so whose tag was verified.
fn sender_of(frame: &[u8]) -> Option<NodeId> {
    let b = frame.get(2..6)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Starts one membership machine per `DistributedServer` block of the configuration.
/// `dsa` is the mobile node role [`super::contact_home::start`] made for the block with a
/// `ContactInterface`, if the roles run; every other block only logs its registrations.
pub fn start_all(
    daemon: &mut crate::daemon::Daemon,
    mut dsa: Option<super::contact_home::DsaLink>,
) -> Result<(), String> {
    let blocks = daemon.config().distributed_servers.clone();
    for ds in &blocks {
        let registrar: Box<dyn DsaRegistrar> = match ds.contact_interface.as_ref() {
            Some(_) => match dsa.take() {
                Some(link) => Box::new(super::contact_home::MnRegistrar(link)),
                None => Box::new(LogOnly),
            },
            None => Box::new(LogOnly),
        };
        let m = MembershipMachine::new(ds, registrar, Instant::now())?;
        daemon.add_machine(Box::new(m))?;
    }
    Ok(())
}

/// The first block that may register the DSA through this node's mobile node role.
pub fn contact_block(cfg: &crate::config::Config) -> Option<&DistributedServer> {
    cfg.distributed_servers
        .iter()
        .find(|d| d.contact_interface.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::machine::MhCounters;
    use crate::daemon::registry::Registry;
    use std::cell::RefCell;
    use std::os::unix::fs::PermissionsExt;
    use std::rc::Rc;

    /// Records what the membership machine asked of the registrar and answers once, as a
    /// home agent refusing the sequence number would.
    #[derive(Default)]
    struct Recorder {
        registered: Vec<(u64, u16)>,
        answer: Option<Command>,
    }

    struct Shared(Rc<RefCell<Recorder>>);

    impl DsaRegistrar for Shared {
        fn register(&mut self, epoch: u64, seq: u16, _now: Instant) {
            self.0.borrow_mut().registered.push((epoch, seq));
        }
        fn withdraw(&mut self, _epoch: u64, _now: Instant) {}
        fn poll_command(&mut self) -> Option<Command> {
            self.0.borrow_mut().answer.take()
        }
    }

    fn lone_contact(dir: &std::path::Path) -> DistributedServer {
        let key = dir.join("k");
        std::fs::write(&key, [7u8; 32]).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        DistributedServer {
            name: "t".into(),
            address: "2001:db8::80".parse().unwrap(),
            home_agent_address: "2001:db8::1".parse().unwrap(),
            role: DsRole::Contact,
            node_id: 1,
            local_address: Some(Ipv6Addr::LOCALHOST),
            peers: Vec::new(),
            shared_key_file: key.display().to_string(),
            heartbeat_interval: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(300),
            handoff_drain: Default::default(),
            // Any free port: nothing is sent to peers here.
            control_port: 0,
            state_file: Some(dir.join("s").display().to_string()),
            contact_interface: None,
        }
    }

    #[test]
    fn the_registrar_hook_gets_the_dsa_registration_and_its_answer_reaches_the_protocol() {
        let dir = std::env::temp_dir().join(format!("mip6d-mm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ds = lone_contact(&dir);
        let rec = Rc::new(RefCell::new(Recorder::default()));
        let t0 = Instant::now();
        let mut m = MembershipMachine::new(&ds, Box::new(Shared(rec.clone())), t0).unwrap();
        let mut registry = Registry::new();
        let mut mh = MhCounters::default();
        let mut now = t0;
        let mut step = |m: &mut MembershipMachine, now: Instant| {
            let mut ctx = Ctx {
                registry: &mut registry,
                mh: &mut mh,
            };
            m.handle_timeout(now);
            m.apply_actions(now, &mut ctx);
        };
        step(&mut m, now);
        assert_eq!(rec.borrow().registered, vec![(0, 0)]);
        assert_eq!(m.members(now)["state"], "contact");
        // The home agent refuses 0 as not newer than its 5: the protocol commits 6 first.
        rec.borrow_mut().answer = Some(Command::DsaSeqRejected { last: 5 });
        for _ in 0..20 {
            now += Duration::from_millis(20);
            step(&mut m, now);
        }
        let got = rec.borrow().registered.clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].1, 6);
        assert!(got[1].0 > 0, "a new epoch carries the new sequence");
        let v = m.members(now);
        assert_eq!(v["dsa_seq"], 6);
        assert_eq!(v["dsa_registration"]["seq"], 6);
        // The commit was persisted, and a restart starts from it.
        drop(m);
        let m = MembershipMachine::new(&ds, Box::new(LogOnly), now).unwrap();
        assert_eq!(m.node.committed().dsa_seq, 6);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
