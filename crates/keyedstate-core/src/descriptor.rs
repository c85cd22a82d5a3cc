//! State descriptors: how a state is registered (name, kind, codecs, functions), and the
//! persisted [`StateMeta`] that later registrations and restores are checked against.

use crate::codec::{Codec, StateCodec};
use crate::error::{Error, Result};
use crate::ttl::{StateTtlConfig, TtlMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The five keyed state kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateKind {
    Value,
    List,
    Map,
    Reducing,
    Aggregating,
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::Reducing => "reducing",
            StateKind::Aggregating => "aggregating",
        })
    }
}

/// What a backend records of a registered state. A registration under an existing name must
/// match it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMeta {
    pub name: String,
    pub kind: StateKind,
    /// Codec id of the stored value (the accumulator for aggregating state).
    pub value_codec: String,
    /// Codec id of the map user key; `None` for other kinds.
    pub user_key_codec: Option<String>,
    /// The state's time to live, if it has one: values then carry a timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlMeta>,
}

impl StateMeta {
    /// Checks that a state called `requested.name` may be accessed as `requested` when it was
    /// registered as `self`.
    pub fn check_compatible(&self, requested: &StateMeta) -> Result<()> {
        if self.kind != requested.kind {
            return Err(Error::incompatible_state(format!(
                "state '{}' is registered as {} state, not as {} state",
                self.name, self.kind, requested.kind
            )));
        }
        if self.value_codec != requested.value_codec {
            return Err(Error::incompatible_state(format!(
                "state '{}' stores values with codec '{}', not '{}'",
                self.name, self.value_codec, requested.value_codec
            )));
        }
        match (self.ttl, requested.ttl) {
            (None, Some(_)) | (Some(_), None) => {
                return Err(Error::incompatible_state(format!(
                    "state '{}' was registered {} a TTL: turning TTL on or off for an existing \
                     state is not supported (its stored values {} timestamps)",
                    self.name,
                    if self.ttl.is_some() {
                        "with"
                    } else {
                        "without"
                    },
                    if self.ttl.is_some() {
                        "carry"
                    } else {
                        "carry no"
                    }
                )));
            }
            // Another duration is allowed, as in Flink: the stored timestamps are last-access
            // times, judged by whichever TTL the state is registered with now.
            _ => {}
        }
        if self.user_key_codec != requested.user_key_codec {
            return Err(Error::incompatible_state(format!(
                "state '{}' stores map keys with codec '{}', not '{}'",
                self.name,
                self.user_key_codec.as_deref().unwrap_or("-"),
                requested.user_key_codec.as_deref().unwrap_or("-")
            )));
        }
        Ok(())
    }
}

/// Checks a state name: 1..=255 bytes, not `default` (RocksDB's default column family stays
/// unused), no control characters (names appear in file listings and messages).
pub fn check_state_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::invalid_argument(format!(
            "state name '{name}' must be 1 to 255 bytes long"
        )));
    }
    if name == "default" {
        return Err(Error::invalid_argument("state name 'default' is reserved"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_argument(format!(
            "state name {name:?} contains a control character"
        )));
    }
    Ok(())
}

/// Describes a value state holding one `V` per key and namespace.
pub struct ValueStateDescriptor<V> {
    pub(crate) name: String,
    pub(crate) codec: Arc<dyn Codec<V>>,
    pub(crate) ttl: Option<StateTtlConfig>,
}

impl<V: Serialize + DeserializeOwned + 'static> ValueStateDescriptor<V> {
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_codec(name, StateCodec::new())
    }
}

impl<V> ValueStateDescriptor<V> {
    pub fn with_codec(name: impl Into<String>, codec: impl Codec<V>) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            codec: Arc::new(codec),
            ttl: None,
        }
    }
}

/// Describes a list state holding a list of `V` per key and namespace.
pub struct ListStateDescriptor<V> {
    pub(crate) name: String,
    pub(crate) codec: Arc<dyn Codec<V>>,
    pub(crate) ttl: Option<StateTtlConfig>,
}

impl<V: Serialize + DeserializeOwned + 'static> ListStateDescriptor<V> {
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_codec(name, StateCodec::new())
    }
}

impl<V> ListStateDescriptor<V> {
    pub fn with_codec(name: impl Into<String>, codec: impl Codec<V>) -> Self {
        ListStateDescriptor {
            name: name.into(),
            codec: Arc::new(codec),
            ttl: None,
        }
    }
}

/// Describes a map state holding a map from `UK` to `UV` per key and namespace.
pub struct MapStateDescriptor<UK, UV> {
    pub(crate) name: String,
    pub(crate) key_codec: Arc<dyn Codec<UK>>,
    pub(crate) value_codec: Arc<dyn Codec<UV>>,
    pub(crate) ttl: Option<StateTtlConfig>,
}

impl<UK, UV> MapStateDescriptor<UK, UV>
where
    UK: Serialize + DeserializeOwned + 'static,
    UV: Serialize + DeserializeOwned + 'static,
{
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_codecs(name, StateCodec::new(), StateCodec::new())
    }
}

impl<UK, UV> MapStateDescriptor<UK, UV> {
    pub fn with_codecs(
        name: impl Into<String>,
        key_codec: impl Codec<UK>,
        value_codec: impl Codec<UV>,
    ) -> Self {
        MapStateDescriptor {
            name: name.into(),
            key_codec: Arc::new(key_codec),
            value_codec: Arc::new(value_codec),
            ttl: None,
        }
    }
}

/// Combines two values into one; must be associative for merged namespaces to be meaningful.
pub type ReduceFn<V> = Arc<dyn Fn(&V, &V) -> V + Send + Sync>;

/// Describes a reducing state: values added are folded into one with a reduce function.
pub struct ReducingStateDescriptor<V> {
    pub(crate) name: String,
    pub(crate) codec: Arc<dyn Codec<V>>,
    pub(crate) reduce: ReduceFn<V>,
    pub(crate) ttl: Option<StateTtlConfig>,
}

impl<V: Serialize + DeserializeOwned + 'static> ReducingStateDescriptor<V> {
    pub fn new(
        name: impl Into<String>,
        reduce: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> Self {
        Self::with_codec(name, reduce, StateCodec::new())
    }
}

impl<V> ReducingStateDescriptor<V> {
    pub fn with_codec(
        name: impl Into<String>,
        reduce: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        codec: impl Codec<V>,
    ) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            codec: Arc::new(codec),
            reduce: Arc::new(reduce),
            ttl: None,
        }
    }
}

/// Folds inputs into an accumulator and reads a result from it, like Flink's
/// `AggregateFunction`.
pub trait AggregateFunction: Send + Sync + 'static {
    type In;
    type Acc;
    type Out;
    fn create_accumulator(&self) -> Self::Acc;
    fn add(&self, value: &Self::In, accumulator: Self::Acc) -> Self::Acc;
    fn result(&self, accumulator: &Self::Acc) -> Self::Out;
    /// Combines two accumulators, for merged namespaces (session windows).
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
}

/// Describes an aggregating state: the stored accumulator has codec `Acc`.
pub struct AggregatingStateDescriptor<F: AggregateFunction> {
    pub(crate) name: String,
    pub(crate) codec: Arc<dyn Codec<F::Acc>>,
    pub(crate) function: Arc<F>,
    pub(crate) ttl: Option<StateTtlConfig>,
}

impl<F> AggregatingStateDescriptor<F>
where
    F: AggregateFunction,
    F::Acc: Serialize + DeserializeOwned + 'static,
{
    pub fn new(name: impl Into<String>, function: F) -> Self {
        Self::with_codec(name, function, StateCodec::new())
    }
}

impl<F: AggregateFunction> AggregatingStateDescriptor<F> {
    pub fn with_codec(name: impl Into<String>, function: F, codec: impl Codec<F::Acc>) -> Self {
        AggregatingStateDescriptor {
            name: name.into(),
            codec: Arc::new(codec),
            function: Arc::new(function),
            ttl: None,
        }
    }
}

impl<V> ValueStateDescriptor<V> {
    /// Gives the state a time to live (see [`StateTtlConfig`]).
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<V> ListStateDescriptor<V> {
    /// Gives the state a time to live: each element expires on its own.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<UK, UV> MapStateDescriptor<UK, UV> {
    /// Gives the state a time to live: each map entry expires on its own.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<V> ReducingStateDescriptor<V> {
    /// Gives the state a time to live (see [`StateTtlConfig`]).
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

impl<F: AggregateFunction> AggregatingStateDescriptor<F> {
    /// Gives the state a time to live (see [`StateTtlConfig`]).
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}
