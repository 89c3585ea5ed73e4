//! Bounded caches of the interned rows a stream of messages points to.

use std::rc::Rc;

use super::{StoredEndpoint, StoredProcess, rebuild::SetRecord};

/// The caches of interned rows: direct-mapped (slot = id mod size), so their
/// memory is fixed and a lookup is one comparison.
pub(super) struct Caches {
    pub names: SlotCache<Rc<str>>,
    pub rdata: SlotCache<Rc<str>>,
    pub processes: SlotCache<Rc<StoredProcess>>,
    pub endpoints: SlotCache<Rc<StoredEndpoint>>,
    pub sets: SlotCache<Rc<[SetRecord]>>,
}

impl Caches {
    pub fn new() -> Self {
        Self {
            names: SlotCache::new(1 << 14),
            rdata: SlotCache::new(1 << 14),
            processes: SlotCache::new(1 << 12),
            endpoints: SlotCache::new(1 << 10),
            sets: SlotCache::new(1 << 13),
        }
    }
}

pub(super) struct SlotCache<T> {
    slots: Vec<Option<(i64, T)>>,
}

impl<T: Clone> SlotCache<T> {
    /// `size` must be a power of two.
    fn new(size: usize) -> Self {
        Self {
            slots: (0..size).map(|_| None).collect(),
        }
    }

    fn slot(&self, id: i64) -> usize {
        (id as u64 as usize) & (self.slots.len() - 1)
    }

    pub fn get(&mut self, id: i64) -> Option<T> {
        match &self.slots[self.slot(id)] {
            Some((key, value)) if *key == id => Some(value.clone()),
            _ => None,
        }
    }

    pub fn put(&mut self, id: i64, value: T) {
        let slot = self.slot(id);
        self.slots[slot] = Some((id, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_cache_replaces_colliding_ids() {
        let mut cache = SlotCache::new(4);
        cache.put(1, "a");
        cache.put(5, "b");
        assert_eq!(cache.get(1), None);
        assert_eq!(cache.get(5), Some("b"));
    }
}
