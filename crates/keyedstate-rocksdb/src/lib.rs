//! keyedstate-rocksdb: the RocksDB backend, the engine for state larger than memory.
//!
//! One RocksDB instance per subtask, one column family per registered state, every key prefixed
//! with its key group (see `docs/formats.md`), list appends through a merge operator, writes to
//! a write-ahead log that checkpoints copy (no flush per checkpoint), and one memory budget
//! shared by every instance of the process.

mod backend;
mod baseline;
mod batch_rep;
mod config;
mod error;
mod ffi;
mod memory;
mod memtable;
mod merge;
mod restore;
mod snapshot;
mod transfer;
mod write_buffer;

pub use backend::RocksDbBackend;
pub use baseline::RawBaseline;
pub use config::{Memtable, OptionsProfile, RescaleMethod, RocksDbConfig, TimerStore};
pub use memory::{DEFAULT_MEMORY_BUDGET, SharedMemory};
pub use restore::restore_into;
pub use transfer::DEFAULT_TRANSFER_CONCURRENCY;
