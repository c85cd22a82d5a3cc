//! Typed state handles. Each holds the backend it belongs to, its state id and its current
//! namespace (serialized once, when it is set).

mod aggregating;
mod list;
mod map;
mod reducing;
mod value;

pub use aggregating::AggregatingState;
pub use list::ListState;
pub use map::{MapIter, MapState};
pub use reducing::ReducingState;
pub use value::ValueState;

use crate::backend::{EntryKey, StateBackend, StateEngine, StateId};
use crate::codec::{self, Codec};
use crate::error::Error;
use crate::error::Result;
use crate::key_layout::put_framed;
use crate::keyed::{Scratch, SharedCell, StateKey, lock};
use crate::metrics::LatencySampler;
use crate::ttl::{
    Clock, StateTtlConfig, TtlUpdateType, TtlVisibility, is_expired, put_timestamp, split_timestamp,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What an access sees: the engine, the entry key of the current key and namespace, and scratch
/// buffers.
pub(crate) struct Access<'a, E: ?Sized = dyn StateBackend> {
    pub(crate) engine: &'a mut E,
    pub(crate) id: StateId,
    pub(crate) key: EntryKey<'a>,
    pub(crate) scratch: &'a mut Scratch,
}

pub(crate) struct StateHandle<E: ?Sized = dyn StateBackend> {
    shared: SharedCell<E>,
    id: StateId,
    name: Arc<str>,
    /// The framed serialized namespace.
    namespace: Vec<u8>,
    /// The state's TTL and the clock it is judged by.
    ttl: Option<(StateTtlConfig, Arc<dyn Clock>)>,
    /// Samples access latency, when tracking is on.
    sampler: Option<Arc<LatencySampler>>,
    /// Neither TTL nor latency sampling: a read is the engine call and the decode
    /// ([`Self::read_plain`]).
    plain: bool,
}

/// What a state's TTL makes of a stored (timestamped) value at some time.
pub(crate) enum Judged<'b> {
    /// It may be returned; `renew` when its timestamp must be set to now (read-and-write).
    Visible { value: &'b [u8], renew: bool },
    /// It has expired: it is removed on this read, and returned (`returned`) only with
    /// [`TtlVisibility::ReturnExpiredIfNotCleanedUp`], as Flink's TTL states do.
    Expired { returned: Option<&'b [u8]> },
}

/// Judges `stamped` (timestamp plus value) at `now`.
pub(crate) fn judge<'b>(
    config: &StateTtlConfig,
    now: u64,
    stamped: &'b [u8],
) -> Result<Judged<'b>> {
    let (last_access, value) = split_timestamp(stamped).ok_or_else(|| {
        Error::corruption("a value of a state with TTL is shorter than its timestamp")
    })?;
    if is_expired(last_access, config.ttl_millis(), now) {
        let returned = match config.visibility {
            TtlVisibility::NeverReturnExpired => None,
            TtlVisibility::ReturnExpiredIfNotCleanedUp => Some(value),
        };
        return Ok(Judged::Expired { returned });
    }
    Ok(Judged::Visible {
        value,
        renew: config.update_type == TtlUpdateType::OnReadAndWrite,
    })
}

impl<E: StateEngine + ?Sized> StateHandle<E> {
    pub(crate) fn new(
        shared: SharedCell<E>,
        id: StateId,
        name: &str,
        ttl: Option<(StateTtlConfig, Arc<dyn Clock>)>,
        sampler: Option<Arc<LatencySampler>>,
    ) -> Result<Self> {
        // A state starts in the void namespace `()`, which serializes to no bytes.
        Ok(StateHandle {
            shared,
            id,
            name: name.into(),
            namespace: framed_namespace(&())?,
            plain: ttl.is_none() && sampler.is_none(),
            ttl,
            sampler,
        })
    }

    /// The state's TTL configuration and the current time by its clock, if it has a TTL.
    #[inline]
    pub(crate) fn ttl_now(&self) -> Option<(&StateTtlConfig, u64)> {
        self.ttl
            .as_ref()
            .map(|(config, clock)| (config, clock.now_millis()))
    }

    /// Whether the state has a TTL (its values start with a timestamp).
    #[inline]
    pub(crate) fn has_ttl(&self) -> bool {
        self.ttl.is_some()
    }

    /// Appends the timestamp a value of this state starts with (nothing without a TTL).
    pub(crate) fn stamp(&self, out: &mut Vec<u8>) {
        if let Some((_, clock)) = &self.ttl {
            put_timestamp(out, clock.now_millis());
        }
    }

    /// The value inside stored bytes, if it may be returned now.
    pub(crate) fn visible<'b>(&self, stored: &'b [u8]) -> Result<Option<&'b [u8]>> {
        match self.ttl_now() {
            None => Ok(Some(stored)),
            Some((config, now)) => Ok(match judge(config, now, stored)? {
                Judged::Visible { value, .. } => Some(value),
                Judged::Expired { returned } => returned,
            }),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn set_namespace<N: Serialize + ?Sized>(&mut self, namespace: &N) -> Result<()> {
        self.namespace = framed_namespace(namespace)?;
        Ok(())
    }

    /// Runs `f` on the entry of the current key in the handle's namespace.
    pub(crate) fn with<R>(&self, f: impl FnOnce(Access<'_, E>) -> Result<R>) -> Result<R> {
        self.with_namespace(&self.namespace, f)
    }

    /// Runs `f` on the entry of the current key in `namespace` (framed).
    #[inline]
    pub(crate) fn with_namespace<R>(
        &self,
        namespace: &[u8],
        f: impl FnOnce(Access<'_, E>) -> Result<R>,
    ) -> Result<R> {
        let Some(sampler) = self.sampler.as_ref().filter(|s| s.tick()) else {
            return self.access(namespace, f);
        };
        let started = Instant::now();
        let result = self.access(namespace, f);
        sampler.record(started.elapsed());
        result
    }

    /// [`Self::with_namespace`] without latency sampling.
    #[inline]
    fn access<R>(&self, namespace: &[u8], f: impl FnOnce(Access<'_, E>) -> Result<R>) -> Result<R> {
        let mut guard = lock(&self.shared).map_err(|e| self.context(e))?;
        let shared = &mut *guard;
        let result = match shared.prepare(namespace) {
            Ok((key_group, prefix_len)) => f(Access {
                engine: &mut *shared.engine,
                id: self.id,
                key: EntryKey::new(&shared.entry, key_group, prefix_len),
                scratch: &mut shared.scratch,
            }),
            Err(e) => Err(e),
        };
        result.map_err(|e| self.context(e))
    }

    /// `e` with the state's name.
    #[cold]
    fn context(&self, e: Error) -> Error {
        e.context(format_args!("state '{}'", self.name))
    }

    /// Runs `f` on the engine with the entry keys of `keys` in the handle's namespace (the batch
    /// calls); the current key stays as it was.
    pub(crate) fn with_keys<'k, K: StateKey + 'k, R>(
        &self,
        keys: impl IntoIterator<Item = &'k K>,
        f: impl FnOnce(&mut E, StateId, &[EntryKey<'_>], &mut Scratch) -> Result<R>,
    ) -> Result<R> {
        let mut guard = lock(&self.shared).map_err(|e| self.context(e))?;
        guard
            .with_batch_keys(keys, &self.namespace, |engine, entry_keys, scratch| {
                f(engine, self.id, entry_keys, scratch)
            })
            .map_err(|e| self.context(e))
    }

    /// The values of `keys` in the handle's namespace, decoded, in order: what [`Self::read`]
    /// returns for each as the current key, TTL included (expired values are removed, renewed
    /// ones rewritten).
    pub(crate) fn read_batch<K: StateKey, T: 'static, C: Codec<T> + ?Sized>(
        &self,
        keys: &[K],
        codec: &C,
    ) -> Result<Vec<Option<T>>> {
        let ttl = self.ttl_now();
        self.with_keys(keys, |engine, id, entry_keys, scratch| {
            if ttl.is_some() {
                // Each value judged and, when expired or renewed, rewritten as a read does (a
                // key twice in the batch is judged twice, as two reads are).
                return entry_keys
                    .iter()
                    .map(|&key| read_entry(engine, id, key, scratch, ttl, codec))
                    .collect();
            }
            let mut values: Vec<Option<T>> = std::iter::repeat_with(|| None)
                .take(entry_keys.len())
                .collect();
            engine.multi_get(id, entry_keys, &mut |i, stored| {
                values[i] = stored.map(|v| codec.decode(v)).transpose()?;
                Ok(())
            })?;
            Ok(values)
        })
    }

    /// Encodes and stores each `(key, value)` in the handle's namespace, in order: what
    /// [`Self::write`] does for each as the current key.
    pub(crate) fn write_batch<K: StateKey, T: 'static, C: Codec<T> + ?Sized>(
        &self,
        entries: &[(K, T)],
        codec: &C,
    ) -> Result<()> {
        // The keys first (one buffer), then the values (another), then one engine call.
        let mut encoded = Vec::new();
        let mut ends = Vec::with_capacity(entries.len());
        for (_, value) in entries {
            self.stamp(&mut encoded);
            codec.encode(value, &mut encoded)?;
            ends.push(encoded.len());
        }
        let values = split_at_ends(&encoded, &ends);
        self.with_keys(
            entries.iter().map(|(key, _)| key),
            |engine, id, entry_keys, _| engine.put_batch(id, entry_keys, &values),
        )
    }

    /// Reads and decodes the current key's entry in `namespace` (framed; `None`: the handle's).
    #[inline]
    pub(crate) fn read<T: 'static, C: Codec<T> + ?Sized>(
        &self,
        namespace: Option<&[u8]>,
        codec: &C,
    ) -> Result<Option<T>> {
        match namespace {
            None if self.plain => self.read_plain(codec),
            _ => self.read_judged(namespace, codec),
        }
    }

    /// [`Self::read`] in the handle's namespace of a state without TTL or latency sampling,
    /// the common case: the engine's bytes decoded, nothing else on the way.
    #[inline]
    fn read_plain<T: 'static, C: Codec<T> + ?Sized>(&self, codec: &C) -> Result<Option<T>> {
        self.access(&self.namespace, |a| {
            match a.engine.get_ref(a.id, a.key)? {
                Some(bytes) => codec.decode(bytes).map(Some),
                None => Ok(None),
            }
        })
    }

    /// [`Self::read`] with the state's TTL and latency sampling.
    fn read_judged<T: 'static, C: Codec<T> + ?Sized>(
        &self,
        namespace: Option<&[u8]>,
        codec: &C,
    ) -> Result<Option<T>> {
        let ttl = self.ttl_now();
        self.with_namespace(namespace.unwrap_or(&self.namespace), |a| {
            read_entry(a.engine, a.id, a.key, a.scratch, ttl, codec)
        })
    }

    /// Encodes and stores `value` as the current key's entry in `namespace` (`None`: the
    /// handle's).
    pub(crate) fn write<T: 'static, C: Codec<T> + ?Sized>(
        &self,
        namespace: Option<&[u8]>,
        codec: &C,
        value: &T,
    ) -> Result<()> {
        self.with_namespace(namespace.unwrap_or(&self.namespace), |a| {
            a.scratch.value.clear();
            self.stamp(&mut a.scratch.value);
            codec.encode(value, &mut a.scratch.value)?;
            a.engine.put(a.id, a.key, &a.scratch.value)
        })
    }

    /// Appends `frames` (framed list elements) to the current key's list in the handle's
    /// namespace.
    #[inline]
    pub(crate) fn append(&self, frames: &[u8]) -> Result<()> {
        self.with(|a| a.engine.append(a.id, a.key, frames))
    }

    /// Deletes the current key's entry in the handle's namespace.
    pub(crate) fn delete(&self) -> Result<()> {
        self.with(|a| a.engine.delete(a.id, a.key))
    }

    /// Folds the current key's values in `sources` into its value in `target`, deleting the
    /// sources (session windows merging). As Flink, the sources are read (and removed) first and
    /// their fold is then combined with what the target holds: a target that is also among the
    /// sources counts once.
    pub(crate) fn merge_values<T: 'static, N: Serialize, C: Codec<T> + ?Sized>(
        &self,
        codec: &C,
        target: &N,
        sources: &[N],
        combine: impl Fn(T, T) -> T,
    ) -> Result<()> {
        let mut merged = None;
        for raw in self.take_raw(sources)? {
            let Some(value) = self.visible(&raw)? else {
                continue;
            };
            let value = codec.decode(value)?;
            merged = Some(match merged {
                Some(acc) => combine(acc, value),
                None => value,
            });
        }
        let Some(merged) = merged else {
            return Ok(());
        };
        let target = framed_namespace(target)?;
        let value = match self.read(Some(&target), codec)? {
            Some(existing) => combine(existing, merged),
            None => merged,
        };
        self.write(Some(&target), codec, &value)
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

/// Reads and decodes the entry at `key`, applying the state's TTL (`ttl`: its configuration and
/// now): an expired value is removed (and returned only if the visibility says so), a renewed
/// one rewritten with the new timestamp.
#[inline]
fn read_entry<T: 'static, E: StateBackend + ?Sized, C: Codec<T> + ?Sized>(
    engine: &mut E,
    id: StateId,
    key: EntryKey<'_>,
    scratch: &mut Scratch,
    ttl: Option<(&StateTtlConfig, u64)>,
    codec: &C,
) -> Result<Option<T>> {
    let Some((config, now)) = ttl else {
        // No TTL: decoded from the engine's own bytes.
        return engine
            .get_ref(id, key)?
            .map(|v| codec.decode(v))
            .transpose();
    };
    // A TTL may delete or rewrite the entry: its bytes are copied out of the engine first.
    if !engine.get(id, key, &mut scratch.value)? {
        return Ok(None);
    }
    let Scratch {
        value: stored,
        user_key: renewed,
    } = scratch;
    match judge(config, now, stored)? {
        Judged::Expired { returned } => {
            let returned = returned.map(|v| codec.decode(v)).transpose()?;
            engine.delete(id, key)?;
            Ok(returned)
        }
        Judged::Visible { value, renew } => {
            let decoded = codec.decode(value)?;
            if renew {
                renewed.clear();
                put_timestamp(renewed, now);
                renewed.extend_from_slice(value);
                engine.put(id, key, renewed)?;
            }
            Ok(Some(decoded))
        }
    }
}

/// The consecutive parts of `bytes` ending at `ends` (the encodings of a batch, one buffer).
pub(crate) fn split_at_ends<'b>(bytes: &'b [u8], ends: &[usize]) -> Vec<&'b [u8]> {
    ends.iter()
        .scan(0, |start, &end| {
            let part = &bytes[*start..end];
            *start = end;
            Some(part)
        })
        .collect()
}

/// The framed `ks1` encoding of a namespace.
pub(crate) fn framed_namespace<N: Serialize + ?Sized>(namespace: &N) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    codec::encode(namespace, &mut raw)?;
    let mut framed = Vec::with_capacity(raw.len() + 1);
    put_framed(&mut framed, &raw);
    Ok(framed)
}
