use super::StateHandle;
use crate::backend::{StateBackend, StateEngine};
use crate::codec::{Codec, HandleCodec};
use crate::descriptor::ReduceFn;
use crate::error::Result;
use serde::Serialize;
use std::sync::Arc;

/// One value per key and namespace into which added values are folded with a reduce function.
pub struct ReducingState<V, E: StateEngine + ?Sized = dyn StateBackend> {
    handle: StateHandle<E>,
    codec: HandleCodec<V>,
    reduce: ReduceFn<V>,
}

impl<V: 'static, E: StateEngine + ?Sized> ReducingState<V, E> {
    pub(crate) fn new(
        handle: StateHandle<E>,
        codec: Arc<dyn Codec<V>>,
        reduce: ReduceFn<V>,
    ) -> Self {
        ReducingState {
            handle,
            codec: HandleCodec::new(codec),
            reduce,
        }
    }

    pub fn name(&self) -> &str {
        self.handle.name()
    }

    pub fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.handle.set_namespace(namespace)
    }

    pub fn get(&self) -> Result<Option<V>> {
        self.handle.read(None, &self.codec)
    }

    /// Folds `value` into the current key's value (or stores it, when there is none).
    pub fn add(&self, value: &V) -> Result<()> {
        // The reduce function runs outside the backend's lock, so it may touch other state.
        match self.get()? {
            Some(current) => self
                .handle
                .write(None, &self.codec, &(self.reduce)(&current, value)),
            None => self.handle.write(None, &self.codec, value),
        }
    }

    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }

    /// Reduces the values of `sources` into the value of `target` (session windows).
    pub fn merge_namespaces<N: Serialize>(&self, target: &N, sources: &[N]) -> Result<()> {
        self.handle
            .merge_values(&self.codec, target, sources, |a, b| (self.reduce)(&a, &b))
    }
}
