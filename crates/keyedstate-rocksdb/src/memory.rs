//! One memory budget per process, shared by every RocksDB instance and column family: one block
//! cache, and a write-buffer manager that charges memtables to that cache (as Flink's managed
//! memory for RocksDB does).

use keyedstate_core::{Error, Result};
use rocksdb::{Cache, WriteBufferManager};
use std::sync::{Arc, OnceLock};

/// The process-wide budget used when none is set: 256 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// Share of the budget for memtables, as Flink's `state.backend.rocksdb.memory.write-buffer-ratio`.
const WRITE_BUFFER_RATIO: f64 = 0.5;

/// A memory budget: the block cache and write-buffer manager every instance given it shares.
#[derive(Clone)]
pub struct SharedMemory {
    inner: Arc<Inner>,
}

struct Inner {
    budget: usize,
    cache: Cache,
    write_buffers: WriteBufferManager,
}

static PROCESS: OnceLock<SharedMemory> = OnceLock::new();

impl SharedMemory {
    /// A budget of `bytes` for block cache, index and filter blocks and memtables together.
    ///
    /// The split follows Flink: memtables may take `2/3 * budget * ratio` and the cache
    /// `(3 - ratio)/3 * budget`, because a mutable memtable may overshoot the write-buffer
    /// manager's limit by half before a flush is forced, and its memory is charged to the cache.
    pub fn new(bytes: usize) -> Result<Self> {
        if bytes < 8 << 20 {
            return Err(Error::invalid_argument(format!(
                "memory budget of {bytes} bytes is below the minimum of 8 MiB"
            )));
        }
        let budget = bytes as f64;
        let cache = Cache::new_lru_cache(((3.0 - WRITE_BUFFER_RATIO) * budget / 3.0) as usize);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            (2.0 * budget * WRITE_BUFFER_RATIO / 3.0) as usize,
            false,
            cache.clone(),
        );
        Ok(SharedMemory {
            inner: Arc::new(Inner {
                budget: bytes,
                cache,
                write_buffers,
            }),
        })
    }

    /// The process-wide budget: [`DEFAULT_MEMORY_BUDGET`] unless
    /// [`SharedMemory::set_process_budget`] ran first.
    pub fn process() -> SharedMemory {
        PROCESS
            .get_or_init(|| {
                SharedMemory::new(DEFAULT_MEMORY_BUDGET).expect("default budget is valid")
            })
            .clone()
    }

    /// Sets the process-wide budget. Fails if it was already fixed at another size, because
    /// instances already open keep using the old one.
    pub fn set_process_budget(bytes: usize) -> Result<SharedMemory> {
        let wanted = SharedMemory::new(bytes)?;
        let actual = PROCESS.get_or_init(|| wanted).clone();
        if actual.budget() != bytes {
            return Err(Error::invalid_argument(format!(
                "the process memory budget is already {} bytes",
                actual.budget()
            )));
        }
        Ok(actual)
    }

    pub fn budget(&self) -> usize {
        self.inner.budget
    }

    /// Bytes in the block cache now, memtable reservations included.
    pub fn cache_usage(&self) -> usize {
        self.inner.cache.get_usage()
    }

    /// Bytes of memtables now.
    pub fn memtable_usage(&self) -> usize {
        self.inner.write_buffers.get_usage()
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub(crate) fn write_buffers(&self) -> &WriteBufferManager {
        &self.inner.write_buffers
    }
}
