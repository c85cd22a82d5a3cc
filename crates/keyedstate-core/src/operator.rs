//! Operator (non-keyed) state, as Flink's: per subtask, not partitioned by key, redistributed on
//! rescale as its kind says.
//! - list state: split evenly, round robin over all subtasks' elements in subtask order (at an
//!   unchanged parallelism each subtask gets its own list back);
//! - union list state: every subtask gets every subtask's elements;
//! - broadcast state: a map that every subtask holds identically; restored from subtask 0's copy.
//!
//! A subtask's operator state is one small file per checkpoint (see `docs/formats.md`).

use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::storage::CheckpointStorage;
use crate::codec::Codec;
use crate::descriptor::{ListStateDescriptor, MapStateDescriptor};
use crate::error::{Error, Result};
use crate::key_layout::{get_framed, get_varint, put_framed, put_varint};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

const MAGIC: &[u8; 8] = b"KSOPST\x00\x01";

/// How an operator state is redistributed on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorStateKind {
    List,
    UnionList,
    Broadcast,
}

impl OperatorStateKind {
    fn byte(self) -> u8 {
        match self {
            OperatorStateKind::List => 0,
            OperatorStateKind::UnionList => 1,
            OperatorStateKind::Broadcast => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => OperatorStateKind::List,
            1 => OperatorStateKind::UnionList,
            2 => OperatorStateKind::Broadcast,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    kind: OperatorStateKind,
    codec: String,
    /// List elements in order (list and union list state).
    items: Vec<Vec<u8>>,
    /// Key bytes to value bytes (broadcast state).
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

type States = BTreeMap<String, Stored>;

/// The operator state of one subtask.
#[derive(Clone, Default)]
pub struct OperatorStateBackend {
    states: Arc<Mutex<States>>,
}

fn lock(states: &Mutex<States>) -> MutexGuard<'_, States> {
    states.lock().unwrap_or_else(|p| p.into_inner())
}

impl OperatorStateBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn register(&self, name: &str, kind: OperatorStateKind, codec: String) -> Result<()> {
        crate::descriptor::check_state_name(name)?;
        let mut states = lock(&self.states);
        match states.get(name) {
            Some(existing) if existing.kind != kind || existing.codec != codec => {
                Err(Error::incompatible_state(format!(
                    "operator state '{name}' is registered as {:?} with codec '{}', not as {kind:?} with '{codec}'",
                    existing.kind, existing.codec
                )))
            }
            Some(_) => Ok(()),
            None => {
                states.insert(
                    name.to_owned(),
                    Stored {
                        kind,
                        codec,
                        items: Vec::new(),
                        map: BTreeMap::new(),
                    },
                );
                Ok(())
            }
        }
    }

    /// List state, split evenly across subtasks on rescale.
    pub fn list_state<V: 'static>(
        &self,
        desc: &ListStateDescriptor<V>,
    ) -> Result<OperatorListState<V>> {
        self.list_handle(desc, OperatorStateKind::List)
    }

    /// Union list state: every subtask gets all elements on restore.
    pub fn union_list_state<V: 'static>(
        &self,
        desc: &ListStateDescriptor<V>,
    ) -> Result<OperatorListState<V>> {
        self.list_handle(desc, OperatorStateKind::UnionList)
    }

    fn list_handle<V: 'static>(
        &self,
        desc: &ListStateDescriptor<V>,
        kind: OperatorStateKind,
    ) -> Result<OperatorListState<V>> {
        self.register(&desc.name, kind, desc.codec.id().to_owned())?;
        Ok(OperatorListState {
            states: self.states.clone(),
            name: desc.name.clone(),
            codec: desc.codec.clone(),
        })
    }

    /// Broadcast state: a map every subtask holds identically.
    pub fn broadcast_state<K: 'static, V: 'static>(
        &self,
        desc: &MapStateDescriptor<K, V>,
    ) -> Result<BroadcastState<K, V>> {
        let codec = format!("{}|{}", desc.key_codec.id(), desc.value_codec.id());
        self.register(&desc.name, OperatorStateKind::Broadcast, codec)?;
        Ok(BroadcastState {
            states: self.states.clone(),
            name: desc.name.clone(),
            key_codec: desc.key_codec.clone(),
            value_codec: desc.value_codec.clone(),
        })
    }

    /// The synchronous part of a snapshot: the encoded state (operator state is small).
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let states = lock(&self.states);
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        put_varint(&mut out, states.len() as u64);
        for (name, stored) in states.iter() {
            put_framed(&mut out, name.as_bytes());
            out.push(stored.kind.byte());
            put_framed(&mut out, stored.codec.as_bytes());
            // A broadcast map as its keys and values alternating, keys ascending.
            put_varint(&mut out, (stored.items.len() + 2 * stored.map.len()) as u64);
            for item in &stored.items {
                put_framed(&mut out, item);
            }
            for (key, value) in &stored.map {
                put_framed(&mut out, key);
                put_framed(&mut out, value);
            }
        }
        out
    }

    fn decode(bytes: &[u8], origin: &str) -> Result<States> {
        let corrupt = |what: String| Error::corruption(format!("operator state {origin}: {what}"));
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| corrupt("bad magic".into()))?;
        let (count, mut rest) = get_varint(rest).map_err(|e| corrupt(e.to_string()))?;
        let mut states = States::new();
        for _ in 0..count {
            let (name, r) = get_framed(rest).map_err(|e| corrupt(e.to_string()))?;
            let (&kind, r) = r.split_first().ok_or_else(|| corrupt("truncated".into()))?;
            let kind = OperatorStateKind::from_byte(kind)
                .ok_or_else(|| corrupt(format!("kind {kind}")))?;
            let (codec, r) = get_framed(r).map_err(|e| corrupt(e.to_string()))?;
            let (n, mut r) = get_varint(r).map_err(|e| corrupt(e.to_string()))?;
            // Bounded by the input: each item takes at least one byte.
            if n > r.len() as u64 {
                return Err(corrupt(format!("{n} items in {} bytes", r.len())));
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let (item, after) = get_framed(r).map_err(|e| corrupt(e.to_string()))?;
                items.push(item.to_vec());
                r = after;
            }
            rest = r;
            let text = |b: &[u8]| {
                String::from_utf8(b.to_vec())
                    .map_err(|_| corrupt("name or codec is not UTF-8".into()))
            };
            let mut map = BTreeMap::new();
            if kind == OperatorStateKind::Broadcast {
                if items.len() % 2 != 0 {
                    return Err(corrupt("a broadcast map with a key but no value".into()));
                }
                let mut pairs = std::mem::take(&mut items).into_iter();
                while let (Some(k), Some(v)) = (pairs.next(), pairs.next()) {
                    map.insert(k, v);
                }
            }
            states.insert(
                text(name)?,
                Stored {
                    kind,
                    codec: text(codec)?,
                    items,
                    map,
                },
            );
        }
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes".into()));
        }
        Ok(states)
    }

    /// The operator state of subtask `index` of `parallelism`, restored (and redistributed)
    /// from every subtask's operator state in `metadata`.
    pub fn restore(
        metadata: &CheckpointMetadata,
        storage: &dyn CheckpointStorage,
        parallelism: u32,
        index: u32,
    ) -> Result<Self> {
        if index >= parallelism {
            return Err(Error::invalid_argument(format!(
                "subtask {index} is not below parallelism {parallelism}"
            )));
        }
        let mut sources = Vec::new();
        for handle in &metadata.subtasks {
            match &handle.operator_state {
                Some(file) => sources.push(Self::decode(&storage.read(file)?, &file.path)?),
                None => sources.push(States::new()),
            }
        }
        let old_parallelism = metadata.parallelism();
        let unchanged = old_parallelism == parallelism;
        // As Flink: new subtask i takes its broadcast copies from old subtask i % old
        // parallelism.
        let broadcast_source = index % old_parallelism;
        let mut copied = BTreeSet::new();
        let mut restored = States::new();
        for (subtask, states) in sources.iter().enumerate() {
            for (name, stored) in states {
                let target = restored.entry(name.clone()).or_insert_with(|| Stored {
                    kind: stored.kind,
                    codec: stored.codec.clone(),
                    items: Vec::new(),
                    map: BTreeMap::new(),
                });
                if target.kind != stored.kind || target.codec != stored.codec {
                    return Err(Error::corruption(format!(
                        "operator state '{name}' differs in kind or codec between subtasks of checkpoint {}",
                        metadata.checkpoint_id
                    )));
                }
                match stored.kind {
                    OperatorStateKind::List if unchanged => {
                        if subtask as u32 == index {
                            target.items.extend(stored.items.iter().cloned());
                        }
                    }
                    OperatorStateKind::List | OperatorStateKind::UnionList => {
                        target.items.extend(stored.items.iter().cloned())
                    }
                    OperatorStateKind::Broadcast => {
                        if subtask as u32 == broadcast_source {
                            target.map = stored.map.clone();
                            copied.insert(name.clone());
                        }
                    }
                }
            }
        }
        for (name, stored) in &restored {
            if stored.kind == OperatorStateKind::Broadcast && !copied.contains(name) {
                return Err(Error::corruption(format!(
                    "broadcast state '{name}' has no copy in subtask {broadcast_source} of \
                     checkpoint {}, which subtask {index} of {parallelism} restores it from",
                    metadata.checkpoint_id
                )));
            }
        }
        if !unchanged {
            for stored in restored
                .values_mut()
                .filter(|s| s.kind == OperatorStateKind::List)
            {
                // As Flink's round-robin repartitioner: the elements of every old subtask in
                // order, cut into contiguous blocks, the first `total % parallelism` subtasks
                // taking one more.
                let all = std::mem::take(&mut stored.items);
                let (p, i) = (parallelism as usize, index as usize);
                let (base, extra) = (all.len() / p, all.len() % p);
                let start = i * base + i.min(extra);
                let len = base + usize::from(i < extra);
                stored.items = all.into_iter().skip(start).take(len).collect();
            }
        }
        Ok(OperatorStateBackend {
            states: Arc::new(Mutex::new(restored)),
        })
    }
}

/// Operator list state (split or union, by how it was registered).
pub struct OperatorListState<V> {
    states: Arc<Mutex<States>>,
    name: String,
    codec: Arc<dyn Codec<V>>,
}

impl<V: 'static> OperatorListState<V> {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<Vec<u8>>) -> Result<R>) -> Result<R> {
        let mut states = lock(&self.states);
        let stored = states
            .get_mut(&self.name)
            .ok_or_else(|| Error::invalid_argument(format!("no operator state '{}'", self.name)))?;
        f(&mut stored.items)
    }

    pub fn get(&self) -> Result<Vec<V>> {
        self.with(|items| items.iter().map(|item| self.codec.decode(item)).collect())
    }

    pub fn add(&self, value: &V) -> Result<()> {
        let mut bytes = Vec::new();
        self.codec.encode(value, &mut bytes)?;
        self.with(|items| {
            items.push(bytes);
            Ok(())
        })
    }

    /// Replaces the list.
    pub fn update(&self, values: &[V]) -> Result<()> {
        let mut encoded = Vec::with_capacity(values.len());
        for value in values {
            let mut bytes = Vec::new();
            self.codec.encode(value, &mut bytes)?;
            encoded.push(bytes);
        }
        self.with(|items| {
            *items = encoded;
            Ok(())
        })
    }

    pub fn clear(&self) -> Result<()> {
        self.with(|items| {
            items.clear();
            Ok(())
        })
    }
}

/// Broadcast state: a map held identically by every subtask.
pub struct BroadcastState<K, V> {
    states: Arc<Mutex<States>>,
    name: String,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> BroadcastState<K, V> {
    /// Runs `f` on the map as key bytes to value bytes.
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<Vec<u8>, Vec<u8>>) -> R) -> Result<R> {
        let mut states = lock(&self.states);
        let stored = states
            .get_mut(&self.name)
            .ok_or_else(|| Error::invalid_argument(format!("no operator state '{}'", self.name)))?;
        Ok(f(&mut stored.map))
    }

    fn key(&self, key: &K) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.key_codec.encode(key, &mut bytes)?;
        Ok(bytes)
    }

    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key = self.key(key)?;
        self.with(|map| map.get(&key).cloned())?
            .map(|v| self.value_codec.decode(&v))
            .transpose()
    }

    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let key = self.key(key)?;
        let mut bytes = Vec::new();
        self.value_codec.encode(value, &mut bytes)?;
        self.with(|map| {
            map.insert(key, bytes);
        })
    }

    pub fn remove(&self, key: &K) -> Result<()> {
        let key = self.key(key)?;
        self.with(|map| {
            map.remove(&key);
        })
    }

    pub fn entries(&self) -> Result<Vec<(K, V)>> {
        let raw = self.with(|map| map.clone())?;
        raw.iter()
            .map(|(k, v)| Ok((self.key_codec.decode(k)?, self.value_codec.decode(v)?)))
            .collect()
    }
}
