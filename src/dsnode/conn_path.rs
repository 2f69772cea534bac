//! The acceptor's per-connection data path ([`ConnBinding`]) on two netfilter queues
//! shared by every connection the node holds ([`ConnPaths`]: constant rules, two IP
//! sets, one thread per queue). A connection is a few set elements and an entry in the
//! queues' table ([`ConnPath`]): taking one on costs netlink messages, not `ip6tables`
//! processes, so it fits in the frozen window (and the acceptor starts it at the
//! donor's `Prepare`, before the freeze, anyway). Mobility Headers from the client (the
//! Care-of Test, the Binding Acknowledgement) go to the connection's binder over a
//! channel.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use super::conn_xfrm::{XfrmConn, XfrmPaths};
use super::other;
use crate::datapath::conn_binding::{self, tcp_tuple, ConnBinding, In};
use crate::datapath::sets::PREFIX;
use crate::datapath::user::Rule;
use crate::sys::ipset::{IpSets, SetType, Triple};
use crate::sys::nfqueue::{NfQueue, Verdict};

/// How often the queue threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Packets handled, for reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub rewritten_in: AtomicU64,
    pub rewritten_out: AtomicU64,
    pub mobility: AtomicU64,
    pub dropped: AtomicU64,
}

/// A connection in a node's table (both data paths): (client address and port, service
/// port).
pub(super) type Key = (SocketAddrV6, u16);

pub(super) struct Entry {
    pub(super) binding: ConnBinding,
    pub(super) mh: mpsc::Sender<Vec<u8>>,
    pub(super) counters: Arc<Counters>,
}

pub(super) type Table = Arc<Mutex<HashMap<Key, Entry>>>;

/// Enters `b` in `table`, refusing a connection that is already there; its key and
/// counters.
pub(super) fn enter(
    table: &Table,
    b: ConnBinding,
    mh: mpsc::Sender<Vec<u8>>,
) -> io::Result<(Key, Arc<Counters>)> {
    let key = (b.peer, b.local.port());
    let counters = Arc::new(Counters::default());
    let mut t = lock(table);
    if t.contains_key(&key) {
        return Err(other(format!(
            "{} -> {}: already on the per-connection data path",
            b.peer, b.local
        )));
    }
    t.insert(
        key,
        Entry {
            binding: b,
            mh,
            counters: counters.clone(),
        },
    );
    Ok((key, counters))
}

/// The node's half: rules, sets, queue threads. Torn down when the last handle goes.
struct Node {
    queue: u16,
    inbound: String,
    outbound: String,
    rules: Vec<Rule>,
    sets: Mutex<IpSets>,
    table: Table,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// The per-connection data path of one node on queues `queue` and `queue + 1`. Keep
/// one open for as long as the node takes connections: [`ConnPath::start`] on the same
/// queue (in the same network namespace) then only adds set elements. Cheap to clone.
#[derive(Clone)]
pub struct ConnPaths(Arc<Node>);

/// Open nodes by (network namespace, queue), so that [`ConnPath::start`] finds the one
/// a caller keeps open.
static OPEN: Mutex<Vec<(NodeKey, Weak<Node>)>> = Mutex::new(Vec::new());

/// (network namespace inode, first queue).
type NodeKey = (u64, u16);

fn netns_id() -> io::Result<u64> {
    // Queue numbers and sets are per network namespace, and threads may differ.
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

fn bind(q: u16) -> io::Result<NfQueue> {
    let nq = NfQueue::bind(q).map_err(|e| other(format!("netfilter queue {q}: {e}")))?;
    nq.set_read_timeout(Some(POLL))?;
    // A full socket buffer loses the queued packet's message, and the packet then waits
    // for a verdict that never comes.
    nq.set_recv_buffer(4 << 20)?;
    Ok(nq)
}

pub(super) fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
    // A panicking queue thread must not take the others down with it.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConnPaths {
    /// The node's data path on `queue` and `queue + 1` in the calling thread's network
    /// namespace: the one already open, or a new one (binds the queues, creates the sets,
    /// installs the rules — forks `ip6tables`, milliseconds).
    pub fn open(queue: u16) -> io::Result<ConnPaths> {
        let key = (netns_id()?, queue);
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(n) = open
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(ConnPaths(n));
        }
        let node = Arc::new(Node::start(queue)?);
        open.push((key, Arc::downgrade(&node)));
        Ok(ConnPaths(node))
    }

    pub fn queue(&self) -> u16 {
        self.0.queue
    }

    /// Connections on the path now.
    pub fn len(&self) -> usize {
        lock(&self.0.table).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `b` on: its set elements, its entry. `mh` receives the client's Mobility
    /// Headers for the binding's care-of address.
    pub fn add(&self, b: ConnBinding, mh: mpsc::Sender<Vec<u8>>) -> io::Result<ConnPath> {
        // The entry before the elements: a packet the elements bring finds it.
        let (key, counters) = enter(&self.0.table, b, mh)?;
        let path = ConnPath {
            held: Held::Queue {
                node: self.clone(),
                key,
            },
            binding: b,
            counters,
        };
        // On failure `path` drops: whatever went in comes out again.
        self.0.elements(&b, true)?;
        Ok(path)
    }
}

impl Node {
    fn start(queue: u16) -> io::Result<Node> {
        let mut rx = bind(queue)?;
        let mut tx = bind(queue.checked_add(1).ok_or_else(|| other("queue number"))?)?;
        let inbound = format!("{PREFIX}c{queue}-in");
        let outbound = format!("{PREFIX}c{queue}-out");
        let mut sets = IpSets::open()?;
        let table: Table = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (table.clone(), stop.clone());
        let rx_thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(p) = rx.recv() else { continue };
                let (verdict, buf) = incoming(&t, p.payload);
                if let Err(e) = rx.verdict(p.id, verdict, buf.as_deref()) {
                    tracing::warn!("per-connection binding: verdict: {e}");
                }
            }
        });
        let (t, s) = (table.clone(), stop.clone());
        let tx_thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(p) = tx.recv() else { continue };
                let (verdict, buf) = outgoing(&t, &p.payload);
                if let Err(e) = tx.verdict(p.id, verdict, buf.as_deref()) {
                    tracing::warn!("per-connection binding: verdict: {e}");
                }
            }
        });
        let mut node = Node {
            queue,
            inbound,
            outbound,
            rules: Vec::new(),
            sets: Mutex::new(IpSets::open()?),
            table,
            stop,
            threads: vec![rx_thread, tx_thread],
        };
        // Sets before the rules that name them; on failure `node` drops and removes
        // what went in.
        for name in [&node.inbound, &node.outbound] {
            sets.create_typed(name, SetType::IpPortIp)
                .and_then(|()| sets.flush(name))
                .map_err(|e| {
                    other(format!(
                        "ip set {name}: {e} (the per-connection binding needs CONFIG_IP_SET_HASH_IPPORTIP and CONFIG_NETFILTER_XT_SET)"
                    ))
                })?;
        }
        for r in conn_binding::rules(queue, &node.inbound, &node.outbound) {
            r.add()?;
            node.rules.push(r);
        }
        Ok(node)
    }

    /// Adds (`add`) or removes the set elements of `b`; an element another connection
    /// still needs (the client's Mobility Headers, shared by its connections) stays.
    fn elements(&self, b: &ConnBinding, add: bool) -> io::Result<()> {
        let ([mh, tcp_in], out) = b.elements();
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        let mut each = |name: &str, t: &Triple| {
            if add {
                sets.add_triple(name, t)
            } else {
                sets.del_triple(name, t)
            }
        };
        each(&self.inbound, &tcp_in)?;
        each(&self.outbound, &out)?;
        let shared = lock(&self.table)
            .values()
            .any(|e| e.binding.peer.ip() == b.peer.ip() && e.binding.coa == b.coa);
        if add || !shared {
            each(&self.inbound, &mh)?;
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Rules first: a queue without a reader drops what the rules send it; and a set
        // cannot go while a rule names it.
        for r in self.rules.drain(..).rev() {
            if let Err(e) = r.delete() {
                tracing::warn!("per-connection binding: {e}");
            }
        }
        let sets = self.sets.get_mut().unwrap_or_else(|p| p.into_inner());
        for name in [&self.inbound, &self.outbound] {
            if let Err(e) = sets.destroy(name) {
                tracing::warn!("per-connection binding: ip set {name}: {e}");
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A packet from the receive queue: for whom, and what to do. Segments of no connection
/// of ours (a four-tuple the sets' triples do not tell apart) pass untouched.
fn incoming(t: &Table, payload: Vec<u8>) -> (Verdict, Option<Vec<u8>>) {
    let Some((client, _, sport, dport)) = tcp_tuple(&payload) else {
        // Not TCP: the client's Mobility Headers, for each of its connections' binders.
        let table = lock(t);
        let Ok(src) = crate::wire::packet::Ipv6Header::parse(&payload).map(|ip| ip.src) else {
            return (Verdict::Drop, None);
        };
        let mut mine = table.values().filter(|e| *e.binding.peer.ip() == src);
        let Some(first) = mine.next() else {
            return (Verdict::Accept, None);
        };
        return match first.binding.incoming(&payload) {
            In::Mobility => {
                for e in std::iter::once(first).chain(mine) {
                    e.counters.mobility.fetch_add(1, Ordering::Relaxed);
                    let _ = e.mh.send(payload.clone());
                }
                (Verdict::Drop, None)
            }
            _ => {
                first.counters.dropped.fetch_add(1, Ordering::Relaxed);
                (Verdict::Drop, None)
            }
        };
    };
    let table = lock(t);
    let Some(e) = table.get(&(SocketAddrV6::new(client, sport, 0, 0), dport)) else {
        return (Verdict::Accept, None);
    };
    match e.binding.incoming(&payload) {
        In::Accept(buf) => {
            e.counters.rewritten_in.fetch_add(1, Ordering::Relaxed);
            (Verdict::Accept, Some(buf))
        }
        In::Mobility | In::Drop => {
            e.counters.dropped.fetch_add(1, Ordering::Relaxed);
            (Verdict::Drop, None)
        }
    }
}

/// A packet from the send queue: our connection's segments leave from the care-of
/// address with a Home Address option.
fn outgoing(t: &Table, payload: &[u8]) -> (Verdict, Option<Vec<u8>>) {
    let Some((_, client, sport, dport)) = tcp_tuple(payload) else {
        return (Verdict::Accept, None);
    };
    let table = lock(t);
    let Some(e) = table.get(&(SocketAddrV6::new(client, dport, 0, 0), sport)) else {
        return (Verdict::Accept, None);
    };
    match e.binding.outgoing(payload) {
        Some(buf) => {
            e.counters.rewritten_out.fetch_add(1, Ordering::Relaxed);
            (Verdict::Accept, Some(buf))
        }
        None => {
            e.counters.dropped.fetch_add(1, Ordering::Relaxed);
            (Verdict::Drop, None)
        }
    }
}

/// Which per-connection binding a node runs: the netfilter queues from `N` (any
/// kernel), or XFRM on a kernel with `CONFIG_IPV6_MIP6` ([`XfrmPaths`], opened once by
/// whoever keeps it).
#[derive(Clone)]
pub enum PathBackend {
    Queue(u16),
    Kernel(XfrmPaths),
}

impl PathBackend {
    pub fn name(&self) -> &'static str {
        match self {
            PathBackend::Queue(_) => "netfilter queues",
            PathBackend::Kernel(_) => "XFRM",
        }
    }
}

/// Where a connection's binding lives.
enum Held {
    Queue {
        node: ConnPaths,
        key: Key,
    },
    /// Held for its `Drop`, which takes the connection's objects out.
    Kernel {
        _conn: XfrmConn,
    },
}

/// One connection on its node's data path; dropping it takes the connection off.
pub struct ConnPath {
    held: Held,
    binding: ConnBinding,
    pub counters: Arc<Counters>,
}

impl ConnPath {
    /// Takes `b` on the node's data path: for queues `N` and `N + 1`, opening that path
    /// if nobody keeps it open ([`ConnPaths::open`]: then this forks `ip6tables`).
    pub fn start(
        b: ConnBinding,
        backend: &PathBackend,
        mh: mpsc::Sender<Vec<u8>>,
    ) -> io::Result<ConnPath> {
        match backend {
            PathBackend::Queue(queue) => ConnPaths::open(*queue)?.add(b, mh),
            PathBackend::Kernel(x) => x.add(b, mh),
        }
    }

    pub(super) fn on_kernel(b: ConnBinding, counters: Arc<Counters>, held: XfrmConn) -> ConnPath {
        ConnPath {
            held: Held::Kernel { _conn: held },
            binding: b,
            counters,
        }
    }

    pub fn binding(&self) -> &ConnBinding {
        &self.binding
    }

    /// The client this path serves.
    pub fn client(&self) -> Ipv6Addr {
        *self.binding.peer.ip()
    }
}

impl Drop for ConnPath {
    fn drop(&mut self) {
        // XfrmConn takes its own objects out.
        let Held::Queue { node, key } = &self.held else {
            return;
        };
        // The entry first (the elements of a client's other connections are decided by
        // what stays): a packet the elements still bring finds no entry and passes.
        let entry = lock(&node.0.table).remove(key);
        if entry.is_some() {
            if let Err(e) = node.0.elements(&self.binding, false) {
                tracing::warn!("per-connection binding: {e}");
            }
        }
    }
}
