//! The engine-level trait both backends implement. Engines see bytes only: the typed layer
//! ([`crate::KeyedStateBackend`] and the state handles) serializes the current key once per
//! record and encodes values, identically for every engine.

use crate::checkpoint::{CheckpointAttempt, CheckpointStorage, SnapshotKind, SubtaskHandle};
use crate::descriptor::StateKind;
use crate::descriptor::StateMeta;
use crate::error::{Error, Result};
use crate::key_group::{KeyGroupRange, MaxParallelism};
use crate::key_layout::{EntryParts, get_framed, put_entry_key};
use crate::metrics::EngineMetrics;
use crate::ttl::Clock;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

/// A registered state's index in its backend, stable for the backend's life.
pub type StateId = usize;

/// The key of one state entry: `[key group][framed key][framed namespace]` (see
/// [`crate::key_layout`]). RocksDB uses the bytes as they are; the heap uses the part after the
/// key-group prefix.
#[derive(Debug, Clone, Copy)]
pub struct EntryKey<'a> {
    bytes: &'a [u8],
    key_group: u16,
    prefix_len: usize,
}

impl<'a> EntryKey<'a> {
    #[inline]
    pub fn new(bytes: &'a [u8], key_group: u16, prefix_len: usize) -> Self {
        debug_assert!(bytes.len() >= prefix_len);
        EntryKey {
            bytes,
            key_group,
            prefix_len,
        }
    }

    /// The whole key, key-group prefix included.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    #[inline]
    pub fn key_group(&self) -> u16 {
        self.key_group
    }

    /// The framed key and namespace, without the key-group prefix.
    #[inline]
    pub fn key_and_namespace(&self) -> &'a [u8] {
        &self.bytes[self.prefix_len..]
    }
}

/// One logical entry as an engine scan yields it.
#[derive(Debug, Clone, Copy)]
pub struct RawEntry<'a> {
    pub parts: EntryParts<'a>,
    pub value: &'a [u8],
}

/// Splits framed key and namespace (the heap's table key) into an entry's parts.
pub fn split_key_and_namespace<'a>(
    key_group: u16,
    key_and_namespace: &'a [u8],
    user_key: &'a [u8],
) -> Result<EntryParts<'a>> {
    let (key, rest) = get_framed(key_and_namespace)?;
    let (namespace, trailing) = get_framed(rest)?;
    if !trailing.is_empty() {
        return Err(Error::corruption(
            "bytes after the namespace of an entry key",
        ));
    }
    Ok(EntryParts {
        key_group,
        key,
        namespace,
        user_key,
    })
}

/// Stores `entry` (as a scan or a full snapshot yields it) into `engine`'s state `state` of
/// `kind`: a map entry by its user key, anything else as the whole value. `key` is a reusable
/// buffer for the entry key.
pub fn put_raw_entry(
    engine: &mut dyn StateBackend,
    state: StateId,
    kind: StateKind,
    entry: &RawEntry<'_>,
    key: &mut Vec<u8>,
) -> Result<()> {
    let prefix_len = engine.max_parallelism().prefix_len();
    key.clear();
    put_entry_key(key, &entry.parts, prefix_len, false);
    let entry_key = EntryKey::new(key, entry.parts.key_group, prefix_len);
    if kind == StateKind::Map {
        engine.map_put(state, entry_key, entry.parts.user_key, entry.value)
    } else {
        engine.put(state, entry_key, entry.value)
    }
}

/// A callback visiting state entries; `ControlFlow::Break` stops the scan.
pub type EntryScan<'f> = dyn for<'e> FnMut(RawEntry<'e>) -> Result<ControlFlow<()>> + 'f;

/// A callback given the value found (or not) at position `i` of a batch of entry keys.
pub type BatchRead<'f> = dyn FnMut(usize, Option<&[u8]>) -> Result<()> + 'f;

/// A callback visiting one map as (user key, value); `ControlFlow::Break` stops the scan.
pub type MapScan<'f> = dyn for<'e> FnMut(&'e [u8], &'e [u8]) -> Result<ControlFlow<()>> + 'f;

/// Entries readable one key group and state at a time: a live engine, or a snapshot of one.
/// Full snapshots are written from this, in key-group order.
pub trait KeyGroupSource {
    /// Visits the entries of `state` in `key_group`, ordered by their key bytes.
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()>;
}

/// The asynchronous part of a snapshot: it holds what the synchronous part captured and writes
/// it to checkpoint storage while the task goes on processing.
pub trait AsyncSnapshot: Send {
    /// Writes the snapshot of subtask `subtask`: its own files where `attempt` says, files
    /// several checkpoints may share (RocksDB's SSTs) in `shared/`.
    fn run(
        self: Box<Self>,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SubtaskHandle>;
}

/// A storage engine for keyed state, owned by one subtask and driven by one thread.
///
/// Every method takes the state's id from [`StateBackend::register_state`]. The list value is a
/// sequence of length-prefixed elements; `append` adds such frames at the end.
pub trait StateBackend: KeyGroupSource + Send {
    /// A short name of the engine, for messages and tools: `heap` or `rocksdb`.
    fn engine_name(&self) -> &'static str;

    fn max_parallelism(&self) -> MaxParallelism;

    /// The key groups this instance holds.
    fn key_group_range(&self) -> KeyGroupRange;

    /// The clock state TTL reads (injected, so tests control time).
    fn clock(&self) -> Arc<dyn Clock>;

    /// Registers a state, or returns the id of the compatible state of that name.
    fn register_state(&mut self, meta: &StateMeta) -> Result<StateId>;

    /// Every registered state, indexed by id.
    fn states(&self) -> &[StateMeta];

    /// The codec id of the keys this instance holds: set by the typed layer on the first key,
    /// or by a restore from the checkpoint's; recorded in every snapshot's handle.
    fn key_codec(&self) -> Option<&str>;

    fn set_key_codec(&mut self, codec: &str);

    /// The stored value, list or accumulator at `key`, borrowed until the engine's next call:
    /// the heap lends its slot's bytes, RocksDB a buffer of its own, so the typed layer decodes
    /// without a copy of its own.
    fn get_ref(&mut self, state: StateId, key: EntryKey<'_>) -> Result<Option<&[u8]>>;

    /// Reads a value, list or accumulator into `out` (cleared first); false when absent.
    fn get(&mut self, state: StateId, key: EntryKey<'_>, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.get_ref(state, key)? {
            Some(value) => {
                out.extend_from_slice(value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put(&mut self, state: StateId, key: EntryKey<'_>, value: &[u8]) -> Result<()>;

    /// Reads the entries at `keys` (of a value, list, reducing or aggregating state), calling
    /// `f(i, value)` once for each `keys[i]`, in any order. The default reads them one by one;
    /// RocksDB reads them with one `MultiGet`.
    fn multi_get(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        f: &mut BatchRead<'_>,
    ) -> Result<()> {
        let mut out = Vec::new();
        for (i, &key) in keys.iter().enumerate() {
            let found = self.get(state, key, &mut out)?;
            f(i, found.then_some(out.as_slice()))?;
        }
        Ok(())
    }

    /// Writes `values[i]` at `keys[i]`, in order: of two writes of one key the later stays. The
    /// default writes them one by one; RocksDB writes them in one `WriteBatch`.
    fn put_batch(&mut self, state: StateId, keys: &[EntryKey<'_>], values: &[&[u8]]) -> Result<()> {
        for (&key, value) in keys.iter().zip(values) {
            self.put(state, key, value)?;
        }
        Ok(())
    }

    /// Appends framed list elements to the list at `key`.
    fn append(&mut self, state: StateId, key: EntryKey<'_>, frames: &[u8]) -> Result<()>;

    /// Appends `frames[i]` to the list at `keys[i]`, in order. The default appends them one by
    /// one; RocksDB writes one `WriteBatch` of merges.
    fn append_batch(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        frames: &[&[u8]],
    ) -> Result<()> {
        for (&key, frames) in keys.iter().zip(frames) {
            self.append(state, key, frames)?;
        }
        Ok(())
    }

    /// Removes the entry at `key` (for map state: the whole map).
    fn delete(&mut self, state: StateId, key: EntryKey<'_>) -> Result<()>;

    /// The value at `user_key` of the map at `key`, borrowed until the engine's next call (as
    /// [`Self::get_ref`]).
    fn map_get_ref(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
    ) -> Result<Option<&[u8]>>;

    /// Reads the value at `user_key` of the map at `key` into `out` (cleared first); false
    /// when absent.
    fn map_get(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        out.clear();
        match self.map_get_ref(state, key, user_key)? {
            Some(value) => {
                out.extend_from_slice(value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn map_put(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()>;

    fn map_remove(&mut self, state: StateId, key: EntryKey<'_>, user_key: &[u8]) -> Result<()>;

    /// Puts `values[i]` at user key `user_keys[i]` of the map at `keys[i]`, in order. The
    /// default puts them one by one; RocksDB writes one `WriteBatch`.
    fn map_put_batch(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        user_keys: &[&[u8]],
        values: &[&[u8]],
    ) -> Result<()> {
        for ((&key, user_key), value) in keys.iter().zip(user_keys).zip(values) {
            self.map_put(state, key, user_key, value)?;
        }
        Ok(())
    }

    /// Visits the map at `key`, entry by entry as (user key, value) in the order of the user
    /// keys' bytes, starting after user key `after` (from the first entry when `None`).
    fn map_scan(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        after: Option<&[u8]>,
        f: &mut MapScan<'_>,
    ) -> Result<()>;

    /// Visits every entry of a state in key-group order (map state: one entry per user key).
    fn scan_state(&mut self, state: StateId, f: &mut EntryScan<'_>) -> Result<()>;

    /// Like [`KeyGroupSource::scan_key_group`], for a caller that knows no live entry of the key
    /// group sorts below entry key `floor` (the timer queues: timers below the last one fired are
    /// gone). An engine whose deleted entries linger (RocksDB's tombstones) seeks to `floor`
    /// instead of walking past them; others may scan from the start.
    fn scan_key_group_from(
        &mut self,
        state: StateId,
        key_group: u16,
        floor: &[u8],
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        let _ = floor;
        self.scan_key_group(state, key_group, f)
    }

    /// How many of each key group's earliest timers the timer service keeps in memory, so that
    /// firing reads the engine once per that many timers (Flink's RocksDB timer cache, 128 by
    /// default). 0, the default, for an engine whose timers are in memory already.
    fn timer_cache_capacity(&self) -> usize {
        0
    }

    /// The synchronous part of a snapshot for checkpoint `checkpoint_id`: captures a consistent
    /// view and returns the part that writes it.
    fn snapshot(
        &mut self,
        checkpoint_id: u64,
        kind: SnapshotKind,
    ) -> Result<Box<dyn AsyncSnapshot>>;

    /// Checkpoint `checkpoint_id` was completed: files it holds may be reused by later ones.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }

    /// Checkpoint `checkpoint_id` was aborted: nothing it wrote may be reused.
    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }

    /// Size figures of the engine and its states.
    fn metrics(&mut self) -> Result<EngineMetrics>;

    /// Compacts the engine's storage fully (RocksDB: a manual compaction, which also runs the TTL
    /// compaction filter); nothing for engines without one.
    fn compact(&mut self) -> Result<()> {
        Ok(())
    }

    /// Releases the engine's resources; any later call may fail.
    fn close(&mut self) -> Result<()>;
}

/// An engine [`crate::KeyedStateBackend`] can drive: any engine type (statically dispatched,
/// [`crate::KeyedStateBackend::new_typed`]: the compiler sees, and may inline, the engine's
/// code on the per-record path) or `dyn StateBackend` (chosen at run time,
/// [`crate::KeyedStateBackend::new`]). Implemented for both; nothing else needs to.
pub trait StateEngine: StateBackend + AsDynBackend {}

impl<T: StateBackend + AsDynBackend + ?Sized> StateEngine for T {}

/// The engine as a trait object, for the calls that are not per record (timers, snapshots):
/// code generic over the engine hands it to them without compiling them once per engine.
pub trait AsDynBackend {
    fn as_dyn(&mut self) -> &mut dyn StateBackend;
}

impl<T: StateBackend> AsDynBackend for T {
    fn as_dyn(&mut self) -> &mut dyn StateBackend {
        self
    }
}

impl AsDynBackend for dyn StateBackend {
    fn as_dyn(&mut self) -> &mut dyn StateBackend {
        self
    }
}

/// The registered states of one backend instance, with the compatibility rules every engine
/// applies.
#[derive(Debug, Default)]
pub struct StateRegistry {
    metas: Vec<StateMeta>,
    by_name: HashMap<String, StateId>,
    key_codec: Option<String>,
}

/// The outcome of [`StateRegistry::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A new state: the engine must create its storage.
    Created(StateId),
    /// A compatible state of that name exists already.
    Existing(StateId),
}

impl StateRegistry {
    pub fn register(&mut self, meta: &StateMeta) -> Result<Registration> {
        crate::descriptor::check_state_name(&meta.name)?;
        if let Some(&id) = self.by_name.get(&meta.name) {
            self.metas[id].check_compatible(meta)?;
            // A new TTL duration (or cleanup setting) replaces the old one from now on.
            self.metas[id].ttl = meta.ttl;
            return Ok(Registration::Existing(id));
        }
        let id = self.metas.len();
        self.metas.push(meta.clone());
        self.by_name.insert(meta.name.clone(), id);
        Ok(Registration::Created(id))
    }

    /// Undoes the registration of the last state, when the engine failed to create it.
    pub fn unregister_last(&mut self) {
        if let Some(meta) = self.metas.pop() {
            self.by_name.remove(&meta.name);
        }
    }

    pub fn metas(&self) -> &[StateMeta] {
        &self.metas
    }

    pub fn key_codec(&self) -> Option<&str> {
        self.key_codec.as_deref()
    }

    pub fn set_key_codec(&mut self, codec: &str) {
        self.key_codec = Some(codec.to_owned());
    }

    pub fn id_of(&self, name: &str) -> Option<StateId> {
        self.by_name.get(name).copied()
    }
}
