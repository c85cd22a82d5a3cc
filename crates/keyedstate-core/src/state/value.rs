use super::StateHandle;
use crate::codec::Codec;
use crate::error::Result;
use serde::Serialize;
use std::sync::Arc;

/// One value per key and namespace.
pub struct ValueState<V> {
    handle: StateHandle,
    codec: Arc<dyn Codec<V>>,
}

impl<V: 'static> ValueState<V> {
    pub(crate) fn new(handle: StateHandle, codec: Arc<dyn Codec<V>>) -> Self {
        ValueState { handle, codec }
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
        self.handle.read(None, &*self.codec)
    }

    /// Replaces the value of the current key.
    pub fn update(&self, value: &V) -> Result<()> {
        self.handle.write(None, &*self.codec, value)
    }

    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }
}
