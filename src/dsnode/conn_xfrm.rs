//! The acceptor's per-connection binding on the `kernel` data path: the kernel's Mobile
//! IPv6 code (`CONFIG_IPV6_MIP6`) does what the netfilter queues of [`super::conn_path`]
//! do in user space, programmed through XFRM as umip programs a mobile node's route
//! optimisation, but for one connection instead of a whole correspondent:
//!
//! - per node: a wildcard receive state for the Type 2 Routing Header, so a segment the
//!   client sends to this node with an RH2 naming the DSA is delivered to the DSA;
//! - per client: a route-optimisation state DSA → client that puts a Home Address option
//!   (the DSA) in and sends from this node's address (its care-of address), and an
//!   inbound sub-policy client → DSA with an optional RH2 template (a packet whose routing
//!   header a route-optimisation state processed is refused unless a policy names that
//!   transformation): the connections' segments and the client's Binding
//!   Acknowledgement;
//! - per connection: an outbound sub-policy naming its four-tuple, with the Home Address
//!   option template. The client's other traffic from this node leaves untouched. (Its
//!   other segments *to* the DSA reach this node's DSA while it is bound here, as with
//!   any RFC 6275 client: see `ds::redirect`.)
//!
//! The client's Mobility Headers (Care-of Test, Binding Acknowledgement) come from a raw
//! `IPPROTO_MH` socket ([`MhSocket`]) after the kernel processed their routing header;
//! they go to the binders of the client's connections rebuilt as they were on the wire,
//! which is what the binder of the queue path gets too.
//!
//! [`plan`] is pure (unit tests below; `scripts/vm-test kernel-handoff` runs it on a MIP6
//! kernel); [`XfrmPaths`] applies it as connections come and go, and removes everything
//! when it is cleaned up (the daemon's registry does that on SIGTERM) or dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use super::conn_path::{self, ConnPath, Key, Table};
use super::other;
use crate::datapath::conn_binding::ConnBinding;
use crate::datapath::kernel::{prio, KernelObject, ObjectKey};
use crate::datapath::user;
use crate::proto::event::Transmit;
use crate::sys::mh_socket::{MhSocket, ReceivedMh};
use crate::sys::xfrm::{
    self, Dir, Policy, Selector, State, Template, Xfrm, IPPROTO_DSTOPTS, IPPROTO_ROUTING,
    IPPROTO_TCP,
};
use crate::wire::mh::MhRepr;

/// How often the Mobility Header reader looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);

fn sub(sel: Selector, dir: Dir, priority: u32, t: u8, optional: bool) -> KernelObject {
    KernelObject::Policy(Policy::sub(
        sel,
        dir,
        priority,
        vec![Template::ro(t, optional)],
    ))
}

/// The objects of the node's connection-level bindings, in install order, without
/// duplicates: pure and deterministic.
pub fn plan(conns: &[ConnBinding]) -> Vec<KernelObject> {
    let mut out = vec![KernelObject::State(State::wildcard_receive(
        IPPROTO_ROUTING,
    ))];
    for b in conns {
        let (dsa, client) = (*b.local.ip(), *b.peer.ip());
        let (service, port) = (b.local.port(), b.peer.port());
        out.push(KernelObject::State(State::ro(
            dsa,
            client,
            IPPROTO_DSTOPTS,
            b.coa,
        )));
        // Inbound per client, not per connection: on a segment whose RH2 the kernel
        // processed, its XFRM flow decoder reads the ports at the routing header
        // (`_decode_session6` starts at `IP6CB->nhoff`, which then points into it), so
        // a selector with ports never matches (seen on Debian's 6.1 in the VM).
        out.push(sub(
            Selector::hosts(client, dsa),
            Dir::In,
            prio::RO_BULE_DATA,
            IPPROTO_ROUTING,
            true,
        ));
        out.push(sub(
            Selector::hosts(dsa, client).ports(IPPROTO_TCP, service, port),
            Dir::Out,
            prio::RO_BULE_DATA,
            IPPROTO_DSTOPTS,
            false,
        ));
    }
    let mut seen = BTreeSet::new();
    out.retain(|o| seen.insert(o.key()));
    out.sort_by_key(KernelObject::rank);
    out
}

/// A Mobility Header from the socket as it was on the wire (the kernel swapped the RH2's
/// address with the destination): what the binder parses. `None` for what does not
/// parse, fails its checksum or carries a Home Address option (a client sends none).
pub fn wire_packet(r: &ReceivedMh) -> Option<Vec<u8>> {
    let final_dst = r.dst?;
    if r.hao.is_some() {
        return None;
    }
    let repr = MhRepr::parse_checked(&r.bytes, &r.src, &final_dst).ok()?;
    let t = Transmit {
        src: r.src,
        dst: r.rh2.unwrap_or(final_dst),
        rh2: r.rh2.map(|_| final_dst),
        repr,
        bytes: r.bytes.clone(),
        hao: None,
        tunnel: None,
    };
    user::build_packet(&t)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread must not take the others down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What is in the kernel: ours, and what was there before us (not ours to remove).
struct Kernel {
    xfrm: Xfrm,
    installed: BTreeMap<ObjectKey, KernelObject>,
    foreign: BTreeSet<ObjectKey>,
    closed: bool,
}

fn apply(x: &mut Xfrm, o: &KernelObject, add: bool) -> io::Result<()> {
    match (o, add) {
        (KernelObject::State(s), true) => x.add_state(s),
        (KernelObject::State(s), false) => x.del_state(&s.id),
        (KernelObject::Policy(p), true) => x.add_policy(p),
        (KernelObject::Policy(p), false) => x.del_policy(&p.id()),
        _ => Err(other(format!("not an XFRM object: {}", o.describe()))),
    }
}

impl Kernel {
    /// Brings the kernel to `want`: additions first (install order), then removals
    /// (reverse order). The first failed addition is the error; the rest still goes.
    fn sync(&mut self, want: &[KernelObject]) -> io::Result<()> {
        let keys: BTreeSet<ObjectKey> = want.iter().map(KernelObject::key).collect();
        let mut first = None;
        for o in want {
            let k = o.key();
            if self.installed.contains_key(&k) || self.foreign.contains(&k) {
                continue;
            }
            match apply(&mut self.xfrm, o, true) {
                Ok(()) => {
                    tracing::debug!("per-connection binding: installed {}", o.describe());
                    self.installed.insert(k, o.clone());
                }
                // Another daemon role's wildcard state serves us as well.
                Err(e)
                    if xfrm::errno(&e) == Some(libc::EEXIST)
                        && matches!(o, KernelObject::State(s) if s.flags & xfrm::XFRM_STATE_WILDRECV != 0) =>
                {
                    self.foreign.insert(k);
                }
                Err(e) => {
                    let e = other(format!("{}: {e}", o.describe()));
                    first.get_or_insert(e);
                }
            }
        }
        let mut stale: Vec<KernelObject> = self
            .installed
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .map(|(_, o)| o.clone())
            .collect();
        stale.sort_by_key(|o| std::cmp::Reverse(o.rank()));
        for o in stale {
            self.installed.remove(&o.key());
            match apply(&mut self.xfrm, &o, false) {
                Ok(()) => tracing::debug!("per-connection binding: removed {}", o.describe()),
                Err(e) => tracing::warn!("per-connection binding: removing {}: {e}", o.describe()),
            }
        }
        self.foreign.retain(|k| keys.contains(k));
        first.map_or(Ok(()), Err)
    }
}

struct Node {
    kernel: Mutex<Kernel>,
    table: Table,
    stop: Arc<AtomicBool>,
    reader: Mutex<Option<thread::JoinHandle<()>>>,
}

/// The node's per-connection bindings on XFRM, in the network namespace it was opened
/// in. Cheap to clone; the objects go with [`XfrmPaths::cleanup`] or the last clone.
#[derive(Clone)]
pub struct XfrmPaths(Arc<Node>);

impl XfrmPaths {
    /// Opens the XFRM and Mobility Header sockets and installs the node's wildcard RH2
    /// receive state. Fails on a kernel without `CONFIG_IPV6_MIP6` (the state is refused).
    pub fn open() -> io::Result<XfrmPaths> {
        let xfrm = Xfrm::open().map_err(|e| other(format!("XFRM socket: {e}")))?;
        let sock = MhSocket::open().map_err(|e| other(format!("Mobility Header socket: {e}")))?;
        sock.set_read_timeout(Some(POLL))?;
        let table: Table = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let node = Node {
            kernel: Mutex::new(Kernel {
                xfrm,
                installed: BTreeMap::new(),
                foreign: BTreeSet::new(),
                closed: false,
            }),
            table: table.clone(),
            stop: stop.clone(),
            reader: Mutex::new(None),
        };
        // On failure `node` drops and removes what went in.
        lock(&node.kernel).sync(&plan(&[]))?;
        let reader = thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = sock.recv() {
                    dispatch(&table, &r);
                }
            }
        });
        *lock(&node.reader) = Some(reader);
        Ok(XfrmPaths(Arc::new(node)))
    }

    /// Connections on the path now.
    pub fn len(&self) -> usize {
        lock(&self.0.table).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What this node installed, in install order, as `ip xfrm` would describe it.
    pub fn installed(&self) -> Vec<String> {
        let k = lock(&self.0.kernel);
        let mut v: Vec<&KernelObject> = k.installed.values().collect();
        v.sort_by_key(|o| o.rank());
        v.into_iter().map(KernelObject::describe).collect()
    }

    fn resync(&self) -> io::Result<()> {
        let mut k = lock(&self.0.kernel);
        if k.closed {
            return Err(other("the per-connection binding is shut down"));
        }
        let conns: Vec<ConnBinding> = {
            let t = lock(&self.0.table);
            let mut v: Vec<ConnBinding> = t.values().map(|e| e.binding).collect();
            // Deterministic order: the plan's objects are sorted anyway, but its
            // duplicates keep the first.
            v.sort_by_key(|b| (b.peer, b.local));
            v
        };
        k.sync(&plan(&conns))
    }

    /// Takes `b` on: its policies (and its client's state, if it is the client's first
    /// connection here). `mh` receives the client's Mobility Headers, as on the wire.
    pub fn add(&self, b: ConnBinding, mh: mpsc::Sender<Vec<u8>>) -> io::Result<ConnPath> {
        let (key, counters) = conn_path::enter(&self.0.table, b, mh)?;
        let held = XfrmConn {
            node: self.clone(),
            key,
        };
        // On failure `held` drops: the entry goes, and the kernel follows.
        self.resync()?;
        Ok(ConnPath::on_kernel(b, counters, held))
    }

    /// Removes every object this node installed and refuses connections from now on
    /// (the daemon's registry calls this on shutdown).
    pub fn cleanup(&self) -> io::Result<()> {
        let mut k = lock(&self.0.kernel);
        k.closed = true;
        k.sync(&[])
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.reader).take() {
            let _ = t.join();
        }
        let k = self.kernel.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = k.sync(&[]) {
            tracing::warn!("per-connection binding: {e}");
        }
    }
}

/// One connection's place on the node's path; dropping it takes its objects out.
pub struct XfrmConn {
    node: XfrmPaths,
    key: Key,
}

impl Drop for XfrmConn {
    fn drop(&mut self) {
        if lock(&self.node.0.table).remove(&self.key).is_some() {
            if let Err(e) = self.node.resync() {
                tracing::warn!("per-connection binding: {e}");
            }
        }
    }
}

/// Hands a client's Mobility Header to the binders of its connections here.
fn dispatch(t: &Table, r: &ReceivedMh) {
    let table = lock(t);
    let mut mine = table
        .values()
        .filter(|e| *e.binding.peer.ip() == r.src)
        .peekable();
    if mine.peek().is_none() {
        return;
    }
    let Some(pkt) = wire_packet(r) else {
        for e in mine {
            e.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        return;
    };
    for e in mine {
        e.counters.mobility.fetch_add(1, Ordering::Relaxed);
        let _ = e.mh.send(pkt.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cn::status;
    use crate::wire::mh::{BaFlags, Message};
    use crate::wire::packet::{self, Header};
    use std::net::Ipv6Addr;
    use std::net::SocketAddrV6;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn binding(port: u16) -> ConnBinding {
        ConnBinding {
            local: SocketAddrV6::new(a("2001:db8:1::200"), 8000, 0, 0),
            peer: SocketAddrV6::new(a("2001:db8:10::2"), port, 0, 0),
            coa: a("2001:db8:32::2"),
        }
    }

    fn policies(objs: &[KernelObject]) -> Vec<&Policy> {
        objs.iter()
            .filter_map(|o| match o {
                KernelObject::Policy(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_node_alone_has_the_wildcard_rh2_receive_state() {
        let p = plan(&[]);
        assert_eq!(p.len(), 1);
        let KernelObject::State(s) = &p[0] else {
            panic!("{p:?}")
        };
        assert_eq!(s.id.proto, IPPROTO_ROUTING);
        assert_ne!(s.flags & xfrm::XFRM_STATE_WILDRECV, 0);
    }

    #[test]
    fn a_connection_gets_its_four_tuple_policies_and_the_client_one_hao_state() {
        let b = binding(40000);
        let p = plan(&[b]);
        let states: Vec<&State> = p
            .iter()
            .filter_map(|o| match o {
                KernelObject::State(s) => Some(s),
                _ => None,
            })
            .collect();
        let hao = states
            .iter()
            .find(|s| s.id.proto == IPPROTO_DSTOPTS)
            .expect("HAO state");
        assert_eq!(
            (hao.id.src, hao.id.dst, hao.coaddr),
            (*b.local.ip(), *b.peer.ip(), Some(b.coa))
        );
        let pols = policies(&p);
        let out = pols.iter().find(|p| p.dir == Dir::Out).expect("out policy");
        assert_eq!(
            (
                out.sel.src,
                out.sel.dst,
                out.sel.proto,
                out.sel.sport,
                out.sel.dport
            ),
            (*b.local.ip(), *b.peer.ip(), IPPROTO_TCP, 8000, 40000)
        );
        assert_eq!((out.sel.sport_mask, out.sel.dport_mask), (0xffff, 0xffff));
        assert_eq!(out.templates, vec![Template::ro(IPPROTO_DSTOPTS, false)]);
        let inbound = pols.iter().find(|p| p.dir == Dir::In).expect("in policy");
        // Every protocol (the segments and the Mobility Headers), no ports.
        assert_eq!(
            (inbound.sel.src, inbound.sel.dst, inbound.sel.proto),
            (*b.peer.ip(), *b.local.ip(), 0)
        );
        assert_eq!(inbound.templates, vec![Template::ro(IPPROTO_ROUTING, true)]);
        // umip's priorities, which the leftover sweep recognises.
        assert!(pols.iter().all(|p| (1..=19).contains(&p.priority)));
        // Install order: the state before the outbound policy that needs it.
        let pos = |f: &dyn Fn(&KernelObject) -> bool| p.iter().position(f).unwrap();
        assert!(
            pos(&|o| matches!(o, KernelObject::State(s) if s.id.proto == IPPROTO_DSTOPTS))
                < pos(&|o| matches!(o, KernelObject::Policy(p) if p.dir == Dir::Out))
        );
    }

    #[test]
    fn two_connections_of_one_client_share_its_state_and_part_with_their_own_policies() {
        let (b1, b2) = (binding(40000), binding(40001));
        let both = plan(&[b1, b2]);
        let one = plan(&[b1]);
        assert_eq!(
            policies(&both).len(),
            3,
            "1 per connection + the client's inbound"
        );
        assert_eq!(both.len() - one.len(), 1);
        let gone: Vec<ObjectKey> = {
            let keep: BTreeSet<ObjectKey> = one.iter().map(KernelObject::key).collect();
            both.iter()
                .map(KernelObject::key)
                .filter(|k| !keep.contains(k))
                .collect()
        };
        for k in gone {
            let ObjectKey::Policy(id) = k else {
                panic!("only policies go: {k:?}")
            };
            assert_eq!((id.dir, id.sel.dport), (Dir::Out, 40001));
        }
        assert_eq!(plan(&[b1, b2]), plan(&[b1, b2]), "deterministic");
    }

    #[test]
    fn mobility_headers_are_rebuilt_as_they_were_on_the_wire() {
        let b = binding(40000);
        let (client, dsa, coa) = (*b.peer.ip(), *b.local.ip(), b.coa);
        let repr = MhRepr {
            message: Message::BindingAck {
                status: status::ACCEPTED,
                flags: BaFlags::default(),
                sequence: 7,
                lifetime_units: 1,
            },
            options: vec![],
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut bytes, &client, &dsa);
        // What the socket reports after a MIP6 kernel processed the RH2.
        let r = ReceivedMh {
            src: client,
            dst: Some(dsa),
            ifindex: None,
            hao: None,
            rh2: Some(coa),
            bytes: bytes.clone(),
        };
        let pkt = wire_packet(&r).expect("rebuilt");
        let parsed = packet::parse(&pkt).expect("parses");
        assert_eq!(parsed.ip.src, client);
        assert!(parsed
            .headers
            .iter()
            .any(|h| matches!(h, Header::Type2Routing(r) if r.home_address == dsa)));
        assert!(parsed.headers.iter().any(|h| matches!(
            h,
            Header::Mobility { repr: got, checksum_ok: true, .. } if *got == repr
        )));
        assert!(pkt.ends_with(&bytes));
        assert_eq!(&pkt[24..40], &coa.octets(), "to the care-of address");
        // A bad checksum, a HAO, no destination: nothing for the binder.
        let mut bad = r.clone();
        bad.bytes[4] ^= 1;
        assert!(wire_packet(&bad).is_none());
        assert!(wire_packet(&ReceivedMh {
            hao: Some(coa),
            ..r.clone()
        })
        .is_none());
        assert!(wire_packet(&ReceivedMh { dst: None, ..r }).is_none());
    }
}
