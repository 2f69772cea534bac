//! The acceptor's per-connection data path ([`ConnBinding`]) on two netfilter queues,
//! one thread each, for as long as the connection lives. Mobility Headers from the client
//! (the Care-of Test, the Binding Acknowledgement) go to the binder over a channel.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use super::other;
use crate::daemon::registry::Registry;
use crate::datapath::conn_binding::{ConnBinding, In};
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

pub struct ConnPath {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    registry: Registry,
    pub counters: Arc<Counters>,
}

fn bind(q: u16) -> io::Result<NfQueue> {
    let nq = NfQueue::bind(q).map_err(|e| other(format!("netfilter queue {q}: {e}")))?;
    nq.set_read_timeout(Some(POLL))?;
    // A full socket buffer loses the queued packet's message, and the packet then waits
    // for a verdict that never comes.
    nq.set_recv_buffer(4 << 20)?;
    Ok(nq)
}

impl ConnPath {
    /// Binds queues `queue` and `queue + 1`, then installs the rules. Queue numbers are
    /// per network namespace: two connections on one node need two pairs.
    pub fn start(b: ConnBinding, queue: u16, mh: mpsc::Sender<Vec<u8>>) -> io::Result<ConnPath> {
        let mut rx = bind(queue)?;
        let mut tx = bind(queue.checked_add(1).ok_or_else(|| other("queue number"))?)?;
        let mut registry = Registry::new();
        for r in b.rules(queue) {
            if let Err(e) = r.install(&mut registry) {
                registry.undo_all();
                return Err(e);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (s, c) = (stop.clone(), counters.clone());
        let rx_thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(p) = rx.recv() else { continue };
                let r = match b.incoming(&p.payload) {
                    In::Mobility => {
                        c.mobility.fetch_add(1, Ordering::Relaxed);
                        let _ = mh.send(p.payload);
                        rx.verdict(p.id, Verdict::Drop, None)
                    }
                    In::Accept(buf) => {
                        c.rewritten_in.fetch_add(1, Ordering::Relaxed);
                        rx.verdict(p.id, Verdict::Accept, Some(&buf))
                    }
                    In::Drop => {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        rx.verdict(p.id, Verdict::Drop, None)
                    }
                };
                if let Err(e) = r {
                    tracing::warn!("per-connection binding: verdict: {e}");
                }
            }
        });
        let (s, c) = (stop.clone(), counters.clone());
        let tx_thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(p) = tx.recv() else { continue };
                let r = match b.outgoing(&p.payload) {
                    Some(buf) => {
                        c.rewritten_out.fetch_add(1, Ordering::Relaxed);
                        tx.verdict(p.id, Verdict::Accept, Some(&buf))
                    }
                    None => {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        tx.verdict(p.id, Verdict::Drop, None)
                    }
                };
                if let Err(e) = r {
                    tracing::warn!("per-connection binding: verdict: {e}");
                }
            }
        });
        Ok(ConnPath {
            stop,
            threads: vec![rx_thread, tx_thread],
            registry,
            counters,
        })
    }
}

impl Drop for ConnPath {
    fn drop(&mut self) {
        // Rules first: a queue without a reader drops what the rules send it.
        for e in self.registry.undo_all() {
            tracing::warn!("per-connection binding: {e}");
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
