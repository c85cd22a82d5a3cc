//! Event-time and processing-time timers per (key, namespace), as Flink's internal timer
//! service: registered for the current key, fired in timestamp order with that key set as the
//! current key.
//!
//! Timers are entries of an internal state per time domain, so checkpoints, restores and
//! rescales carry them with their key groups like any state. Entry key (see
//! `docs/formats.md`): `[key group][framed timestamp][framed (framed key, framed namespace)]`,
//! the timestamp as 8 bytes big-endian with the sign bit flipped, so that a key group's timers
//! sort by time (in RocksDB: one column family per domain, keys starting with the key group and
//! then the timestamp; or, with the RocksDB backend's heap timer store, a sorted map per key group
//! in memory, as on the heap). An in-memory set of each key group's earliest timer gives the global
//! order; it is rebuilt from the state when the service is created (after a restore, too). An
//! engine whose timers are not in memory (RocksDB's column families) also gets a write-through
//! cache of each key group's earliest timers, so that firing reads it once per that many.

use crate::backend::{EntryKey, StateBackend, StateEngine, StateId};
use crate::codec;
use crate::descriptor::{StateKind, StateMeta};
use crate::error::{Error, Result};
use crate::key_layout::{get_framed, put_framed, put_key_group};
use crate::keyed::{KeyedStateBackend, Shared, SharedCell, lock};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

/// The name prefix of the internal timer states (reserved: user states cannot start with `_`).
pub const TIMER_STATE_PREFIX: &str = "_keyedstate.timers.";

/// Whether `name` is one of the internal timer states.
pub fn is_timer_state(name: &str) -> bool {
    name.starts_with(TIMER_STATE_PREFIX)
}

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    EventTime,
    ProcessingTime,
}

impl TimeDomain {
    /// The internal state holding the domain's timers; the `_keyedstate.` prefix is reserved.
    pub fn state_name(self) -> &'static str {
        match self {
            TimeDomain::EventTime => "_keyedstate.timers.event",
            TimeDomain::ProcessingTime => "_keyedstate.timers.processing",
        }
    }
}

/// A timer that fired: its time, and its key (now the current key) and namespace, serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredTimer {
    pub domain: TimeDomain,
    pub timestamp: i64,
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
}

impl FiredTimer {
    pub fn key_as<K: serde::de::DeserializeOwned>(&self) -> Result<K> {
        codec::decode(&self.key)
    }

    pub fn namespace_as<N: serde::de::DeserializeOwned>(&self) -> Result<N> {
        codec::decode(&self.namespace)
    }
}

fn encode_timestamp(timestamp: i64) -> [u8; 8] {
    ((timestamp as u64) ^ (1 << 63)).to_be_bytes()
}

fn decode_timestamp(bytes: &[u8]) -> Result<i64> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::corruption("a timer's timestamp is not 8 bytes"))?;
    Ok((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// One domain's queue: the internal state and each key group's earliest timer.
pub(crate) struct Queue {
    state: StateId,
    heads: BTreeSet<(i64, u16)>,
    head_of: HashMap<u16, i64>,
    /// Per key group, an entry key no live timer sorts below: the last one fired (or a
    /// registered earlier one). The engine starts looking there, not at the key group's start,
    /// so a pop does not walk over the deletions of every timer fired before it (RocksDB keeps
    /// them as tombstones until a compaction): firing n timers costs n seeks, not n^2 steps.
    floor: HashMap<u16, Vec<u8>>,
    /// How many of each key group's earliest timers are kept in memory
    /// ([`StateBackend::timer_cache_capacity`]); 0 for none.
    cache_capacity: usize,
    caches: HashMap<u16, EarliestTimers>,
}

/// The earliest timers of one key group, in memory, as Flink's `TreeOrderedSetCache` of its
/// RocksDB timers (128 by default): pops take them from here and the engine is read once per
/// `capacity` pops, not twice per pop. Writes go to the engine too, so the cache is never the
/// only copy. Invariant: every timer of the key group that is not in `keys` sorts after its
/// last one; `complete` says the key group has no timer outside `keys`.
#[derive(Default)]
struct EarliestTimers {
    /// Entry keys without their key-group prefix (`[framed timestamp][framed (key,
    /// namespace)]`): their byte order is the timers' order.
    keys: BTreeSet<Vec<u8>>,
    complete: bool,
}

impl EarliestTimers {
    /// A timer with entry key `key` was registered (and written to the engine).
    fn insert(&mut self, key: &[u8], capacity: usize) {
        let below_last = self.keys.last().is_some_and(|last| key < last.as_slice());
        if self.complete || below_last {
            self.keys.insert(key.to_vec());
            if self.keys.len() > capacity {
                self.keys.pop_last();
                self.complete = false;
            }
        }
        // Otherwise it sorts after every cached timer and stays in the engine only.
    }
}

impl Queue {
    fn new(state: StateId, cache_capacity: usize) -> Self {
        Queue {
            state,
            heads: BTreeSet::new(),
            head_of: HashMap::new(),
            floor: HashMap::new(),
            cache_capacity,
            caches: HashMap::new(),
        }
    }

    /// Makes `head` the earliest timer of `key_group` (`None`: it has none).
    fn set_head(&mut self, key_group: u16, head: Option<i64>) {
        if let Some(old) = self.head_of.remove(&key_group) {
            self.heads.remove(&(old, key_group));
        }
        if let Some(head) = head {
            self.heads.insert((head, key_group));
            self.head_of.insert(key_group, head);
        }
    }

    /// Reads `key_group`'s earliest timer again (from its cache, refilled from the engine when
    /// empty, or from the engine).
    fn reload_head(&mut self, engine: &mut dyn StateBackend, key_group: u16) -> Result<()> {
        // The timestamp is read where the key lies: no copy of it per pop.
        let head = if self.cache_capacity == 0 {
            let mut head = None;
            self.first(engine, key_group, &mut |entry| {
                head = Some(decode_timestamp(entry.parts.key)?);
                Ok(ControlFlow::Break(()))
            })?;
            head
        } else {
            match self.cached_earliest(engine, key_group)? {
                Some(key) => Some(timestamp_of(key)?),
                None => None,
            }
        };
        self.set_head(key_group, head);
        Ok(())
    }

    /// The entry key (without its key-group prefix) of `key_group`'s earliest timer, if it has
    /// one: from the cache, or without a cache from the engine.
    fn earliest(
        &mut self,
        engine: &mut dyn StateBackend,
        key_group: u16,
    ) -> Result<Option<Vec<u8>>> {
        if self.cache_capacity == 0 {
            let mut found = None;
            self.first(engine, key_group, &mut |entry| {
                found = Some(timer_key(&entry.parts));
                Ok(ControlFlow::Break(()))
            })?;
            return Ok(found);
        }
        Ok(self.cached_earliest(engine, key_group)?.map(<[u8]>::to_vec))
    }

    /// The first key of `key_group`'s cache, refilled from the engine when it is empty and not
    /// complete (only with a cache).
    fn cached_earliest(
        &mut self,
        engine: &mut dyn StateBackend,
        key_group: u16,
    ) -> Result<Option<&[u8]>> {
        let capacity = self.cache_capacity;
        if self
            .caches
            .get(&key_group)
            .is_none_or(|c| c.keys.is_empty() && !c.complete)
        {
            let mut keys = BTreeSet::new();
            self.first(engine, key_group, &mut |entry| {
                keys.insert(timer_key(&entry.parts));
                Ok(if keys.len() < capacity {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                })
            })?;
            let complete = keys.len() < capacity;
            self.caches
                .insert(key_group, EarliestTimers { keys, complete });
        }
        Ok(self.caches[&key_group].keys.first().map(Vec::as_slice))
    }

    /// Visits `key_group`'s timers from its floor on (`f` breaks at the first it wants).
    fn first(
        &self,
        engine: &mut dyn StateBackend,
        key_group: u16,
        f: &mut crate::backend::EntryScan<'_>,
    ) -> Result<()> {
        match self.floor.get(&key_group) {
            Some(floor) => engine.scan_key_group_from(self.state, key_group, floor, f),
            None => engine.scan_key_group(self.state, key_group, f),
        }
    }

    /// A timer with entry key `key` was registered (written to the engine): nothing may hide it
    /// below the floor, and it joins the cache if it is among the earliest.
    fn registered(&mut self, key: EntryKey<'_>) {
        let key_group = key.key_group();
        if self
            .floor
            .get(&key_group)
            .is_some_and(|floor| key.bytes() < floor.as_slice())
        {
            self.floor.insert(key_group, key.bytes().to_vec());
        }
        if let Some(cache) = self.caches.get_mut(&key_group) {
            cache.insert(key.key_and_namespace(), self.cache_capacity);
        }
    }

    /// A timer with entry key `key` was deleted from the engine.
    fn deleted(&mut self, key: EntryKey<'_>) {
        if let Some(cache) = self.caches.get_mut(&key.key_group()) {
            cache.keys.remove(key.key_and_namespace());
        }
    }
}

/// A scanned timer's entry key without its key-group prefix.
fn timer_key(parts: &crate::key_layout::EntryParts<'_>) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.key.len() + parts.namespace.len() + 8);
    put_framed(&mut key, parts.key);
    put_framed(&mut key, parts.namespace);
    key
}

/// The timestamp of a timer's entry key (without its key-group prefix).
fn timestamp_of(entry_key: &[u8]) -> Result<i64> {
    let (timestamp, _, _) = split_timer_key(entry_key)?;
    decode_timestamp(timestamp)
}

/// The timestamp bytes, serialized key and serialized namespace of a timer's entry key (without
/// its key-group prefix).
fn split_timer_key(entry_key: &[u8]) -> Result<(&[u8], &[u8], &[u8])> {
    let (timestamp, rest) = get_framed(entry_key)?;
    let (inner, _) = get_framed(rest)?;
    let (key, rest) = get_framed(inner)?;
    let (namespace, _) = get_framed(rest)?;
    Ok((timestamp, key, namespace))
}

/// The timer service of one backend.
pub struct TimerService<E: StateEngine + ?Sized = dyn StateBackend> {
    backend: KeyedStateBackend<E>,
    shared: SharedCell<E>,
}

/// The queues of both domains, one set per backend: every [`TimerService`] of a backend shares
/// them, so that none keeps heads that another's registrations or firings made stale.
pub(crate) type Queues = [Queue; 2];

impl<E: StateEngine + ?Sized> KeyedStateBackend<E> {
    /// The backend's timer service. Every call returns a handle to the same queues.
    pub fn timer_service(&self) -> Result<TimerService<E>> {
        let shared = self.shared();
        let mut guard = lock(&shared)?;
        if guard.timer_queues.is_none() {
            let range = guard.engine.key_group_range();
            let mut queues = Vec::new();
            for domain in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
                let meta = StateMeta {
                    name: domain.state_name().to_owned(),
                    kind: StateKind::Value,
                    value_codec: "timer".to_owned(),
                    user_key_codec: None,
                    ttl: None,
                };
                let state = guard.engine.register_state(&meta)?;
                let mut queue = Queue::new(state, guard.engine.timer_cache_capacity());
                for key_group in range.iter() {
                    queue.reload_head(guard.engine.as_dyn(), key_group)?;
                }
                queues.push(queue);
            }
            let queues: Queues = queues
                .try_into()
                .unwrap_or_else(|_| unreachable!("two domains"));
            guard.timer_queues = Some(Box::new(queues));
        }
        drop(guard);
        Ok(TimerService {
            backend: self.clone(),
            shared,
        })
    }
}

impl<E: StateEngine + ?Sized> TimerService<E> {
    fn queue_index(domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }

    /// Builds the entry key of a timer of the current key into `out`; returns its key group.
    fn timer_key(
        shared: &Shared<E>,
        namespace: &[u8],
        timestamp: i64,
        out: &mut Vec<u8>,
    ) -> Result<(u16, usize)> {
        let (key_group, prefix_len, key) = shared.current_key_bytes()?;
        out.clear();
        put_key_group(out, key_group, prefix_len);
        put_framed(out, &encode_timestamp(timestamp));
        let mut inner = Vec::with_capacity(key.len() + namespace.len() + 4);
        put_framed(&mut inner, key);
        put_framed(&mut inner, namespace);
        put_framed(out, &inner);
        Ok((key_group, prefix_len))
    }

    /// Runs `f` on `domain`'s queue, the engine, and the entry key of the current key's timer
    /// at `timestamp` in `namespace`.
    fn with_timer<N: Serialize + ?Sized>(
        &self,
        domain: TimeDomain,
        namespace: &N,
        timestamp: i64,
        f: impl FnOnce(&mut Queue, &mut dyn StateBackend, EntryKey<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut ns = Vec::new();
        codec::encode(namespace, &mut ns)?;
        let mut guard = lock(&self.shared)?;
        let mut key = Vec::new();
        let (key_group, prefix_len) = Self::timer_key(&guard, &ns, timestamp, &mut key)?;
        let (queues, engine) = guard.timers()?;
        f(
            &mut queues[Self::queue_index(domain)],
            engine,
            EntryKey::new(&key, key_group, prefix_len),
        )
    }

    /// Registers a timer for the current key in `namespace` (registering it twice is once).
    pub fn register<N: Serialize + ?Sized>(
        &self,
        domain: TimeDomain,
        namespace: &N,
        timestamp: i64,
    ) -> Result<()> {
        self.with_timer(domain, namespace, timestamp, |queue, engine, key| {
            engine.put(queue.state, key, &[])?;
            let key_group = key.key_group();
            queue.registered(key);
            if queue
                .head_of
                .get(&key_group)
                .is_none_or(|&head| timestamp < head)
            {
                queue.set_head(key_group, Some(timestamp));
            }
            Ok(())
        })
    }

    /// Deletes a timer of the current key in `namespace`; deleting an absent one does nothing.
    pub fn delete<N: Serialize + ?Sized>(
        &self,
        domain: TimeDomain,
        namespace: &N,
        timestamp: i64,
    ) -> Result<()> {
        self.with_timer(domain, namespace, timestamp, |queue, engine, key| {
            engine.delete(queue.state, key)?;
            queue.deleted(key);
            if queue.head_of.get(&key.key_group()) == Some(&timestamp) {
                queue.reload_head(engine, key.key_group())?;
            }
            Ok(())
        })
    }

    /// Fires, in timestamp order, every timer of `domain` at or before `time` (event time: the
    /// new watermark; processing time: now), timers that `on_timer` registers included. For each,
    /// its key becomes the current key before `on_timer` runs.
    pub fn advance(
        &self,
        domain: TimeDomain,
        time: i64,
        mut on_timer: impl FnMut(&FiredTimer) -> Result<()>,
    ) -> Result<usize> {
        let mut fired = 0;
        while let Some(timer) = self.pop(domain, time)? {
            self.backend.set_current_key_bytes(&timer.key)?;
            on_timer(&timer)?;
            fired += 1;
        }
        Ok(fired)
    }

    /// The timestamp of the earliest timer of `domain`, if there is one: where an engine that
    /// advances time in steps (timely's epochs) must stop next to fire it at its own time.
    pub fn next_timestamp(&self, domain: TimeDomain) -> Result<Option<i64>> {
        let mut guard = lock(&self.shared)?;
        let (queues, _) = guard.timers()?;
        Ok(queues[Self::queue_index(domain)]
            .heads
            .first()
            .map(|&(timestamp, _)| timestamp))
    }

    /// Removes and returns the earliest timer at or before `time`, if any.
    fn pop(&self, domain: TimeDomain, time: i64) -> Result<Option<FiredTimer>> {
        let mut guard = lock(&self.shared)?;
        let (queues, engine) = guard.timers()?;
        let queue = &mut queues[Self::queue_index(domain)];
        let Some(&(timestamp, key_group)) = queue.heads.first() else {
            return Ok(None);
        };
        if timestamp > time {
            return Ok(None);
        }
        let timer = queue.earliest(engine, key_group)?.ok_or_else(|| {
            Error::corruption(format!(
                "timer queue of key group {key_group} is out of step"
            ))
        })?;
        let (ts_bytes, key, namespace) = split_timer_key(&timer)?;
        let fired = FiredTimer {
            domain,
            timestamp: decode_timestamp(ts_bytes)?,
            key: key.to_vec(),
            namespace: namespace.to_vec(),
        };
        let prefix_len = engine.max_parallelism().prefix_len();
        let mut entry_key = Vec::with_capacity(prefix_len + timer.len());
        put_key_group(&mut entry_key, key_group, prefix_len);
        entry_key.extend_from_slice(&timer);
        let entry = EntryKey::new(&entry_key, key_group, prefix_len);
        engine.delete(queue.state, entry)?;
        queue.deleted(entry);
        queue.floor.insert(key_group, entry_key);
        queue.reload_head(engine, key_group)?;
        Ok(Some(fired))
    }

    /// The number of timers of `domain` (for tools and tests; scans the state).
    pub fn count(&self, domain: TimeDomain) -> Result<usize> {
        let mut n = 0;
        self.backend.scan_raw(domain.state_name(), &mut |_| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(n)
    }
}
