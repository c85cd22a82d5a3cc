use super::{Judged, StateHandle, framed_namespace, judge};
use crate::backend::{EntryKey, StateBackend, StateEngine, StateId};
use crate::codec::{Codec, HandleCodec};
use crate::error::Result;
use crate::key_layout::{list_elements, put_framed};
use crate::keyed::{Scratch, StateKey};
use crate::ttl::put_timestamp;
use serde::Serialize;
use std::sync::Arc;

/// A list of values per key and namespace. `add` appends without reading the list (a RocksDB
/// merge).
pub struct ListState<V, E: StateEngine + ?Sized = dyn StateBackend> {
    handle: StateHandle<E>,
    codec: HandleCodec<V>,
}

impl<V: 'static, E: StateEngine + ?Sized> ListState<V, E> {
    pub(crate) fn new(handle: StateHandle<E>, codec: Arc<dyn Codec<V>>) -> Self {
        ListState {
            handle,
            codec: HandleCodec::new(codec),
        }
    }

    pub fn name(&self) -> &str {
        self.handle.name()
    }

    pub fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.handle.set_namespace(namespace)
    }

    /// The list of the current key; empty when there is none.
    pub fn get(&self) -> Result<Vec<V>> {
        let mut elements = Vec::new();
        self.get_into(&mut elements)?;
        Ok(elements)
    }

    /// The list of the current key, into `out` (cleared first; left empty on an error): as
    /// [`Self::get`], without allocating a vector per call when `out` is reused. A loop
    /// that reads a list per record reads it this way, as a Flink job iterates the list its
    /// heap backend lends it instead of copying it (a third of a heap list read of one
    /// element was `get`'s vector: its allocation, growth and free).
    pub fn get_into(&self, out: &mut Vec<V>) -> Result<()> {
        out.clear();
        let ttl = self.handle.ttl_now();
        let read = self
            .handle
            .with(|a| self.read(a.engine, a.id, a.key, a.scratch, ttl, out));
        if read.is_err() {
            out.clear();
        }
        read
    }

    /// The lists of `keys`, in order, as [`Self::get`] with each as the current key would
    /// return them, under one lock; the current key stays as it was.
    pub fn get_batch<K: StateKey>(&self, keys: &[K]) -> Result<Vec<Vec<V>>> {
        let ttl = self.handle.ttl_now();
        self.handle
            .with_keys(keys, |engine, id, entry_keys, scratch| {
                if ttl.is_some() {
                    // Each list judged and, where that changed it, rewritten as a read does.
                    return entry_keys
                        .iter()
                        .map(|&key| {
                            let mut list = Vec::new();
                            self.read(engine, id, key, scratch, ttl, &mut list)?;
                            Ok(list)
                        })
                        .collect();
                }
                let mut lists: Vec<Vec<V>> = std::iter::repeat_with(Vec::new)
                    .take(entry_keys.len())
                    .collect();
                engine.multi_get(id, entry_keys, &mut |i, stored| {
                    if let Some(stored) = stored {
                        lists[i] = list_elements(stored)
                            .map(|e| self.codec.decode(e?))
                            .collect::<Result<_>>()?;
                    }
                    Ok(())
                })?;
                Ok(lists)
            })
    }

    /// Appends each `(key, value)` in order, as [`Self::add`] with each key as the current key
    /// would, in one engine call (RocksDB: one `WriteBatch` of merges).
    pub fn add_batch<K: StateKey>(&self, entries: &[(K, V)]) -> Result<()> {
        let (mut framed, mut element) = (Vec::new(), Vec::new());
        let mut ends = Vec::with_capacity(entries.len());
        for (_, value) in entries {
            self.frame_onto(std::slice::from_ref(value), &mut framed, &mut element)?;
            ends.push(framed.len());
        }
        let frames = super::split_at_ends(&framed, &ends);
        self.handle
            .with_keys(entries.iter().map(|(key, _)| key), |engine, id, keys, _| {
                engine.append_batch(id, keys, &frames)
            })
    }

    /// Reads and decodes the list at `key` (TTL applied, see [`Self::get`]), appending its
    /// elements to `elements`.
    fn read(
        &self,
        engine: &mut E,
        id: StateId,
        key: EntryKey<'_>,
        scratch: &mut Scratch,
        ttl: Option<(&crate::ttl::StateTtlConfig, u64)>,
        elements: &mut Vec<V>,
    ) -> Result<()> {
        let Some((config, now)) = ttl else {
            // No TTL: decoded from the engine's own bytes.
            if let Some(stored) = engine.get_ref(id, key)? {
                for element in list_elements(stored) {
                    elements.push(self.codec.decode(element?)?);
                }
            }
            return Ok(());
        };
        // TTL may rewrite or delete the list: its bytes are copied out of the engine first.
        if !engine.get(id, key, &mut scratch.value)? {
            return Ok(());
        }
        // Each element expires on its own; expired ones are dropped and renewed ones
        // restamped, and the list is written back only if that changed it.
        let Scratch {
            value: stored,
            user_key: kept,
        } = scratch;
        kept.clear();
        let mut changed = false;
        for element in list_elements(stored) {
            let element = element?;
            match judge(config, now, element)? {
                Judged::Expired { returned } => {
                    // Removed either way; returned this once if the visibility says so.
                    if let Some(value) = returned {
                        elements.push(self.codec.decode(value)?);
                    }
                    changed = true;
                }
                Judged::Visible { value, renew } => {
                    elements.push(self.codec.decode(value)?);
                    if renew {
                        let mut restamped = Vec::with_capacity(element.len());
                        put_timestamp(&mut restamped, now);
                        restamped.extend_from_slice(value);
                        put_framed(kept, &restamped);
                        changed = true;
                    } else {
                        put_framed(kept, element);
                    }
                }
            }
        }
        if changed {
            if kept.is_empty() {
                engine.delete(id, key)?;
            } else {
                engine.put(id, key, kept)?;
            }
        }
        Ok(())
    }

    /// Appends one element.
    pub fn add(&self, value: &V) -> Result<()> {
        match self.word_frame(value) {
            // The common element, framed on the stack.
            Some(frame) => self.handle.append(&frame),
            None => self.add_all(std::slice::from_ref(value)),
        }
    }

    /// Appends elements in order; an empty slice changes nothing.
    pub fn add_all(&self, values: &[V]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.handle.with(|a| {
            a.scratch.value.clear();
            self.frame_onto(values, &mut a.scratch.value, &mut a.scratch.user_key)?;
            a.engine.append(a.id, a.key, &a.scratch.value)
        })
    }

    /// Replaces the list; an empty slice clears it.
    pub fn update(&self, values: &[V]) -> Result<()> {
        self.handle.with(|a| {
            if values.is_empty() {
                return a.engine.delete(a.id, a.key);
            }
            a.scratch.value.clear();
            self.frame_onto(values, &mut a.scratch.value, &mut a.scratch.user_key)?;
            a.engine.put(a.id, a.key, &a.scratch.value)
        })
    }

    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }

    /// Moves the lists of `sources` to the end of the list in `target` (session windows).
    pub fn merge_namespaces<N: Serialize>(&self, target: &N, sources: &[N]) -> Result<()> {
        let taken = self.handle.take_raw(sources)?.concat();
        if taken.is_empty() {
            return Ok(());
        }
        let target = framed_namespace(target)?;
        self.handle
            .with_namespace(&target, |a| a.engine.append(a.id, a.key, &taken))
    }

    /// The frame of a `u64`, `i64` or `f64` element of a state without TTL, made without a
    /// call to the codec: its one-byte length, then its word in place.
    #[inline(always)]
    fn word_frame(&self, value: &V) -> Option<[u8; 9]> {
        let word = self
            .codec
            .eight_bytes(value)
            .filter(|_| !self.handle.has_ttl())?;
        let mut frame = [8; 9];
        frame[1..].copy_from_slice(&word);
        Some(frame)
    }

    /// Appends the framed encodings of `values` to `out`: each encoded in place after a
    /// one-byte length, which is right for elements of up to 127 bytes; a longer one is moved
    /// to make room for its longer length (through `element`).
    fn frame_onto(&self, values: &[V], out: &mut Vec<u8>, element: &mut Vec<u8>) -> Result<()> {
        for value in values {
            if let Some(frame) = self.word_frame(value) {
                out.extend_from_slice(&frame);
                continue;
            }
            let at = out.len();
            out.push(0);
            self.handle.stamp(out);
            self.codec.encode(value, out)?;
            let len = out.len() - at - 1;
            match u8::try_from(len) {
                Ok(len) if len < 0x80 => out[at] = len,
                _ => {
                    element.clear();
                    element.extend_from_slice(&out[at + 1..]);
                    out.truncate(at);
                    put_framed(out, element);
                }
            }
        }
        Ok(())
    }
}
