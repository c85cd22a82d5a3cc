use super::StateHandle;
use crate::backend::{StateBackend, StateEngine};
use crate::codec::{Codec, HandleCodec};
use crate::error::Result;
use crate::keyed::StateKey;
use serde::Serialize;
use std::sync::Arc;

/// One value per key and namespace.
pub struct ValueState<V, E: StateEngine + ?Sized = dyn StateBackend> {
    handle: StateHandle<E>,
    codec: HandleCodec<V>,
}

impl<V: 'static, E: StateEngine + ?Sized> ValueState<V, E> {
    pub(crate) fn new(handle: StateHandle<E>, codec: Arc<dyn Codec<V>>) -> Self {
        ValueState {
            handle,
            codec: HandleCodec::new(codec),
        }
    }

    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// Switches the namespace (window) this handle accesses.
    pub fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.handle.set_namespace(namespace)
    }

    /// The value of the current key, or `None`.
    pub fn get(&self) -> Result<Option<V>> {
        self.handle.read(None, &self.codec)
    }

    /// Replaces the value of the current key.
    pub fn update(&self, value: &V) -> Result<()> {
        self.handle.write(None, &self.codec, value)
    }

    /// The values of `keys`, in order, as [`Self::get`] with each as the current key would
    /// return them (TTL included), in one engine call (RocksDB: one `MultiGet`). The current
    /// key stays as it was.
    pub fn get_batch<K: StateKey>(&self, keys: &[K]) -> Result<Vec<Option<V>>> {
        self.handle.read_batch(keys, &self.codec)
    }

    /// Stores each `(key, value)`, in order, as [`Self::update`] with each key as the current
    /// key would (of two entries of one key the later stays), in one engine call (RocksDB: one
    /// `WriteBatch`). The current key stays as it was.
    pub fn update_batch<K: StateKey>(&self, entries: &[(K, V)]) -> Result<()> {
        self.handle.write_batch(entries, &self.codec)
    }

    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }
}
