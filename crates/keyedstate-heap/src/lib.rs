//! keyedstate-heap: keyed state held in memory, per key group, behind the same
//! [`StateBackend`] trait as the RocksDB backend.
//!
//! Each state is a table per key group from `(key, namespace)` bytes to the entry: the value
//! bytes, or for map state an ordered map of user key bytes to value bytes (ordered like
//! RocksDB's keys, so both engines list a map the same way).

mod probe;
mod slot;
mod table;
mod ttl_cleanup;
mod user_map;

pub use keyedstate_core::SortedTable;

use keyedstate_core::backend::{
    BatchRead, EntryScan, MapScan, Registration, StateRegistry, split_key_and_namespace,
};
use keyedstate_core::checkpoint::CheckpointAttempt;
use keyedstate_core::checkpoint::canonical::write_canonical;
use keyedstate_core::checkpoint::restore::restore_full_snapshots;
use keyedstate_core::checkpoint::{
    CheckpointMetadata, CheckpointStorage, SnapshotHandle, SubtaskHandle,
};
use keyedstate_core::metrics::EngineMetrics;
use keyedstate_core::timers::is_timer_state;
use keyedstate_core::ttl::system_clock;
use keyedstate_core::{
    AsyncSnapshot, Clock, EntryKey, Error, KeyGroupRange, KeyGroupSource, KeyedStateBackend,
    MaxParallelism, RawEntry, Result, SnapshotKind, StateBackend, StateId, StateKind, StateMeta,
};
use slot::Slot;
use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;
use table::{Bytes, KeyGroupTable, Keyed};
use user_map::UserMap;

/// A map state's entry: its key (framed key and namespace) and its map, ordered like RocksDB's
/// keys.
#[derive(Clone)]
pub(crate) struct MapSlot {
    key: Bytes,
    pub(crate) map: UserMap,
}

impl Keyed for Slot {
    #[inline]
    fn key(&self) -> &[u8] {
        Slot::key(self)
    }

    fn sort_copy(&self) -> Cow<'_, Self> {
        match self {
            // 24 bytes, no allocation.
            Slot::Inline { .. } => Cow::Owned(self.clone()),
            Slot::Spilled { .. } => Cow::Borrowed(self),
        }
    }

    #[inline(always)]
    fn has_key(&self, key: &[u8]) -> bool {
        Slot::has_key(self, key)
    }
}

impl Keyed for MapSlot {
    #[inline]
    fn key(&self) -> &[u8] {
        &self.key
    }
}

#[derive(Clone)]
pub(crate) enum Table {
    /// Value, list, reducing and aggregating state: the encoded value per entry.
    Plain(KeyGroupTable<Slot>),
    Map(KeyGroupTable<MapSlot>),
    /// Timer states: sorted per key group, so the earliest timer is the first entry.
    Sorted(SortedTable),
}

/// The heap backend of one subtask.
pub struct HeapBackend {
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    registry: StateRegistry,
    tables: Vec<Table>,
    /// Per state, where its incremental TTL cleanup stands.
    cursors: Vec<ttl_cleanup::Cursor>,
    /// Per state, whether its accesses run a step of incremental TTL cleanup (read once per
    /// access, so the states without one pay a load and a branch).
    cleans_up: Vec<bool>,
    clock: Arc<dyn Clock>,
}

impl HeapBackend {
    /// An empty heap backend holding `range` of `max_parallelism`'s key groups.
    pub fn new(max_parallelism: MaxParallelism, range: KeyGroupRange) -> Result<Self> {
        if u32::from(range.end()) >= max_parallelism.get() {
            return Err(Error::invalid_argument(format!(
                "key-group range {range} is outside max parallelism {max_parallelism}"
            )));
        }
        Ok(HeapBackend {
            max_parallelism,
            range,
            registry: StateRegistry::default(),
            tables: Vec::new(),
            cursors: Vec::new(),
            cleans_up: Vec::new(),
            clock: system_clock(),
        })
    }

    /// Uses `clock` for state TTL instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Writes each of `keys` with its bytes, in order, by `write` on its slot (created empty
    /// when absent), as that many single writes would: every key is hashed and the slot its
    /// probe starts at read first (see `KeyGroupTable::touch_all`), so the cache misses of the
    /// batch overlap, and each write then probes with the hash it already has.
    fn write_each(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        bytes: &[&[u8]],
        write: impl Fn(&mut Slot, &[u8]),
    ) -> Result<()> {
        let hashes = self.plain(state)?.touch_all(keys);
        for ((&key, bytes), hash) in keys.iter().zip(bytes).zip(hashes) {
            // Per write, as the single calls do: a TTL cleanup step may change the table.
            self.clean_up(state)?;
            let slot = self
                .plain(state)?
                .get_or_insert_hashed(key, hash, |key| Slot::new(key, &[]));
            write(slot, bytes);
        }
        Ok(())
    }

    /// Runs a step of `state`'s incremental TTL cleanup, if it has one.
    #[inline]
    fn clean_up(&mut self, state: StateId) -> Result<()> {
        match self.cleans_up.get(state) {
            Some(true) => self.clean_up_step(state),
            _ => Ok(()),
        }
    }

    fn clean_up_step(&mut self, state: StateId) -> Result<()> {
        let Some(meta) = self.registry.metas().get(state) else {
            return Ok(());
        };
        let Some(ttl) = meta.ttl.filter(|t| t.incremental_cleanup > 0) else {
            return Ok(());
        };
        let is_list = meta.kind == StateKind::List;
        let now = self.clock.now_millis();
        ttl_cleanup::step(
            &mut self.tables[state],
            &mut self.cursors[state],
            ttl.incremental_cleanup as usize,
            ttl.millis,
            now,
            is_list,
        )
    }

    /// A heap backend holding `range`, restored from the full snapshots of `metadata` (at any
    /// parallelism: only the key groups of `range` are read).
    pub fn restore(
        max_parallelism: MaxParallelism,
        range: KeyGroupRange,
        metadata: &CheckpointMetadata,
        storage: &dyn CheckpointStorage,
    ) -> Result<KeyedStateBackend> {
        let mut backend = Self::new(max_parallelism, range)?;
        restore_full_snapshots(&mut backend, metadata, storage)?;
        Ok(KeyedStateBackend::new(Box::new(backend)))
    }

    /// The heap backend wrapped in the typed API.
    pub fn open(
        max_parallelism: MaxParallelism,
        range: KeyGroupRange,
    ) -> Result<KeyedStateBackend> {
        Ok(KeyedStateBackend::new(Box::new(Self::new(
            max_parallelism,
            range,
        )?)))
    }

    /// The heap backend wrapped in the typed API, statically dispatched: the state handles
    /// call this engine directly, so its per-record code is inlined into theirs (see
    /// [`KeyedStateBackend::new_typed`]).
    pub fn open_typed(
        max_parallelism: MaxParallelism,
        range: KeyGroupRange,
    ) -> Result<KeyedStateBackend<HeapBackend>> {
        Ok(KeyedStateBackend::new_typed(Self::new(
            max_parallelism,
            range,
        )?))
    }

    fn plain(&mut self, state: StateId) -> Result<&mut KeyGroupTable<Slot>> {
        match self.tables.get_mut(state) {
            Some(Table::Plain(table)) => Ok(table),
            _ => Err(wrong_table(state, "a value, list, reducing or aggregating")),
        }
    }

    #[inline]
    fn map(&mut self, state: StateId) -> Result<&mut KeyGroupTable<MapSlot>> {
        match self.tables.get_mut(state) {
            Some(Table::Map(table)) => Ok(table),
            _ => Err(wrong_table(state, "a map")),
        }
    }
}

impl Table {
    /// Visits entries as raw entries (map state: one per user key): every key group in order,
    /// or only `sorted_group`, sorted by key bytes.
    fn visit(&self, sorted_group: Option<u16>, f: &mut EntryScan<'_>) -> Result<()> {
        fn visit_table<E: Keyed>(
            table: &KeyGroupTable<E>,
            sorted_group: Option<u16>,
            f: &mut table::TableScan<'_, E>,
        ) -> Result<()> {
            match sorted_group {
                Some(group) => table.scan_group(group, true, f).map(drop),
                None => table.scan(f),
            }
        }
        match self {
            Table::Plain(table) => visit_table(table, sorted_group, &mut |group, slot| {
                let parts = split_key_and_namespace(group, slot.key(), &[])?;
                f(RawEntry {
                    parts,
                    value: slot.value(),
                })
            }),
            Table::Sorted(table) => match sorted_group {
                Some(group) => table.scan_group(group, f).map(drop),
                None => table.scan(f),
            },
            Table::Map(table) => visit_table(table, sorted_group, &mut |group, entry| {
                for (user_key, value) in entry.map.iter() {
                    let parts = split_key_and_namespace(group, &entry.key, user_key)?;
                    if f(RawEntry { parts, value })?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            }),
        }
    }
}

impl KeyGroupSource for HeapBackend {
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        let table = self
            .tables
            .get(state)
            .ok_or_else(|| wrong_table(state, "registered"))?;
        table.visit(Some(key_group), f)
    }
}

/// What the synchronous part of a heap snapshot captured: the key groups' `Arc`s.
struct HeapSnapshot {
    /// The time expired entries are judged at, taken in the synchronous part.
    now: u64,
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    states: Vec<StateMeta>,
    key_codec: Option<String>,
    tables: Vec<Table>,
}

impl KeyGroupSource for HeapSnapshot {
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        self.tables[state].visit(Some(key_group), f)
    }
}

impl AsyncSnapshot for HeapSnapshot {
    fn run(
        mut self: Box<Self>,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SubtaskHandle> {
        let (max_parallelism, range, states) =
            (self.max_parallelism, self.range, self.states.clone());
        let now = self.now;
        // Streamed into storage: the snapshot never sits in memory whole.
        let mut out = storage.create(&attempt.full_snapshot_path(subtask))?;
        write_canonical(&mut *self, max_parallelism, range, &states, now, &mut out)?;
        let file = out.finish()?;
        Ok(SubtaskHandle {
            subtask,
            key_group_range: range,
            snapshot: SnapshotHandle::Full { file },
            operator_state: None,
            heap_timers: None,
            states,
            key_codec: self.key_codec.clone(),
        })
    }
}

/// What `get` and `put` take: the states holding one value per entry.
const VALUE_TABLE: &str = "a value, list, reducing, aggregating or timer";

fn wrong_table(state: StateId, expected: &str) -> Error {
    Error::invalid_argument(format!(
        "state #{state} is not {expected} state of this backend"
    ))
}

impl StateBackend for HeapBackend {
    fn engine_name(&self) -> &'static str {
        "heap"
    }

    fn max_parallelism(&self) -> MaxParallelism {
        self.max_parallelism
    }

    fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    fn metrics(&mut self) -> Result<EngineMetrics> {
        let estimated_entries = self
            .tables
            .iter()
            .map(|table| match table {
                Table::Plain(t) => t.count(|_| 1),
                Table::Map(t) => t.count(|entry| entry.map.len()),
                Table::Sorted(t) => t.len(),
            })
            .collect();
        Ok(EngineMetrics {
            estimated_entries,
            ..EngineMetrics::default()
        })
    }

    fn register_state(&mut self, meta: &StateMeta) -> Result<StateId> {
        // A re-registration may change the TTL, and with it the cleanup.
        let cleans_up = meta.ttl.is_some_and(|t| t.incremental_cleanup > 0);
        match self.registry.register(meta)? {
            Registration::Existing(id) => {
                self.cleans_up[id] = cleans_up;
                Ok(id)
            }
            Registration::Created(id) => {
                self.cursors.push(ttl_cleanup::Cursor::default());
                self.cleans_up.push(cleans_up);
                self.tables.push(match meta.kind {
                    _ if is_timer_state(&meta.name) => Table::Sorted(SortedTable::new(self.range)),
                    StateKind::Map => Table::Map(KeyGroupTable::new(self.range)),
                    _ => Table::Plain(KeyGroupTable::new(self.range)),
                });
                Ok(id)
            }
        }
    }

    fn states(&self) -> &[StateMeta] {
        self.registry.metas()
    }

    fn key_codec(&self) -> Option<&str> {
        self.registry.key_codec()
    }

    fn set_key_codec(&mut self, codec: &str) {
        self.registry.set_key_codec(codec);
    }

    // Inlined into the state handles when they know this engine's type (static dispatch).
    #[inline]
    fn get_ref(&mut self, state: StateId, key: EntryKey<'_>) -> Result<Option<&[u8]>> {
        self.clean_up(state)?;
        match self.tables.get(state) {
            Some(Table::Plain(table)) => Ok(table.get(key).map(Slot::value)),
            Some(Table::Sorted(table)) => Ok(table.get(key)),
            _ => Err(wrong_table(state, VALUE_TABLE)),
        }
    }

    #[inline]
    fn multi_get(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        f: &mut BatchRead<'_>,
    ) -> Result<()> {
        self.clean_up(state)?;
        match self.tables.get(state) {
            Some(Table::Plain(table)) => {
                table.get_many(keys, &mut |i, slot| f(i, slot.map(Slot::value)))
            }
            Some(Table::Sorted(table)) => keys
                .iter()
                .enumerate()
                .try_for_each(|(i, &key)| f(i, table.get(key))),
            _ => Err(wrong_table(state, VALUE_TABLE)),
        }
    }

    // Inlined into the state handles when they know this engine's type (static dispatch).
    #[inline]
    fn put(&mut self, state: StateId, key: EntryKey<'_>, value: &[u8]) -> Result<()> {
        self.clean_up(state)?;
        match self.tables.get_mut(state) {
            // One hash and one probe, whether the entry is new or not.
            Some(Table::Plain(table)) => table
                .get_or_insert_with(key, |key| Slot::new(key, &[]))
                .set_value(value),
            Some(Table::Sorted(table)) => table.put(key, value),
            _ => return Err(wrong_table(state, VALUE_TABLE)),
        }
        Ok(())
    }

    fn put_batch(&mut self, state: StateId, keys: &[EntryKey<'_>], values: &[&[u8]]) -> Result<()> {
        if let Some(Table::Sorted(_)) = self.tables.get(state) {
            return keys
                .iter()
                .zip(values)
                .try_for_each(|(&key, value)| self.put(state, key, value));
        }
        self.write_each(state, keys, values, Slot::set_value)
    }

    fn append_batch(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        frames: &[&[u8]],
    ) -> Result<()> {
        self.write_each(state, keys, frames, Slot::append_value)
    }

    fn append(&mut self, state: StateId, key: EntryKey<'_>, frames: &[u8]) -> Result<()> {
        self.clean_up(state)?;
        self.plain(state)?
            .get_or_insert_with(key, |key| Slot::new(key, &[]))
            .append_value(frames);
        Ok(())
    }

    fn delete(&mut self, state: StateId, key: EntryKey<'_>) -> Result<()> {
        match self.tables.get_mut(state) {
            Some(Table::Plain(table)) => table.remove(key),
            Some(Table::Map(table)) => table.remove(key),
            Some(Table::Sorted(table)) => table.remove(key),
            None => return Err(wrong_table(state, "registered")),
        }
        Ok(())
    }

    #[inline]
    fn map_get_ref(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
    ) -> Result<Option<&[u8]>> {
        self.clean_up(state)?;
        Ok(self
            .map(state)?
            .get(key)
            .and_then(|entry| entry.map.get(user_key)))
    }

    fn map_put(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.clean_up(state)?;
        let map = &mut self
            .map(state)?
            .get_or_insert_with(key, |key| MapSlot {
                key: Bytes::from_slice(key),
                map: UserMap::default(),
            })
            .map;
        map.put(user_key, value);
        Ok(())
    }

    fn map_remove(&mut self, state: StateId, key: EntryKey<'_>, user_key: &[u8]) -> Result<()> {
        let table = self.map(state)?;
        if let Some(entry) = table.get_mut(key) {
            entry.map.remove(user_key);
            // An empty map is no map: it must not show up in key iteration or snapshots.
            if entry.map.is_empty() {
                table.remove(key);
            }
        }
        Ok(())
    }

    fn map_scan(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        after: Option<&[u8]>,
        f: &mut MapScan<'_>,
    ) -> Result<()> {
        if let Some(entry) = self.map(state)?.get(key) {
            for (user_key, value) in entry.map.after(after) {
                if f(user_key, value)?.is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn scan_state(&mut self, state: StateId, f: &mut EntryScan<'_>) -> Result<()> {
        let table = self
            .tables
            .get(state)
            .ok_or_else(|| wrong_table(state, "registered"))?;
        table.visit(None, f)
    }

    fn snapshot(
        &mut self,
        _checkpoint_id: u64,
        _kind: SnapshotKind,
    ) -> Result<Box<dyn AsyncSnapshot>> {
        // The heap has no incremental snapshot: both kinds write the canonical full snapshot.
        Ok(Box::new(HeapSnapshot {
            now: self.clock.now_millis(),
            max_parallelism: self.max_parallelism,
            range: self.range,
            states: self.registry.metas().to_vec(),
            key_codec: self.registry.key_codec().map(str::to_owned),
            tables: self.tables.clone(),
        }))
    }

    fn close(&mut self) -> Result<()> {
        self.tables.clear();
        Ok(())
    }
}
