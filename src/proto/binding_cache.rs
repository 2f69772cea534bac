//! The binding cache (RFC 6275 §9.1), built to hold a million entries.
//!
//! Lookup is a `HashMap` keyed by (local address, home address): §9.1 keys the cache by
//! home address, and a node with several addresses (an HA serving several links, a CN
//! that is also the DSA) keeps one entry per address of its own, which is what umip does
//! too (`bcache_get(our_addr, peer_addr)`).
//!
//! Each entry has at most one deadline. What the deadline means (expiry, "time to decide
//! on a Binding Refresh Request", end of DAD, end of a replay guard) is up to the state
//! machine that owns the cache; the cache only answers "which entries are due". Deadlines
//! live in a binary heap of `(deadline, key, generation)`: moving or clearing a deadline
//! bumps the entry's generation and leaves the old heap item behind (lazy deletion), so
//! every operation is O(log n) and nothing ever scans the heap.
//!
//! Two invariants keep that honest:
//! - after every mutation the heap top is live (stale tops are popped right away), so
//!   [`BindingCache::poll_timeout`] is exact and takes `&self`;
//! - when stale items outnumber live ones the heap is rebuilt from the map (O(n), but
//!   only after more than n stale pushes, so O(1) amortised). Without this a binding
//!   refreshed every second would leave ~400 dead items behind per 420 s lifetime.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv6Addr;
use std::time::Instant;

/// (our address, the mobile node's home address): one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingKey {
    /// The address of ours the Binding Update was sent to (the HA or CN address).
    pub local: Ipv6Addr,
    /// The mobile node's home address.
    pub hoa: Ipv6Addr,
}

impl BindingKey {
    pub const fn new(local: Ipv6Addr, hoa: Ipv6Addr) -> Self {
        BindingKey { local, hoa }
    }
}

#[derive(Clone, Debug)]
struct Slot<V> {
    value: V,
    deadline: Option<Instant>,
    /// Bumped whenever the deadline changes; heap items with another generation are dead.
    generation: u32,
}

type HeapItem = Reverse<(Instant, BindingKey, u32)>;

/// A map of bindings with one optional deadline each. Generic over the per-role entry
/// (`V`): the CN and the HA keep different things about a binding.
#[derive(Clone, Debug)]
pub struct BindingCache<V> {
    map: HashMap<BindingKey, Slot<V>>,
    heap: BinaryHeap<HeapItem>,
    /// Entries whose deadline is `Some` (= live heap items).
    scheduled: usize,
}

impl<V> Default for BindingCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Heap slack before a rebuild: small caches are not rebuilt over a handful of items.
const REBUILD_SLACK: usize = 64;

impl<V> BindingCache<V> {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Pre-sized for `n` bindings, so loading them does not rehash.
    pub fn with_capacity(n: usize) -> Self {
        BindingCache {
            map: HashMap::with_capacity(n),
            heap: BinaryHeap::with_capacity(n),
            scheduled: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &BindingKey) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    pub fn get_mut(&mut self, key: &BindingKey) -> Option<&mut V> {
        self.map.get_mut(key).map(|s| &mut s.value)
    }

    pub fn contains(&self, key: &BindingKey) -> bool {
        self.map.contains_key(key)
    }

    /// Every entry, in no particular order (for `mip6ctl` and tests).
    pub fn iter(&self) -> impl Iterator<Item = (&BindingKey, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    /// The entry's current deadline.
    pub fn deadline(&self, key: &BindingKey) -> Option<Instant> {
        self.map.get(key).and_then(|s| s.deadline)
    }

    /// Inserts or replaces the entry and sets its deadline; returns the old value.
    pub fn insert(&mut self, key: BindingKey, value: V, deadline: Option<Instant>) -> Option<V> {
        let old = match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                let old = std::mem::replace(&mut slot.value, value);
                Some(old)
            }
            Entry::Vacant(v) => {
                v.insert(Slot {
                    value,
                    deadline: None,
                    generation: 0,
                });
                None
            }
        };
        self.set_deadline(&key, deadline);
        old
    }

    /// Removes the entry; its heap item, if any, goes stale.
    pub fn remove(&mut self, key: &BindingKey) -> Option<V> {
        let slot = self.map.remove(key)?;
        if slot.deadline.is_some() {
            self.scheduled -= 1;
        }
        self.after_mutation();
        Some(slot.value)
    }

    /// Moves (or, with `None`, clears) the entry's deadline. False if there is no entry.
    pub fn set_deadline(&mut self, key: &BindingKey, deadline: Option<Instant>) -> bool {
        let Some(slot) = self.map.get_mut(key) else {
            return false;
        };
        if slot.deadline == deadline {
            return true;
        }
        match (slot.deadline.is_some(), deadline.is_some()) {
            (false, true) => self.scheduled += 1,
            (true, false) => self.scheduled -= 1,
            _ => {}
        }
        slot.generation = slot.generation.wrapping_add(1);
        slot.deadline = deadline;
        if let Some(at) = deadline {
            self.heap.push(Reverse((at, *key, slot.generation)));
        }
        self.after_mutation();
        true
    }

    /// The earliest deadline of any entry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next entry whose deadline is at or before `now`, earliest first. Its deadline
    /// is cleared (the caller sets a new one or removes the entry); call repeatedly until
    /// `None`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(BindingKey, Instant)> {
        let Reverse((at, key, _)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        // The top is always live (see `after_mutation`), so this is the entry's deadline.
        if let Some(slot) = self.map.get_mut(&key) {
            slot.deadline = None;
            slot.generation = slot.generation.wrapping_add(1);
            self.scheduled -= 1;
        }
        self.after_mutation();
        Some((key, at))
    }

    fn is_live(&self, item: &HeapItem) -> bool {
        let Reverse((at, key, generation)) = item;
        self.map
            .get(key)
            .is_some_and(|s| s.generation == *generation && s.deadline == Some(*at))
    }

    /// Restores the invariants: a live top, and not more dead heap items than live ones.
    fn after_mutation(&mut self) {
        if self.heap.len() > 2 * self.scheduled + REBUILD_SLACK {
            let items: Vec<HeapItem> = self
                .map
                .iter()
                .filter_map(|(k, s)| s.deadline.map(|at| Reverse((at, *k, s.generation))))
                .collect();
            self.heap = BinaryHeap::from(items);
        }
        while let Some(top) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Heap items held, dead ones included (for tests and the benchmark).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Approximate bytes of memory per binding held by the two containers, from their
    /// capacities (hashbrown: one control byte per bucket plus the bucket itself).
    pub fn approx_bytes(&self) -> usize {
        let bucket = std::mem::size_of::<(BindingKey, Slot<V>)>() + 1;
        // hashbrown keeps at least 1/8 of the buckets free and rounds to a power of two.
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two();
        buckets * bucket + self.heap.capacity() * std::mem::size_of::<HeapItem>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(i: u32) -> BindingKey {
        let hoa = Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0000_0000u128 | u128::from(i));
        BindingKey::new("2001:db8:3::1".parse().unwrap(), hoa)
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn insert_get_remove() {
        let t0 = Instant::now();
        let mut c = BindingCache::new();
        assert!(c.is_empty());
        assert_eq!(c.insert(key(1), "a", Some(t0 + s(5))), None);
        assert_eq!(c.insert(key(1), "b", Some(t0 + s(7))), Some("a"));
        assert_eq!(c.get(&key(1)), Some(&"b"));
        assert_eq!(c.deadline(&key(1)), Some(t0 + s(7)));
        assert_eq!(c.poll_timeout(), Some(t0 + s(7)));
        assert_eq!(c.len(), 1);
        assert_eq!(c.remove(&key(1)), Some("b"));
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.remove(&key(1)), None);
        assert!(!c.set_deadline(&key(1), Some(t0)));
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut c = BindingCache::new();
        for (i, d) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
            c.insert(key(i), i, Some(t0 + s(d)));
        }
        c.insert(key(5), 5, None);
        assert_eq!(c.poll_timeout(), Some(t0 + s(10)));
        assert_eq!(c.pop_due(t0 + s(9)), None);
        let mut got = vec![];
        while let Some((k, at)) = c.pop_due(t0 + s(20)) {
            got.push((k, at));
            assert_eq!(c.deadline(&k), None);
        }
        let mut want = vec![
            (key(2), t0 + s(10)),
            (key(4), t0 + s(10)),
            (key(3), t0 + s(20)),
        ];
        // Ties come out in key order (the heap compares the key second).
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(c.poll_timeout(), Some(t0 + s(30)));
        assert_eq!(c.len(), 5, "popping does not remove");
    }

    #[test]
    fn moved_and_removed_deadlines_never_fire() {
        let t0 = Instant::now();
        let mut c = BindingCache::new();
        c.insert(key(1), (), Some(t0 + s(1)));
        c.insert(key(2), (), Some(t0 + s(2)));
        c.set_deadline(&key(1), Some(t0 + s(50)));
        c.remove(&key(2));
        assert_eq!(c.poll_timeout(), Some(t0 + s(50)));
        assert_eq!(c.pop_due(t0 + s(49)), None);
        c.set_deadline(&key(1), None);
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.pop_due(t0 + s(1000)), None);
        // Re-inserting a removed key starts clean.
        c.insert(key(2), (), Some(t0 + s(3)));
        assert_eq!(c.pop_due(t0 + s(3)), Some((key(2), t0 + s(3))));
    }

    #[test]
    fn stale_items_are_bounded_by_rebuilds() {
        let t0 = Instant::now();
        let mut c = BindingCache::new();
        for i in 0..100 {
            c.insert(key(i), (), Some(t0 + s(1000)));
        }
        // Refresh every binding 1000 times: 100 000 pushes.
        for round in 0..1000u64 {
            for i in 0..100 {
                c.set_deadline(&key(i), Some(t0 + s(1000 + round)));
            }
            assert!(
                c.heap_len() <= 2 * 100 + REBUILD_SLACK + 1,
                "{}",
                c.heap_len()
            );
        }
        let mut n = 0;
        while c.pop_due(t0 + s(5000)).is_some() {
            n += 1;
        }
        assert_eq!(n, 100, "every binding fires exactly once");
    }

    /// A randomised comparison against a naive model (a map scanned for the minimum).
    #[test]
    fn matches_a_naive_model() {
        let t0 = Instant::now();
        let mut c = BindingCache::new();
        let mut model: HashMap<BindingKey, Option<Instant>> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = t0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % 64) as u32);
            let d = Some(now + Duration::from_millis((x >> 8) % 5000));
            match (x >> 40) % 5 {
                0 | 1 => {
                    c.insert(k, (), d);
                    model.insert(k, d);
                }
                2 => {
                    assert_eq!(c.remove(&k).is_some(), model.remove(&k).is_some());
                }
                3 => {
                    let set = c.set_deadline(&k, d);
                    assert_eq!(set, model.contains_key(&k));
                    if set {
                        model.insert(k, d);
                    }
                }
                _ => {
                    now += Duration::from_millis((x >> 20) % 700);
                    while let Some((k, at)) = c.pop_due(now) {
                        let want = model.get(&k).copied().flatten();
                        assert_eq!(want, Some(at));
                        // Nothing in the model is earlier.
                        let min = model.values().flatten().min().copied();
                        assert_eq!(min, Some(at));
                        model.insert(k, None);
                    }
                }
            }
            let min = model.values().flatten().min().copied();
            assert_eq!(c.poll_timeout(), min);
            assert_eq!(c.len(), model.len());
        }
    }
}
