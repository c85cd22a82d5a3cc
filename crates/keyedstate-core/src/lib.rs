//! keyedstate-core: the traits and formats every keyedstate backend shares, with no storage
//! engine dependency.
//!
//! - [`key_group`]: max parallelism, key groups and their assignment to subtasks;
//! - [`key_layout`]: the bytes of state entry keys and list values;
//! - [`codec`]: value codecs (serde + bincode 2);
//! - [`descriptor`]: state descriptors and persisted state meta info;
//! - [`backend`]: [`StateBackend`], the engine trait the heap and RocksDB backends implement;
//! - [`checkpoint`]: checkpoint storage, metadata, full snapshots, digests, the coordinator;
//! - [`job`]: job-level checkpoints of all the subtasks of an operator;
//! - [`KeyedStateBackend`] and the state handles: the typed API a stream processor uses.

pub mod backend;
pub mod checkpoint;
pub mod codec;
pub mod descriptor;
mod error;
pub mod job;
pub mod key_group;
pub mod key_layout;
mod keyed;
pub mod metrics;
mod murmur3;
pub mod operator;
pub mod phase;
pub mod sorted_table;
mod state;
pub mod timers;
pub mod ttl;
pub mod unique;

pub use backend::{
    AsDynBackend, AsyncSnapshot, EntryKey, KeyGroupSource, RawEntry, StateBackend, StateEngine,
    StateId,
};
pub use checkpoint::{SnapshotKind, StateDigest};
pub use codec::{BincodeCodec, Codec, SerdeCodec, StateCodec};
pub use descriptor::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateKind, StateMeta, ValueStateDescriptor,
};
pub use error::{CheckpointDeclined, Error, ErrorKind, Result};
pub use key_group::{KeyGroupRange, MaxParallelism};
pub use keyed::{KeyIter, KeyedStateBackend, PendingSnapshot, StateKey};
pub use murmur3::murmur3_32;
pub use operator::{BroadcastState, OperatorListState, OperatorStateBackend, OperatorStateKind};
pub use sorted_table::SortedTable;
pub use state::{AggregatingState, ListState, MapIter, MapState, ReducingState, ValueState};
pub use timers::{FiredTimer, TimeDomain, TimerService};
pub use ttl::{Clock, ManualClock, StateTtlConfig, SystemClock, TtlUpdateType, TtlVisibility};
