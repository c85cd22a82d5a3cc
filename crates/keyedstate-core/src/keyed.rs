//! [`KeyedStateBackend`]: the typed face of an engine. It holds the current key (serialized and
//! assigned to its key group once per record) and hands out state handles.

use crate::backend::{AsyncSnapshot, EntryKey, EntryScan, StateBackend, StateEngine, StateId};
use crate::checkpoint::{
    CheckpointAttempt, CheckpointStorage, SnapshotKind, StateDigest, SubtaskHandle,
};
use crate::codec;
use crate::descriptor::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateKind, StateMeta, ValueStateDescriptor,
};
use crate::error::{Error, Result};
use crate::key_group::{KeyGroupRange, MaxParallelism};
use crate::key_layout::{put_framed, put_key_group};
use crate::metrics::{BackendMetrics, LatencySampler, StateMetrics};
use crate::phase::traced;
use crate::state::{AggregatingState, ListState, MapState, ReducingState, StateHandle, ValueState};
use crate::ttl::StateTtlConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::TypeId;
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;

/// A type keys can be: serializable, and decodable as [`StateKey::Owned`], whose shape names the
/// key codec. Every `Serialize + DeserializeOwned` type is one; `str` is one, decoding as
/// `String` (`set_current_key("alice")`).
pub trait StateKey: Serialize {
    type Owned: Serialize + DeserializeOwned + 'static;

    /// The key's `ks1` encoding when it is a `u64`, an `i64` or an `f64`: eight bytes, written into the
    /// entry key without a serializer (`set_current_key`'s fast path). `None` for every other
    /// type. A test holds it to `codec::encode`.
    #[doc(hidden)]
    #[inline(always)]
    fn eight_bytes(&self) -> Option<[u8; 8]> {
        None
    }
}

impl<T: Serialize + DeserializeOwned + 'static> StateKey for T {
    type Owned = T;

    #[inline(always)]
    fn eight_bytes(&self) -> Option<[u8; 8]> {
        // Known at compile time per `T`: the branches not taken are removed.
        codec::to_ks1(self)
    }
}

impl StateKey for str {
    type Owned = String;
}

/// The name prefix of internal states (timers); user states may not use it.
const RESERVED_PREFIX: &str = "_keyedstate.";

/// The per-subtask keyed state backend: one engine, the current key, and the registered states.
///
/// It belongs to the task thread that wraps the engine (it is neither `Send` nor `Sync`): its
/// state handles share it through an `Rc`, so a state access takes no atomic lock. The engine
/// itself is `Send`: open or restore it anywhere, then wrap it with [`KeyedStateBackend::new`]
/// on the thread that processes the records. Snapshots' asynchronous parts
/// ([`PendingSnapshot`]) are `Send` and run on any thread.
///
/// `E` is the engine's type: `dyn StateBackend` by default (an engine chosen at run time, each
/// state access a dynamic call), or the engine itself ([`KeyedStateBackend::new_typed`],
/// `HeapBackend::open_typed`, `RocksDbBackend::open_typed`): then the state handles call the
/// engine directly and the compiler can inline its per-record code.
pub struct KeyedStateBackend<E: StateEngine + ?Sized = dyn StateBackend> {
    shared: SharedCell<E>,
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    engine_name: &'static str,
}

// Not derived: a derive would ask for `E: Clone`, and the clone shares the engine.
impl<E: StateEngine + ?Sized> Clone for KeyedStateBackend<E> {
    fn clone(&self) -> Self {
        KeyedStateBackend {
            shared: self.shared.clone(),
            max_parallelism: self.max_parallelism,
            range: self.range,
            engine_name: self.engine_name,
        }
    }
}

/// The mutable part of a backend, shared by the backend and its handles on one thread.
pub(crate) type SharedCell<E = dyn StateBackend> = Rc<RefCell<Shared<E>>>;

/// Scratch buffers reused by every access, so the hot path does not allocate.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) value: Vec<u8>,
    pub(crate) user_key: Vec<u8>,
}

pub(crate) struct Shared<E: ?Sized = dyn StateBackend> {
    pub(crate) engine: Box<E>,
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    prefix_len: usize,
    has_key: bool,
    key_group: u16,
    /// `[key group][framed current key]` in its first `prefix_end` bytes, set once per key (the
    /// key is encoded in place, its bytes at `key_start..prefix_end`); then a framed namespace:
    /// the entry key of the last access (the void namespace right after `set_current_key`).
    /// Only the namespace is rewritten, and only when an access names another one.
    pub(crate) entry: Vec<u8>,
    key_start: usize,
    prefix_end: usize,
    pub(crate) scratch: Scratch,
    closed: bool,
    /// Every how many accesses a state's latency is sampled; 0 when tracking is off.
    latency_interval: u64,
    samplers: HashMap<StateId, Arc<LatencySampler>>,
    /// The timer queues, once a timer service was asked for (shared by every service).
    pub(crate) timer_queues: Option<Box<crate::timers::Queues>>,
    /// The Rust type of the last key set, once its codec was checked against the engine's.
    key_type: Option<TypeId>,
    batch: BatchKeys,
}

impl<E: StateEngine + ?Sized> Shared<E> {
    /// The timer queues (created by the first timer service) and the engine, borrowed together.
    pub(crate) fn timers(&mut self) -> Result<(&mut crate::timers::Queues, &mut dyn StateBackend)> {
        let queues = self
            .timer_queues
            .as_deref_mut()
            .ok_or_else(|| Error::invalid_argument("no timer service was created"))?;
        Ok((queues, self.engine.as_dyn()))
    }

    /// The current key's group, the key-group prefix length and the serialized key.
    pub(crate) fn current_key_bytes(&self) -> Result<(u16, usize, &[u8])> {
        if self.closed {
            return Err(Error::closed("the backend is closed"));
        }
        if !self.has_key {
            return Err(Error::invalid_argument(
                "no current key: call set_current_key before registering a timer",
            ));
        }
        Ok((self.key_group, self.prefix_len, self.key()))
    }

    /// The serialized current key (meaningful only while `has_key`).
    fn key(&self) -> &[u8] {
        &self.entry[self.key_start..self.prefix_end]
    }

    /// Builds the entry key of the current key in `namespace` (framed) into `self.entry`.
    #[inline(always)]
    pub(crate) fn prepare(&mut self, namespace: &[u8]) -> Result<(u16, usize)> {
        // A closed backend has no current key (`close` clears it), so one check covers both.
        if !self.has_key {
            return Err(self.no_key());
        }
        // The namespace of the last access is usually this one (`set_current_key` appends the
        // void namespace): a compare, not a rewrite.
        let kept = match namespace {
            // One byte (the void namespace's frame): no call to `memcmp`.
            [byte] => {
                self.entry.len() == self.prefix_end + 1 && self.entry[self.prefix_end] == *byte
            }
            _ => self.entry[self.prefix_end..] == *namespace,
        };
        if !kept {
            self.entry.truncate(self.prefix_end);
            self.entry.extend_from_slice(namespace);
        }
        Ok((self.key_group, self.prefix_len))
    }

    /// Why there is no current key: the backend is closed, or none was set.
    #[cold]
    fn no_key(&self) -> Error {
        if self.closed {
            return Error::closed("the backend is closed");
        }
        Error::invalid_argument("no current key: call set_current_key before accessing state")
    }
}

#[inline]
pub(crate) fn lock<E: ?Sized>(shared: &RefCell<Shared<E>>) -> Result<RefMut<'_, Shared<E>>> {
    match shared.try_borrow_mut() {
        Ok(guard) => Ok(guard),
        Err(_) => Err(in_use()),
    }
}

/// The error of a backend call made while the backend is borrowed.
#[cold]
fn in_use() -> Error {
    // User functions (reduce, aggregate, the callbacks of map iteration and of timers) run with
    // the backend released, and may use any state. A key's, namespace's or value's `Serialize`
    // and `Deserialize` run while it is held, as do the callbacks of `scan_raw` (raw bytes, for
    // tools): a backend call from there is this error, not a deadlock or a panic.
    Error::invalid_argument(
        "the backend is in use by the call that is running this code: a key's, namespace's or \
         value's Serialize or Deserialize impl, or a scan_raw callback, may not call the backend \
         or its states",
    )
}

impl KeyedStateBackend {
    /// Wraps an engine chosen at run time. The engine's max parallelism and key-group range
    /// apply.
    pub fn new(engine: Box<dyn StateBackend>) -> Self {
        Self::wrap(engine)
    }
}

impl<E: StateBackend> KeyedStateBackend<E> {
    /// Wraps an engine of a type known at compile time: the state handles call it directly
    /// (static dispatch), so the compiler can inline its per-record code into theirs. The
    /// engine's max parallelism and key-group range apply.
    pub fn new_typed(engine: E) -> Self {
        Self::wrap(Box::new(engine))
    }
}

impl<E: StateEngine + ?Sized> KeyedStateBackend<E> {
    fn wrap(engine: Box<E>) -> Self {
        let max_parallelism = engine.max_parallelism();
        let range = engine.key_group_range();
        let engine_name = engine.engine_name();
        KeyedStateBackend {
            max_parallelism,
            range,
            engine_name,
            shared: Rc::new(RefCell::new(Shared {
                engine,
                max_parallelism,
                range,
                prefix_len: max_parallelism.prefix_len(),
                has_key: false,
                key_group: 0,
                entry: Vec::new(),
                key_start: 0,
                prefix_end: 0,
                scratch: Scratch::default(),
                closed: false,
                latency_interval: 0,
                samplers: HashMap::new(),
                timer_queues: None,
                key_type: None,
                batch: BatchKeys::default(),
            })),
        }
    }

    pub(crate) fn shared(&self) -> SharedCell<E> {
        self.shared.clone()
    }

    pub fn max_parallelism(&self) -> MaxParallelism {
        self.max_parallelism
    }

    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    pub fn engine_name(&self) -> &'static str {
        self.engine_name
    }

    /// Sets the key of the record being processed: serializes it once (`ks1`), computes its key
    /// group and checks that this backend holds that key group. Every state access until the next
    /// call uses this key.
    ///
    /// The key type's codec (`ks1:<shape>`, see [`crate::codec::type_shape`]) is recorded in
    /// checkpoints; a key of another type than the backend holds (one restored from a checkpoint
    /// of `u64` keys given `i64` keys) is `IncompatibleState`: its bytes, and so its key group,
    /// would differ.
    pub fn set_current_key<K: StateKey + ?Sized>(&self, key: &K) -> Result<()> {
        let mut guard = lock(&self.shared)?;
        let shared = &mut *guard;
        if let Err(e) = shared.check_key_type::<K::Owned>() {
            shared.has_key = false;
            return Err(e);
        }
        if let Some(bytes) = key.eight_bytes() {
            return place_eight_byte_key(shared, bytes);
        }
        shared.entry.clear();
        let key_start = match push_framed_key(&mut shared.entry, shared.prefix_len, key) {
            Ok(key_start) => key_start,
            Err(e) => {
                // The key bytes are half-written: no access may use them, nor the previous key.
                shared.has_key = false;
                return Err(e);
            }
        };
        place_key(shared, key_start)
    }

    /// Like [`Self::set_current_key`] for a key that is serialized already.
    pub fn set_current_key_bytes(&self, serialized_key: &[u8]) -> Result<()> {
        let mut guard = lock(&self.shared)?;
        let shared = &mut *guard;
        if shared.closed {
            shared.has_key = false;
            return Err(Error::closed("the backend is closed"));
        }
        shared.entry.clear();
        put_key_group(&mut shared.entry, 0, shared.prefix_len);
        put_framed(&mut shared.entry, serialized_key);
        let key_start = shared.entry.len() - serialized_key.len();
        place_key(shared, key_start)
    }

    /// The key group of the current key, if one is set.
    pub fn current_key_group(&self) -> Result<Option<u16>> {
        let shared = lock(&self.shared)?;
        Ok(shared.has_key.then_some(shared.key_group))
    }

    /// The current key, decoded as `K`.
    pub fn current_key<K: DeserializeOwned>(&self) -> Result<Option<K>> {
        let shared = lock(&self.shared)?;
        if !shared.has_key {
            return Ok(None);
        }
        codec::decode(shared.key()).map(Some)
    }

    fn register(
        &self,
        name: &str,
        kind: StateKind,
        value: &str,
        user_key: Option<&str>,
        ttl: Option<StateTtlConfig>,
    ) -> Result<StateHandle<E>> {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Error::invalid_argument(format!(
                "state name '{name}' is reserved: names starting with '{RESERVED_PREFIX}' are \
                 keyedstate's internal states"
            )));
        }
        // A disabled TTL is no TTL, as in Flink.
        let ttl = ttl.filter(|t| t.update_type != crate::ttl::TtlUpdateType::Disabled);
        let meta = StateMeta {
            name: name.to_owned(),
            kind,
            value_codec: value.to_owned(),
            user_key_codec: user_key.map(str::to_owned),
            ttl: ttl.map(|t| t.meta()),
        };
        let (id, clock, sampler) = {
            let mut shared = lock(&self.shared)?;
            if shared.closed {
                return Err(Error::closed("the backend is closed"));
            }
            let id = shared.engine.register_state(&meta)?;
            let interval = shared.latency_interval;
            let sampler = (interval > 0).then(|| {
                shared
                    .samplers
                    .entry(id)
                    .or_insert_with(|| Arc::new(LatencySampler::new(interval)))
                    .clone()
            });
            (id, shared.engine.clock(), sampler)
        };
        StateHandle::new(
            self.shared.clone(),
            id,
            name,
            ttl.map(|config| (config, clock)),
            sampler,
        )
    }

    /// Registers, or gets the compatible existing, value state.
    pub fn value_state<V: 'static>(
        &self,
        desc: &ValueStateDescriptor<V>,
    ) -> Result<ValueState<V, E>> {
        let handle = self.register(
            &desc.name,
            StateKind::Value,
            desc.codec.id(),
            None,
            desc.ttl,
        )?;
        Ok(ValueState::new(handle, desc.codec.clone()))
    }

    pub fn list_state<V: 'static>(&self, desc: &ListStateDescriptor<V>) -> Result<ListState<V, E>> {
        let handle = self.register(&desc.name, StateKind::List, desc.codec.id(), None, desc.ttl)?;
        Ok(ListState::new(handle, desc.codec.clone()))
    }

    pub fn map_state<UK: 'static, UV: 'static>(
        &self,
        desc: &MapStateDescriptor<UK, UV>,
    ) -> Result<MapState<UK, UV, E>> {
        let handle = self.register(
            &desc.name,
            StateKind::Map,
            desc.value_codec.id(),
            Some(desc.key_codec.id()),
            desc.ttl,
        )?;
        Ok(MapState::new(
            handle,
            desc.key_codec.clone(),
            desc.value_codec.clone(),
        ))
    }

    pub fn reducing_state<V: 'static>(
        &self,
        desc: &ReducingStateDescriptor<V>,
    ) -> Result<ReducingState<V, E>> {
        let handle = self.register(
            &desc.name,
            StateKind::Reducing,
            desc.codec.id(),
            None,
            desc.ttl,
        )?;
        Ok(ReducingState::new(
            handle,
            desc.codec.clone(),
            desc.reduce.clone(),
        ))
    }

    pub fn aggregating_state<F: AggregateFunction>(
        &self,
        desc: &AggregatingStateDescriptor<F>,
    ) -> Result<AggregatingState<F, E>> {
        let handle = self.register(
            &desc.name,
            StateKind::Aggregating,
            desc.codec.id(),
            None,
            desc.ttl,
        )?;
        Ok(AggregatingState::new(
            handle,
            desc.codec.clone(),
            desc.function.clone(),
        ))
    }

    /// Every registered state's meta info.
    pub fn states(&self) -> Result<Vec<StateMeta>> {
        Ok(lock(&self.shared)?.engine.states().to_vec())
    }

    /// The distinct keys that have an entry in `state` under `namespace`, in key-group order
    /// and, within a key group, in the order of their bytes (see [`Self::keys_iter`]).
    pub fn keys<K: DeserializeOwned, N: Serialize + ?Sized>(
        &self,
        state: &str,
        namespace: &N,
    ) -> Result<Vec<K>> {
        self.keys_iter(state, namespace)?.collect()
    }

    /// The keys of [`Self::keys`], read lazily: one key group at a time, so the memory held is
    /// one key group's keys, whatever the state's size, and the caller may use state between
    /// them. A key written to a key group not yet read shows up; one written to a
    /// key group already read does not.
    pub fn keys_iter<K: DeserializeOwned, N: Serialize + ?Sized>(
        &self,
        state: &str,
        namespace: &N,
    ) -> Result<KeyIter<K, E>> {
        let mut wanted = Vec::new();
        codec::encode(namespace, &mut wanted)?;
        let (id, range) = {
            let shared = lock(&self.shared)?;
            if shared.closed {
                return Err(Error::closed("the backend is closed"));
            }
            (state_id(&*shared.engine, state)?, shared.range)
        };
        Ok(KeyIter {
            shared: self.shared.clone(),
            state: id,
            name: state.to_owned(),
            namespace: wanted,
            groups: range.start()..=range.end(),
            chunk: std::collections::VecDeque::new(),
            _key: std::marker::PhantomData,
        })
    }

    /// Visits every entry of `state` as raw bytes, for tools, digests and snapshots.
    pub fn scan_raw(&self, state: &str, f: &mut EntryScan<'_>) -> Result<()> {
        let mut shared = lock(&self.shared)?;
        if shared.closed {
            return Err(Error::closed("the backend is closed"));
        }
        let id = state_id(&*shared.engine, state)?;
        shared
            .engine
            .scan_state(id, f)
            .map_err(|e| e.context(format_args!("state '{state}'")))
    }

    /// The synchronous part of a snapshot for checkpoint `checkpoint_id`. The returned part
    /// writes it to storage and may run on another thread while this backend goes on.
    pub fn snapshot(&self, checkpoint_id: u64, kind: SnapshotKind) -> Result<PendingSnapshot> {
        let mut shared = lock(&self.shared)?;
        if shared.closed {
            return Err(Error::closed("the backend is closed"));
        }
        let engine = &mut shared.engine;
        let snapshot = traced(
            "snapshot.sync",
            checkpoint_id,
            || engine.snapshot(checkpoint_id, kind),
            |_| 0,
        )?;
        Ok(PendingSnapshot {
            checkpoint_id,
            snapshot,
        })
    }

    /// Tells the engine checkpoint `checkpoint_id` was completed.
    pub fn notify_checkpoint_complete(&self, checkpoint_id: u64) -> Result<()> {
        lock(&self.shared)?
            .engine
            .notify_checkpoint_complete(checkpoint_id)
    }

    /// Tells the engine checkpoint `checkpoint_id` was aborted.
    pub fn notify_checkpoint_aborted(&self, checkpoint_id: u64) -> Result<()> {
        lock(&self.shared)?
            .engine
            .notify_checkpoint_aborted(checkpoint_id)
    }

    /// The logical digest of every entry of every state (see [`StateDigest`]).
    pub fn digest(&self) -> Result<StateDigest> {
        let mut digest = StateDigest::default();
        let mut scratch = Vec::new();
        for meta in self.states()? {
            self.scan_raw(&meta.name, &mut |entry| {
                digest.add(&meta.name, &entry, &mut scratch);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        Ok(digest)
    }

    /// Samples the latency of every `sample_interval`-th access of each state registered from now
    /// on (as Flink's `state.backend.latency-track.sample-interval`); 0 turns it off.
    pub fn enable_latency_tracking(&self, sample_interval: u64) -> Result<()> {
        lock(&self.shared)?.latency_interval = sample_interval;
        Ok(())
    }

    /// Size figures and sampled latencies, per state and for the engine.
    pub fn metrics(&self) -> Result<BackendMetrics> {
        let mut shared = lock(&self.shared)?;
        if shared.closed {
            return Err(Error::closed("the backend is closed"));
        }
        let engine = shared.engine.metrics()?;
        let states = shared
            .engine
            .states()
            .iter()
            .enumerate()
            .map(|(id, meta)| StateMetrics {
                name: meta.name.clone(),
                estimated_entries: engine.estimated_entries.get(id).copied().unwrap_or(0),
                latency: shared.samplers.get(&id).map(|s| s.histogram()),
            })
            .collect();
        Ok(BackendMetrics {
            engine: shared.engine.engine_name(),
            states,
            sst_bytes: engine.sst_bytes,
            memtable_bytes: engine.memtable_bytes,
            block_cache_bytes: engine.block_cache_bytes,
        })
    }

    /// Compacts the engine's storage (see [`StateBackend::compact`]).
    pub fn compact(&self) -> Result<()> {
        lock(&self.shared)?.engine.compact()
    }

    /// Closes the engine. Every later call, here or on a state handle, fails with `Closed`.
    pub fn close(&self) -> Result<()> {
        let mut shared = lock(&self.shared)?;
        if shared.closed {
            return Ok(());
        }
        shared.closed = true;
        // No key is current, and the next key of any type checks `closed` (`adopt_key_type`):
        // the hot paths need no check of their own.
        shared.has_key = false;
        shared.key_type = None;
        shared.engine.close()
    }
}

/// The keys of one state and namespace, one key group at a time: see
/// [`KeyedStateBackend::keys_iter`].
pub struct KeyIter<K, E: StateEngine + ?Sized = dyn StateBackend> {
    shared: SharedCell<E>,
    state: StateId,
    name: String,
    namespace: Vec<u8>,
    /// The key groups not read yet.
    groups: std::ops::RangeInclusive<u16>,
    /// The serialized keys of the key group read last, not yet returned.
    chunk: std::collections::VecDeque<Vec<u8>>,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<K: DeserializeOwned, E: StateEngine + ?Sized> KeyIter<K, E> {
    /// Reads the distinct keys of the next key group with entries in the namespace.
    fn fill(&mut self) -> Result<()> {
        while self.chunk.is_empty() {
            let Some(key_group) = self.groups.next() else {
                return Ok(());
            };
            let mut shared = lock(&self.shared)?;
            if shared.closed {
                return Err(Error::closed("the backend is closed"));
            }
            let (chunk, namespace) = (&mut self.chunk, &self.namespace);
            shared
                .engine
                .scan_key_group(self.state, key_group, &mut |entry| {
                    // Sorted by key bytes: a key's entries are adjacent.
                    if entry.parts.namespace == namespace.as_slice()
                        && chunk.back().map(Vec::as_slice) != Some(entry.parts.key)
                    {
                        chunk.push_back(entry.parts.key.to_vec());
                    }
                    Ok(ControlFlow::Continue(()))
                })
                .map_err(|e| e.context(format_args!("state '{}'", self.name)))?;
        }
        Ok(())
    }
}

impl<K: DeserializeOwned, E: StateEngine + ?Sized> Iterator for KeyIter<K, E> {
    type Item = Result<K>;

    fn next(&mut self) -> Option<Result<K>> {
        if let Err(e) = self.fill() {
            // An error ends the iteration.
            self.groups.by_ref().for_each(drop);
            return Some(Err(e));
        }
        self.chunk.pop_front().map(|key| codec::decode(&key))
    }
}

/// The asynchronous part of a snapshot, to run once; dropping it instead abandons the snapshot.
#[must_use = "a snapshot is written only when run"]
pub struct PendingSnapshot {
    checkpoint_id: u64,
    snapshot: Box<dyn AsyncSnapshot>,
}

impl PendingSnapshot {
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// Writes the snapshot of subtask `subtask` to `storage`, its own files where `attempt`
    /// (of this snapshot's checkpoint id: [`crate::checkpoint::PendingCheckpoint::attempt`])
    /// says.
    pub fn run(
        self,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SubtaskHandle> {
        let id = self.checkpoint_id;
        if attempt.checkpoint_id() != id {
            return Err(Error::invalid_argument(format!(
                "the snapshot of checkpoint {id} cannot be written as an attempt at checkpoint {}",
                attempt.checkpoint_id()
            )));
        }
        traced(
            "snapshot.async",
            id,
            || self.snapshot.run(storage, attempt, subtask),
            |h: &SubtaskHandle| h.files().iter().map(|f| f.size).sum(),
        )
        .map_err(|e| e.context(format_args!("checkpoint {id}, subtask {subtask}")))
    }
}

fn state_id<E: StateBackend + ?Sized>(engine: &E, name: &str) -> Result<StateId> {
    engine
        .states()
        .iter()
        .position(|meta| meta.name == name)
        .ok_or_else(|| Error::invalid_argument(format!("no state named '{name}' is registered")))
}

/// Appends `[room for the key group][varint length][ks1 key]` to `buf`; returns where the key's
/// bytes start. The key is encoded where it stays, after a one-byte length (keys of up to 127
/// bytes, the common case; longer ones are moved once).
#[inline(always)]
pub(crate) fn push_framed_key<K: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    prefix_len: usize,
    key: &K,
) -> Result<usize> {
    let start = buf.len();
    // Constant lengths: stores, not a call to memset.
    match prefix_len {
        1 => buf.extend_from_slice(&[0; 2]),
        _ => buf.extend_from_slice(&[0; 3]),
    }
    codec::encode(key, buf)?;
    let len = buf.len() - start - prefix_len - 1;
    if len < 0x80 {
        buf[start + prefix_len] = len as u8;
    } else {
        let encoded = buf.split_off(start + prefix_len + 1);
        buf.truncate(start + prefix_len);
        put_framed(buf, &encoded);
    }
    Ok(buf.len() - len)
}

/// What assigns a key to its key group here: the max parallelism, the backend's range and the
/// length of the key-group prefix.
#[derive(Clone, Copy)]
struct KeySpace {
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    prefix_len: usize,
}

impl KeySpace {
    /// The key group of the serialized key `key`, checked against the range.
    #[inline(always)]
    fn key_group_of(self, key: &[u8]) -> Result<u16> {
        let key_group = self.max_parallelism.key_group_of(key);
        if !self.range.contains(key_group) {
            return Err(outside_range(key_group, self.range));
        }
        Ok(key_group)
    }

    /// The key group of the key at `buf[key]`, checked against the range and written at
    /// `buf[start..]` (the room `push_framed_key` left).
    #[inline(always)]
    fn assign(self, buf: &mut [u8], start: usize, key: std::ops::Range<usize>) -> Result<u16> {
        let key_group = self.key_group_of(&buf[key])?;
        match self.prefix_len {
            1 => buf[start] = key_group as u8,
            _ => buf[start..start + 2].copy_from_slice(&key_group.to_be_bytes()),
        }
        Ok(key_group)
    }
}

#[cold]
fn outside_range(key_group: u16, range: KeyGroupRange) -> Error {
    Error::invalid_argument(format!(
        "key group {key_group} of the key is outside this backend's key groups {range}"
    ))
}

impl<E: StateEngine + ?Sized> Shared<E> {
    fn key_space(&self) -> KeySpace {
        KeySpace {
            max_parallelism: self.max_parallelism,
            range: self.range,
            prefix_len: self.prefix_len,
        }
    }

    /// Checks that keys of type `K` may be used here (see [`adopt_key_type`]).
    #[inline]
    pub(crate) fn check_key_type<K: Serialize + DeserializeOwned + 'static>(
        &mut self,
    ) -> Result<()> {
        if self.key_type == Some(TypeId::of::<K>()) {
            return Ok(());
        }
        adopt_key_type::<K, E>(self)
    }

    /// Builds the entry keys of `keys` in `namespace` (framed) into `self.batch` and runs `f`
    /// on the engine with them; the current key stays as it was.
    pub(crate) fn with_batch_keys<'k, K: StateKey + 'k, R>(
        &mut self,
        keys: impl IntoIterator<Item = &'k K>,
        namespace: &[u8],
        f: impl FnOnce(&mut E, &[EntryKey<'_>], &mut Scratch) -> Result<R>,
    ) -> Result<R> {
        if self.closed {
            return Err(Error::closed("the backend is closed"));
        }
        self.check_key_type::<K::Owned>()?;
        let space = self.key_space();
        let BatchKeys { bytes: buf, spans } = &mut self.batch;
        buf.clear();
        spans.clear();
        for key in keys {
            let start = buf.len();
            if let Some(bytes) = key.eight_bytes() {
                let void = namespace == [0];
                let key_group = space.key_group_of(&bytes)?;
                push_eight_byte_key(buf, space.prefix_len, key_group, bytes, void);
                if !void {
                    buf.extend_from_slice(namespace);
                }
                spans.push((start, buf.len(), key_group));
                continue;
            }
            let key_start = push_framed_key(buf, space.prefix_len, key)?;
            let key_end = buf.len();
            push_namespace(buf, namespace);
            let key_group = space.assign(buf, start, key_start..key_end)?;
            spans.push((start, buf.len(), key_group));
        }
        let entry_keys: Vec<EntryKey<'_>> = spans
            .iter()
            .map(|&(start, end, key_group)| {
                EntryKey::new(&buf[start..end], key_group, space.prefix_len)
            })
            .collect();
        f(&mut *self.engine, &entry_keys, &mut self.scratch)
    }
}

/// Appends a framed namespace to an entry key.
#[inline(always)]
fn push_namespace(buf: &mut Vec<u8>, namespace: &[u8]) {
    match namespace {
        // The void namespace's frame: a push, not a call to `memcpy`.
        [byte] => buf.push(*byte),
        _ => buf.extend_from_slice(namespace),
    }
}

/// Reused buffers of the batch calls: every entry key of a batch in one buffer.
#[derive(Default)]
pub(crate) struct BatchKeys {
    bytes: Vec<u8>,
    /// (start, end, key group) of each entry key in `bytes`.
    spans: Vec<(usize, usize, u16)>,
}

/// Checks the codec of key type `K` against the engine's key codec, or sets it on the first key.
#[cold]
fn adopt_key_type<K: Serialize + DeserializeOwned + 'static, E: StateEngine + ?Sized>(
    shared: &mut Shared<E>,
) -> Result<()> {
    if shared.closed {
        return Err(Error::closed("the backend is closed"));
    }
    // The id a `StateCodec<K>` has: the keys are ks1 encodings of `K`.
    let codec = codec::Codec::id(&codec::StateCodec::<K>::new()).to_owned();
    match shared.engine.key_codec() {
        Some(own) if own != codec => {
            return Err(Error::incompatible_state(format!(
                "the backend holds keys of codec '{own}', not '{codec}': keys of another type \
                 encode to other bytes and belong to other key groups"
            )));
        }
        Some(_) => {}
        None => shared.engine.set_key_codec(&codec),
    }
    shared.key_type = Some(TypeId::of::<K>());
    Ok(())
}

/// `set_current_key` of a key whose `ks1` encoding is `bytes` (a `u64`, `i64` or `f64`): the same
/// entry key `push_framed_key` and `place_key` write, without the serializer.
#[inline(always)]
fn place_eight_byte_key<E: StateEngine + ?Sized>(
    shared: &mut Shared<E>,
    bytes: [u8; 8],
) -> Result<()> {
    shared.has_key = false;
    let key_group = shared.key_space().key_group_of(&bytes)?;
    shared.entry.clear();
    // With the void namespace's empty frame, as `place_key` writes it.
    let key_start = match shared.prefix_len {
        1 => push_eight_byte_key(&mut shared.entry, 1, key_group, bytes, true),
        _ => push_eight_byte_key(&mut shared.entry, 2, key_group, bytes, true),
    };
    shared.key_group = key_group;
    shared.key_start = key_start;
    shared.prefix_end = key_start + 8;
    shared.has_key = true;
    Ok(())
}

/// Appends `[key group][8][bytes]`, the framed entry-key prefix of a key whose `ks1` encoding
/// is the eight `bytes`, and with `void_namespace` the void namespace's frame (0) after it, as
/// one array; returns where the key's bytes start.
#[inline(always)]
fn push_eight_byte_key(
    buf: &mut Vec<u8>,
    prefix_len: usize,
    key_group: u16,
    bytes: [u8; 8],
    void_namespace: bool,
) -> usize {
    let [b0, b1, b2, b3, b4, b5, b6, b7] = bytes;
    let [g0, g1] = key_group.to_be_bytes();
    let start = buf.len();
    match (prefix_len, void_namespace) {
        (1, false) => buf.extend_from_slice(&[g1, 8, b0, b1, b2, b3, b4, b5, b6, b7]),
        (1, true) => buf.extend_from_slice(&[g1, 8, b0, b1, b2, b3, b4, b5, b6, b7, 0]),
        (_, false) => buf.extend_from_slice(&[g0, g1, 8, b0, b1, b2, b3, b4, b5, b6, b7]),
        (_, true) => buf.extend_from_slice(&[g0, g1, 8, b0, b1, b2, b3, b4, b5, b6, b7, 0]),
    }
    start + prefix_len + 1
}

/// Takes the key framed in `shared.entry` after its key-group prefix (its bytes from
/// `key_start`) as the current key: computes its key group, checks this backend holds it and
/// writes the prefix. On failure no key is current.
/// The backend is open: both callers checked (`set_current_key` through the key type, which
/// `close` clears).
#[inline(always)]
fn place_key<E: StateEngine + ?Sized>(shared: &mut Shared<E>, key_start: usize) -> Result<()> {
    shared.has_key = false;
    let end = shared.entry.len();
    shared.key_group = shared
        .key_space()
        .assign(&mut shared.entry, 0, key_start..end)?;
    shared.key_start = key_start;
    shared.prefix_end = end;
    // The void namespace's empty frame, the namespace of most accesses (see `prepare`).
    shared.entry.push(0);
    shared.has_key = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::StateKey;
    use crate::codec;

    fn encoded<K: serde::Serialize + ?Sized>(key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode(key, &mut out).unwrap();
        out
    }

    #[test]
    fn the_eight_byte_fast_path_writes_the_ks1_encoding() {
        for v in [0u64, 1, 255, 256, u64::MAX / 3, u64::MAX] {
            assert_eq!(v.eight_bytes().map(|b| b.to_vec()), Some(encoded(&v)));
        }
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(v.eight_bytes().map(|b| b.to_vec()), Some(encoded(&v)));
        }
        for v in [-1.5f64, 0.0, 2.5] {
            assert_eq!(v.eight_bytes().map(|b| b.to_vec()), Some(encoded(&v)));
        }
        // Every other type takes the serializer.
        assert_eq!(7u32.eight_bytes(), None);
        assert_eq!("alice".eight_bytes(), None);
        assert_eq!((1u32, 2u32).eight_bytes(), None);
    }
}
