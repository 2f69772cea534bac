//! Deadlines for the event loop: a min-heap with lazy cancellation.
//!
//! Every timer has a key. Arming a key again replaces its deadline; the old heap entry is
//! left in place and skipped when it reaches the top (it no longer matches what `armed`
//! says), which keeps `set` and `cancel` at O(log n) and O(1) without a decrease-key heap.
//! The heap is rebuilt when stale entries outnumber live ones, so re-arming a timer on
//! every loop iteration cannot grow memory without bound.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

struct Slot<K> {
    deadline: Instant,
    /// Arming order: breaks ties between equal deadlines (first armed fires first) and
    /// tells a live entry from a stale one for the same key.
    seq: u64,
    key: K,
}

impl<K> PartialEq for Slot<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K> Eq for Slot<K> {}
impl<K> PartialOrd for Slot<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Slot<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

pub struct Timers<K> {
    heap: BinaryHeap<Reverse<Slot<K>>>,
    armed: HashMap<K, (Instant, u64)>,
    seq: u64,
}

impl<K: Clone + Eq + Hash> Default for Timers<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> Timers<K> {
    pub fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
            seq: 0,
        }
    }

    /// Arms `key` for `deadline`, replacing any earlier deadline of the same key.
    pub fn set(&mut self, key: K, deadline: Instant) {
        if self.armed.get(&key).is_some_and(|(d, _)| *d == deadline) {
            return;
        }
        self.seq += 1;
        self.armed.insert(key.clone(), (deadline, self.seq));
        self.heap.push(Reverse(Slot {
            deadline,
            seq: self.seq,
            key,
        }));
        if self.heap.len() > 2 * self.armed.len() + 64 {
            self.compact();
        }
    }

    /// Arms or cancels, as a protocol machine's `poll_timeout` says.
    pub fn set_opt(&mut self, key: K, deadline: Option<Instant>) {
        match deadline {
            Some(d) => self.set(key, d),
            None => self.cancel(&key),
        }
    }

    pub fn cancel(&mut self, key: &K) {
        self.armed.remove(key);
    }

    pub fn deadline(&self, key: &K) -> Option<Instant> {
        self.armed.get(key).map(|(d, _)| *d)
    }

    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    fn is_live(&self, s: &Slot<K>) -> bool {
        self.armed.get(&s.key).is_some_and(|(_, seq)| *seq == s.seq)
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse(s)| s.deadline)
    }

    /// How long the event loop may sleep: `None` (forever) when nothing is armed, zero when
    /// something is already due.
    pub fn timeout(&mut self, now: Instant) -> Option<Duration> {
        self.next_deadline()
            .map(|d| d.saturating_duration_since(now))
    }

    /// Disarms and returns every key due at `now`, earliest first.
    pub fn expired(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        loop {
            self.drop_stale_top();
            match self.heap.peek() {
                Some(Reverse(s)) if s.deadline <= now => {
                    let Reverse(s) = self.heap.pop().expect("peeked");
                    self.armed.remove(&s.key);
                    due.push(s.key);
                }
                _ => return due,
            }
        }
    }

    fn compact(&mut self) {
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_iter()
            .filter(|Reverse(s)| self.is_live(s))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set("c", at(t0, 30));
        t.set("a", at(t0, 10));
        t.set("b", at(t0, 20));
        assert_eq!(t.next_deadline(), Some(at(t0, 10)));
        assert_eq!(t.timeout(t0), Some(Duration::from_millis(10)));
        assert!(t.expired(at(t0, 9)).is_empty());
        assert_eq!(t.expired(at(t0, 20)), ["a", "b"]);
        assert_eq!(t.expired(at(t0, 100)), ["c"]);
        assert!(t.is_empty());
        assert_eq!(t.timeout(t0), None, "nothing armed: sleep until an event");
    }

    #[test]
    fn overdue_timers_give_a_zero_timeout() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set(1, t0);
        assert_eq!(t.timeout(at(t0, 50)), Some(Duration::ZERO));
    }

    #[test]
    fn rearming_replaces_and_cancel_removes() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set("x", at(t0, 10));
        t.set("x", at(t0, 50));
        t.set("y", at(t0, 20));
        t.cancel(&"y");
        assert_eq!(t.deadline(&"x"), Some(at(t0, 50)));
        assert_eq!(t.next_deadline(), Some(at(t0, 50)));
        assert!(t.expired(at(t0, 40)).is_empty());
        assert_eq!(t.expired(at(t0, 50)), ["x"]);
        // Earlier again after a later deadline.
        t.set("x", at(t0, 90));
        t.set("x", at(t0, 70));
        assert_eq!(t.expired(at(t0, 80)), ["x"]);
        assert!(t.expired(at(t0, 1000)).is_empty());
    }

    #[test]
    fn equal_deadlines_fire_in_arming_order() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        for k in [3, 1, 2] {
            t.set(k, at(t0, 5));
        }
        assert_eq!(t.expired(at(t0, 5)), [3, 1, 2]);
    }

    #[test]
    fn set_opt_none_cancels() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.set_opt('m', Some(at(t0, 1)));
        t.set_opt('m', None);
        assert!(t.expired(at(t0, 10)).is_empty());
    }

    #[test]
    fn rearming_every_iteration_keeps_the_heap_small() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        for i in 0..10_000u64 {
            t.set("tick", at(t0, 10_000 - i));
        }
        assert!(t.heap.len() <= 2 * t.len() + 65, "heap {}", t.heap.len());
        assert_eq!(t.expired(at(t0, 1)), ["tick"]);
    }
}
