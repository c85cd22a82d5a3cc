//! Typed state handles. Each holds the backend it belongs to, its state id and its current
//! namespace (serialized once, when it is set).

mod aggregating;
mod list;
mod map;
mod reducing;
mod value;

pub use aggregating::AggregatingState;
pub use list::ListState;
pub use map::MapState;
pub use reducing::ReducingState;
pub use value::ValueState;

use crate::backend::{EntryKey, StateBackend, StateId};
use crate::codec::{Codec, bincode_encode};
use crate::error::Result;
use crate::key_layout::put_framed;
use crate::keyed::{Scratch, Shared, lock};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// What an access sees: the engine, the entry key of the current key and namespace, and scratch
/// buffers.
pub(crate) struct Access<'a> {
    pub(crate) engine: &'a mut dyn StateBackend,
    pub(crate) id: StateId,
    pub(crate) key: EntryKey<'a>,
    pub(crate) scratch: &'a mut Scratch,
}

pub(crate) struct StateHandle {
    shared: Arc<Mutex<Shared>>,
    id: StateId,
    name: Arc<str>,
    /// The framed serialized namespace.
    namespace: Vec<u8>,
}

impl StateHandle {
    pub(crate) fn new(shared: Arc<Mutex<Shared>>, id: StateId, name: &str) -> Result<Self> {
        // A state starts in the void namespace `()`, which serializes to no bytes.
        Ok(StateHandle {
            shared,
            id,
            name: name.into(),
            namespace: framed_namespace(&())?,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.namespace = framed_namespace(namespace)?;
        Ok(())
    }

    /// Runs `f` on the entry of the current key in the handle's namespace.
    pub(crate) fn with<R>(&self, f: impl FnOnce(Access<'_>) -> Result<R>) -> Result<R> {
        self.with_namespace(&self.namespace, f)
    }

    /// Runs `f` on the entry of the current key in `namespace` (framed).
    pub(crate) fn with_namespace<R>(
        &self,
        namespace: &[u8],
        f: impl FnOnce(Access<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        let result = shared
            .prepare(namespace)
            .and_then(|(key_group, prefix_len)| {
                f(Access {
                    engine: &mut *shared.engine,
                    id: self.id,
                    key: EntryKey::new(&shared.entry, key_group, prefix_len),
                    scratch: &mut shared.scratch,
                })
            });
        result.map_err(|e| e.context(format_args!("state '{}'", self.name)))
    }

    /// Reads and decodes the current key's entry in `namespace` (framed; `None`: the handle's).
    pub(crate) fn read<T: 'static>(
        &self,
        namespace: Option<&[u8]>,
        codec: &dyn Codec<T>,
    ) -> Result<Option<T>> {
        self.with_namespace(namespace.unwrap_or(&self.namespace), |a| {
            if a.engine.get(a.id, a.key, &mut a.scratch.value)? {
                codec.decode(&a.scratch.value).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Encodes and stores `value` as the current key's entry in `namespace` (`None`: the
    /// handle's).
    pub(crate) fn write<T: 'static>(
        &self,
        namespace: Option<&[u8]>,
        codec: &dyn Codec<T>,
        value: &T,
    ) -> Result<()> {
        self.with_namespace(namespace.unwrap_or(&self.namespace), |a| {
            a.scratch.value.clear();
            codec.encode(value, &mut a.scratch.value)?;
            a.engine.put(a.id, a.key, &a.scratch.value)
        })
    }

    /// Deletes the current key's entry in the handle's namespace.
    pub(crate) fn delete(&self) -> Result<()> {
        self.with(|a| a.engine.delete(a.id, a.key))
    }

    /// Folds the current key's values in `sources` into its value in `target`, deleting the
    /// sources (session windows merging).
    pub(crate) fn merge_values<T: 'static, N: Serialize>(
        &self,
        codec: &dyn Codec<T>,
        target: &N,
        sources: &[N],
        combine: impl Fn(T, T) -> T,
    ) -> Result<()> {
        let target = framed_namespace(target)?;
        let mut merged = self.read(Some(&target), codec)?;
        for raw in self.take_raw(sources)? {
            let value = codec.decode(&raw)?;
            merged = Some(match merged {
                Some(acc) => combine(acc, value),
                None => value,
            });
        }
        match merged {
            Some(value) => self.write(Some(&target), codec, &value),
            None => Ok(()),
        }
    }

    /// Reads and deletes the raw entry of the current key in each of `namespaces`, for merging
    /// namespaces (session windows).
    pub(crate) fn take_raw<N: Serialize>(&self, namespaces: &[N]) -> Result<Vec<Vec<u8>>> {
        let mut taken = Vec::new();
        for namespace in namespaces {
            let framed = framed_namespace(namespace)?;
            self.with_namespace(&framed, |a| {
                if a.engine.get(a.id, a.key, &mut a.scratch.value)? {
                    taken.push(a.scratch.value.clone());
                    a.engine.delete(a.id, a.key)?;
                }
                Ok(())
            })?;
        }
        Ok(taken)
    }
}

/// The framed bincode encoding of a namespace.
pub(crate) fn framed_namespace<N: Serialize + ?Sized>(namespace: &N) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    bincode_encode(namespace, &mut raw)?;
    let mut framed = Vec::with_capacity(raw.len() + 1);
    put_framed(&mut framed, &raw);
    Ok(framed)
}
