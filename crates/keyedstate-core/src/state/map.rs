use super::{Judged, StateHandle, judge};
use crate::codec::Codec;
use crate::error::Result;
use crate::keyed::Scratch;
use crate::ttl::put_timestamp;
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
        let ttl = self.handle.ttl_now();
        self.handle.with(|a| {
            let Scratch {
                value: stored,
                user_key: key,
            } = &mut *a.scratch;
            key.clear();
            self.key_codec.encode(user_key, key)?;
            if !a.engine.map_get(a.id, a.key, key, stored)? {
                return Ok(None);
            }
            let Some((config, now)) = ttl else {
                return self.value_codec.decode(stored).map(Some);
            };
            match judge(config, now, stored)? {
                Judged::Expired => {
                    a.engine.map_remove(a.id, a.key, key)?;
                    Ok(None)
                }
                Judged::Visible { value, renew } => {
                    let decoded = self.value_codec.decode(value)?;
                    if renew {
                        let mut restamped = Vec::with_capacity(stored.len());
                        put_timestamp(&mut restamped, now);
                        restamped.extend_from_slice(value);
                        a.engine.map_put(a.id, a.key, key, &restamped)?;
                    }
                    Ok(Some(decoded))
                }
            }
        })
    }

    pub fn contains(&self, user_key: &UK) -> Result<bool> {
        Ok(self.get(user_key)?.is_some())
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

    /// Visits the current key's map as (user key, value) bytes, leaving out expired entries.
    fn scan(&self, mut f: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>) -> Result<()> {
        self.handle.with(|a| {
            a.engine
                .map_scan(a.id, a.key, &mut |k, v| match self.handle.visible(v)? {
                    Some(value) => f(k, value),
                    None => Ok(ControlFlow::Continue(())),
                })
        })
    }

    /// Visits the map of the current key entry by entry, without collecting it.
    pub fn for_each(&self, mut f: impl FnMut(UK, UV) -> Result<ControlFlow<()>>) -> Result<()> {
        self.scan(|k, v| f(self.key_codec.decode(k)?, self.value_codec.decode(v)?))
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
        self.scan(|k, _| {
            keys.push(self.key_codec.decode(k)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(keys)
    }

    pub fn values(&self) -> Result<Vec<UV>> {
        let mut values = Vec::new();
        self.scan(|_, v| {
            values.push(self.value_codec.decode(v)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(values)
    }

    pub fn is_empty(&self) -> Result<bool> {
        let mut empty = true;
        self.scan(|_, _| {
            empty = false;
            Ok(ControlFlow::Break(()))
        })?;
        Ok(empty)
    }

    /// Removes every entry of the current key's map.
    pub fn clear(&self) -> Result<()> {
        self.handle.delete()
    }
}
