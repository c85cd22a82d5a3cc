use super::{Judged, StateHandle, judge};
use crate::backend::{EntryKey, StateBackend, StateEngine, StateId};
use crate::codec::{Codec, HandleCodec};
use crate::error::{Error, Result};
use crate::keyed::{Scratch, StateKey};
use crate::ttl::put_timestamp;
use serde::Serialize;
use std::ops::ControlFlow;
use std::sync::Arc;

/// A map from user keys to values per key and namespace; each map entry is one engine entry.
pub struct MapState<UK, UV, E: StateEngine + ?Sized = dyn StateBackend> {
    handle: StateHandle<E>,
    key_codec: HandleCodec<UK>,
    value_codec: HandleCodec<UV>,
}

impl<UK: 'static, UV: 'static, E: StateEngine + ?Sized> MapState<UK, UV, E> {
    pub(crate) fn new(
        handle: StateHandle<E>,
        key_codec: Arc<dyn Codec<UK>>,
        value_codec: Arc<dyn Codec<UV>>,
    ) -> Self {
        MapState {
            handle,
            key_codec: HandleCodec::new(key_codec),
            value_codec: HandleCodec::new(value_codec),
        }
    }

    pub fn name(&self) -> &str {
        self.handle.name()
    }

    pub fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.handle.set_namespace(namespace)
    }

    pub fn get(&self, user_key: &UK) -> Result<Option<UV>> {
        let ttl = self.handle.ttl_now();
        self.handle
            .with(|a| self.read(a.engine, a.id, a.key, user_key, a.scratch, ttl))
    }

    pub fn contains(&self, user_key: &UK) -> Result<bool> {
        Ok(self.get(user_key)?.is_some())
    }

    /// The values at `(key, user key)` of each entry, in order, as [`Self::get`] with each key
    /// as the current key would return them, under one lock; the current key stays as it was.
    pub fn get_batch<K: StateKey>(&self, entries: &[(K, UK)]) -> Result<Vec<Option<UV>>> {
        // Entry by entry, not through RocksDB's MultiGet: measured on 2026-12-07, a MultiGet of
        // the entries' keys made the batch 0.6-0.8x as fast as per-record reads, where these
        // reads are 1.0-1.1x (docs/performance.md).
        let ttl = self.handle.ttl_now();
        self.handle.with_keys(
            entries.iter().map(|(key, _)| key),
            |engine, id, keys, scratch| {
                keys.iter()
                    .zip(entries)
                    .map(|(&key, (_, user_key))| self.read(engine, id, key, user_key, scratch, ttl))
                    .collect()
            },
        )
    }

    /// Puts each `(key, user key, value)` in order, as [`Self::put`] with each key as the
    /// current key would, in one engine call (RocksDB: one `WriteBatch`).
    pub fn put_batch<K: StateKey>(&self, entries: &[(K, UK, UV)]) -> Result<()> {
        let (mut user_keys, mut values) = (Vec::new(), Vec::new());
        let (mut key_ends, mut value_ends) = (Vec::new(), Vec::new());
        for (_, user_key, value) in entries {
            self.key_codec.encode(user_key, &mut user_keys)?;
            key_ends.push(user_keys.len());
            self.handle.stamp(&mut values);
            self.value_codec.encode(value, &mut values)?;
            value_ends.push(values.len());
        }
        let user_keys = super::split_at_ends(&user_keys, &key_ends);
        let values = super::split_at_ends(&values, &value_ends);
        self.handle.with_keys(
            entries.iter().map(|(key, _, _)| key),
            |engine, id, keys, _| engine.map_put_batch(id, keys, &user_keys, &values),
        )
    }

    /// Reads and decodes the value at `user_key` of the map at `key` (TTL applied).
    fn read(
        &self,
        engine: &mut E,
        id: StateId,
        entry_key: EntryKey<'_>,
        user_key: &UK,
        scratch: &mut Scratch,
        ttl: Option<(&crate::ttl::StateTtlConfig, u64)>,
    ) -> Result<Option<UV>> {
        let Scratch {
            value: stored,
            user_key: encoded,
        } = scratch;
        // A `u64`, `i64` or `f64` user key is its word, on the stack.
        let mut word = [0; 8];
        let key = self.key_codec.encoded(user_key, &mut word, encoded)?;
        let Some((config, now)) = ttl else {
            // No TTL: decoded from the engine's own bytes.
            return engine
                .map_get_ref(id, entry_key, key)?
                .map(|v| self.value_codec.decode(v))
                .transpose();
        };
        // A TTL may delete or rewrite the entry: its bytes are copied out of the engine first.
        if !engine.map_get(id, entry_key, key, stored)? {
            return Ok(None);
        }
        match judge(config, now, stored)? {
            Judged::Expired { returned } => {
                let returned = returned.map(|v| self.value_codec.decode(v)).transpose()?;
                engine.map_remove(id, entry_key, key)?;
                Ok(returned)
            }
            Judged::Visible { value, renew } => {
                let decoded = self.value_codec.decode(value)?;
                if renew {
                    let mut restamped = Vec::with_capacity(stored.len());
                    put_timestamp(&mut restamped, now);
                    restamped.extend_from_slice(value);
                    engine.map_put(id, entry_key, key, &restamped)?;
                }
                Ok(Some(decoded))
            }
        }
    }

    pub fn put(&self, user_key: &UK, value: &UV) -> Result<()> {
        self.handle.with(|a| {
            a.scratch.user_key.clear();
            self.key_codec.encode(user_key, &mut a.scratch.user_key)?;
            a.scratch.value.clear();
            self.handle.stamp(&mut a.scratch.value);
            self.value_codec.encode(value, &mut a.scratch.value)?;
            a.engine
                .map_put(a.id, a.key, &a.scratch.user_key, &a.scratch.value)
        })
    }

    pub fn put_all<'e>(&self, entries: impl IntoIterator<Item = (&'e UK, &'e UV)>) -> Result<()>
    where
        UK: 'e,
        UV: 'e,
    {
        entries.into_iter().try_for_each(|(k, v)| self.put(k, v))
    }

    pub fn remove(&self, user_key: &UK) -> Result<()> {
        self.handle.with(|a| {
            a.scratch.user_key.clear();
            self.key_codec.encode(user_key, &mut a.scratch.user_key)?;
            a.engine.map_remove(a.id, a.key, &a.scratch.user_key)
        })
    }

    /// Reads the next [`CHUNK`] entries of the current key's map after user key `after`, as
    /// (user key, value) bytes, leaving out expired entries. `entry_key` is the entry key
    /// (current key and namespace) of the iteration: set on its first chunk, checked on later
    /// ones.
    fn chunk(&self, after: Option<&[u8]>, entry_key: &mut Vec<u8>) -> Result<Chunk> {
        self.handle.with(|a| {
            if after.is_none() {
                entry_key.clear();
                entry_key.extend_from_slice(a.key.bytes());
            } else if entry_key.as_slice() != a.key.bytes() {
                return Err(Error::invalid_argument(format!(
                    "the current key or namespace changed while iterating map state '{}'",
                    self.handle.name()
                )));
            }
            let mut chunk = Chunk::default();
            let mut scanned = 0;
            a.engine.map_scan(a.id, a.key, after, &mut |k, v| {
                if let Some(value) = self.handle.visible(v)? {
                    chunk.entries.push((k.to_vec(), value.to_vec()));
                }
                // Counted whether visible or not: the chunk bounds the work while the backend is borrowed.
                scanned += 1;
                if scanned < CHUNK {
                    return Ok(ControlFlow::Continue(()));
                }
                chunk.resume_after = Some(k.to_vec());
                Ok(ControlFlow::Break(()))
            })?;
            Ok(chunk)
        })
    }

    /// The current key's map entries, in the order of the user keys' bytes, read lazily: a
    /// bounded chunk at a time, without holding the backend while the caller goes on. So the
    /// caller may read and write state between entries, `remove` the entry it just got (as with
    /// Flink's map iterator), and iterate a map of any size in bounded memory. Entries put
    /// after the one last returned are seen, entries before it are not. The iteration belongs
    /// to the current key and namespace at its start: changing either makes it fail.
    pub fn iter(&self) -> MapIter<'_, UK, UV, E> {
        MapIter {
            state: self,
            chunk: std::collections::VecDeque::new(),
            after: None,
            entry_key: Vec::new(),
            done: false,
        }
    }

    /// Visits the map of the current key entry by entry (see [`Self::iter`]); `f` may call the
    /// backend, and `ControlFlow::Break` stops the visit.
    pub fn for_each(&self, mut f: impl FnMut(UK, UV) -> Result<ControlFlow<()>>) -> Result<()> {
        for entry in self.iter() {
            let (k, v) = entry?;
            if f(k, v)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The entries of the current key's map, in the order of the user keys' bytes.
    pub fn entries(&self) -> Result<Vec<(UK, UV)>> {
        self.iter().collect()
    }

    pub fn keys(&self) -> Result<Vec<UK>> {
        self.iter().map(|entry| entry.map(|(k, _)| k)).collect()
    }

    pub fn values(&self) -> Result<Vec<UV>> {
        self.iter().map(|entry| entry.map(|(_, v)| v)).collect()
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.iter().next().transpose()?.is_none())
    }

    /// Removes every entry of the current key's map.
    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }
}

/// Entries read from the engine per lock: bounds the memory of an iteration and how long it
/// holds the backend.
const CHUNK: usize = 256;

/// A map entry's user key and value, serialized.
type RawPair = (Vec<u8>, Vec<u8>);

/// What one chunk read: the visible entries, and where the next chunk starts (`None`: the map
/// has no more entries).
#[derive(Default)]
struct Chunk {
    entries: Vec<RawPair>,
    resume_after: Option<Vec<u8>>,
}

/// A lazy iteration of one map (see [`MapState::iter`]).
pub struct MapIter<'s, UK, UV, E: StateEngine + ?Sized = dyn StateBackend> {
    state: &'s MapState<UK, UV, E>,
    chunk: std::collections::VecDeque<RawPair>,
    /// The last user key read from the engine.
    after: Option<Vec<u8>>,
    entry_key: Vec<u8>,
    done: bool,
}

impl<UK: 'static, UV: 'static, E: StateEngine + ?Sized> Iterator for MapIter<'_, UK, UV, E> {
    type Item = Result<(UK, UV)>;

    fn next(&mut self) -> Option<Self::Item> {
        // A chunk may hold no visible entry (all expired) and still not be the last.
        while self.chunk.is_empty() && !self.done {
            match self.state.chunk(self.after.as_deref(), &mut self.entry_key) {
                Ok(chunk) => {
                    self.done = chunk.resume_after.is_none();
                    self.after = chunk.resume_after;
                    self.chunk = chunk.entries.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let (k, v) = self.chunk.pop_front()?;
        // Decoded with the backend released: codecs are user code too.
        let decoded = self
            .state
            .key_codec
            .decode(&k)
            .and_then(|k| Ok((k, self.state.value_codec.decode(&v)?)));
        Some(decoded)
    }
}
