use super::StateHandle;
use crate::codec::Codec;
use crate::error::Result;
use serde::Serialize;
use std::ops::ControlFlow;
use std::sync::Arc;

/// A map from user keys to values per key and namespace; each map entry is one engine entry.
pub struct MapState<UK, UV> {
    handle: StateHandle,
    key_codec: Arc<dyn Codec<UK>>,
    value_codec: Arc<dyn Codec<UV>>,
}

impl<UK: 'static, UV: 'static> MapState<UK, UV> {
    pub(crate) fn new(
        handle: StateHandle,
        key_codec: Arc<dyn Codec<UK>>,
        value_codec: Arc<dyn Codec<UV>>,
    ) -> Self {
        MapState {
            handle,
            key_codec,
            value_codec,
        }
    }

    pub fn name(&self) -> &str {
        self.handle.name()
    }

    pub fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.handle.set_namespace(namespace)
    }

    pub fn get(&self, user_key: &UK) -> Result<Option<UV>> {
        self.handle.with(|a| {
            a.scratch.user_key.clear();
            self.key_codec.encode(user_key, &mut a.scratch.user_key)?;
            if a.engine
                .map_get(a.id, a.key, &a.scratch.user_key, &mut a.scratch.value)?
            {
                self.value_codec.decode(&a.scratch.value).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    pub fn contains(&self, user_key: &UK) -> Result<bool> {
        self.handle.with(|a| {
            a.scratch.user_key.clear();
            self.key_codec.encode(user_key, &mut a.scratch.user_key)?;
            a.engine
                .map_get(a.id, a.key, &a.scratch.user_key, &mut a.scratch.value)
        })
    }

    pub fn put(&self, user_key: &UK, value: &UV) -> Result<()> {
        self.handle.with(|a| {
            a.scratch.user_key.clear();
            self.key_codec.encode(user_key, &mut a.scratch.user_key)?;
            a.scratch.value.clear();
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

    /// Visits the map of the current key entry by entry, without collecting it.
    pub fn for_each(&self, mut f: impl FnMut(UK, UV) -> Result<ControlFlow<()>>) -> Result<()> {
        self.handle.with(|a| {
            a.engine.map_scan(a.id, a.key, &mut |k, v| {
                f(self.key_codec.decode(k)?, self.value_codec.decode(v)?)
            })
        })
    }

    /// The entries of the current key's map, in the engine's order.
    pub fn entries(&self) -> Result<Vec<(UK, UV)>> {
        let mut entries = Vec::new();
        self.for_each(|k, v| {
            entries.push((k, v));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(entries)
    }

    pub fn keys(&self) -> Result<Vec<UK>> {
        let mut keys = Vec::new();
        self.handle.with(|a| {
            a.engine.map_scan(a.id, a.key, &mut |k, _| {
                keys.push(self.key_codec.decode(k)?);
                Ok(ControlFlow::Continue(()))
            })
        })?;
        Ok(keys)
    }

    pub fn values(&self) -> Result<Vec<UV>> {
        let mut values = Vec::new();
        self.handle.with(|a| {
            a.engine.map_scan(a.id, a.key, &mut |_, v| {
                values.push(self.value_codec.decode(v)?);
                Ok(ControlFlow::Continue(()))
            })
        })?;
        Ok(values)
    }

    pub fn is_empty(&self) -> Result<bool> {
        let mut empty = true;
        self.handle.with(|a| {
            a.engine.map_scan(a.id, a.key, &mut |_, _| {
                empty = false;
                Ok(ControlFlow::Break(()))
            })
        })?;
        Ok(empty)
    }

    /// Removes every entry of the current key's map.
    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }
}
