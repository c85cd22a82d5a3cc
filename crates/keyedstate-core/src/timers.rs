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
//! order; it is rebuilt from the state when the service is created (after a restore, too).

use crate::backend::{EntryKey, StateBackend, StateId};
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
}

impl Queue {
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

    /// Reads `key_group`'s earliest timer from the engine again.
    fn reload_head(&mut self, engine: &mut dyn StateBackend, key_group: u16) -> Result<()> {
        let mut head = None;
        self.first(engine, key_group, &mut |entry| {
            head = Some(decode_timestamp(entry.parts.key)?);
            Ok(ControlFlow::Break(()))
        })?;
        self.set_head(key_group, head);
        Ok(())
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

    /// A timer with entry key `key` was registered: nothing may hide it below the floor.
    fn lower_floor(&mut self, key_group: u16, key: &[u8]) {
        if self
            .floor
            .get(&key_group)
            .is_some_and(|floor| key < floor.as_slice())
        {
            self.floor.insert(key_group, key.to_vec());
        }
    }
}

/// The timer service of one backend.
pub struct TimerService {
    backend: KeyedStateBackend,
    shared: SharedCell,
}

/// The queues of both domains, one set per backend: every [`TimerService`] of a backend shares
/// them, so that none keeps heads that another's registrations or firings made stale.
pub(crate) type Queues = [Queue; 2];

impl KeyedStateBackend {
    /// The backend's timer service. Every call returns a handle to the same queues.
    pub fn timer_service(&self) -> Result<TimerService> {
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
                let mut queue = Queue {
                    state,
                    heads: BTreeSet::new(),
                    head_of: HashMap::new(),
                    floor: HashMap::new(),
                };
                for key_group in range.iter() {
                    queue.reload_head(&mut *guard.engine, key_group)?;
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

impl TimerService {
    fn queue_index(domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }

    /// Builds the entry key of a timer of the current key into `out`; returns its key group.
    fn timer_key(
        shared: &Shared,
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
            queue.lower_floor(key_group, key.bytes());
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
        let mut found = None;
        queue.first(engine, key_group, &mut |entry| {
            found = Some((entry.parts.key.to_vec(), entry.parts.namespace.to_vec()));
            Ok(ControlFlow::Break(()))
        })?;
        let (ts_bytes, inner) = found.ok_or_else(|| {
            Error::corruption(format!(
                "timer queue of key group {key_group} is out of step"
            ))
        })?;
        let (key, rest) = get_framed(&inner)?;
        let (namespace, _) = get_framed(rest)?;
        let prefix_len = engine.max_parallelism().prefix_len();
        let mut entry_key = Vec::new();
        put_key_group(&mut entry_key, key_group, prefix_len);
        put_framed(&mut entry_key, &ts_bytes);
        put_framed(&mut entry_key, &inner);
        engine.delete(
            queue.state,
            EntryKey::new(&entry_key, key_group, prefix_len),
        )?;
        queue.floor.insert(key_group, entry_key);
        queue.reload_head(engine, key_group)?;
        Ok(Some(FiredTimer {
            domain,
            timestamp: decode_timestamp(&ts_bytes)?,
            key: key.to_vec(),
            namespace: namespace.to_vec(),
        }))
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
