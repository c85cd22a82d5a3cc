//! Configuration of a RocksDB backend instance: where it lives, which key groups it holds, the
//! options profile and the memory budget. Each setting is explained in `docs/config.md`.

use crate::ffi::Decision;
use crate::memory::SharedMemory;
use crate::memtable::use_key_hash_memtable;
use crate::merge::{LIST_APPEND, list_append, list_append_unexpired};
use keyedstate_core::timers::is_timer_state;
use keyedstate_core::ttl::{Clock, Unexpired, system_clock, unexpired};
use keyedstate_core::{KeyGroupRange, MaxParallelism};
use keyedstate_core::{StateKind, StateMeta};
use rocksdb::{
    BlockBasedOptions, DBCompactionStyle, DBCompressionType, LogLevel, MergeOperands, Options,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Predefined option sets, as Flink's `PredefinedOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptionsProfile {
    /// keyedstate's tuned defaults for state workloads.
    #[default]
    Default,
    /// Level compaction with dynamic level sizes, more background threads, all files kept open.
    SpinningDisk,
    /// `SpinningDisk` plus larger memtables, files and blocks for machines with memory to spare.
    SpinningDiskHighMem,
    /// More background threads and all files kept open, for fast random reads.
    FlashSsd,
}

impl OptionsProfile {
    pub const ALL: [OptionsProfile; 4] = [
        OptionsProfile::Default,
        OptionsProfile::SpinningDisk,
        OptionsProfile::SpinningDiskHighMem,
        OptionsProfile::FlashSsd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OptionsProfile::Default => "default",
            OptionsProfile::SpinningDisk => "spinning-disk",
            OptionsProfile::SpinningDiskHighMem => "spinning-disk-high-mem",
            OptionsProfile::FlashSsd => "flash-ssd",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// How a restore with rescale moves the entries of other instances into the restored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RescaleMethod {
    /// Move the other instance's own SST files in (hard links where the working directory and
    /// the checkpoint share a filesystem): its instance is clipped to the key groups first when
    /// it holds more, which rewrites only the files across an edge. Where that cannot be done
    /// (a file still reaching outside after the clip, timers this instance keeps in memory that
    /// the other kept in a column family), the entries are rewritten as with `Ingest`.
    #[default]
    Files,
    /// Write the entries into new SST files and ingest those (no memtable, no compaction).
    Ingest,
    /// Write them in write batches without the WAL: slower; kept as a fallback and a baseline.
    WriteBatch,
}

/// Where the RocksDB backend keeps timers, as Flink's `state.backend.rocksdb.timer-service.factory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimerStore {
    /// In a column family per time domain, like any state: timers beyond memory, and part of
    /// the incremental snapshot's SST files.
    #[default]
    RocksDb,
    /// In memory, sorted per key group (the heap backend's store): faster to register and fire;
    /// written as a canonical file beside each incremental snapshot, so every checkpoint copies
    /// all of them.
    Heap,
}

impl TimerStore {
    pub fn name(self) -> &'static str {
        match self {
            TimerStore::RocksDb => "rocksdb",
            TimerStore::Heap => "heap",
        }
    }
}

/// How to open one RocksDB backend instance.
/// The memtable of keyed state's column families (timers always use the skip list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Memtable {
    /// A hash table of sorted linked lists, one per key (`crate::memtable`): record accesses
    /// several times faster, but a flush first sorts the memtable (an array of its entries,
    /// sorted once), in the background (`docs/config.md`).
    #[default]
    KeyHash,
    /// RocksDB's skip list over the whole memtable, as Flink's backend uses: flushes that
    /// complete sooner, slower record access.
    SkipList,
}

impl Memtable {
    pub const ALL: [Memtable; 2] = [Memtable::KeyHash, Memtable::SkipList];

    pub fn name(self) -> &'static str {
        match self {
            Memtable::KeyHash => "key-hash",
            Memtable::SkipList => "skip-list",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Clone)]
pub struct RocksDbConfig {
    /// The instance directory: the database lives in `db/` below it, which must not hold a
    /// database yet for a new instance.
    pub path: PathBuf,
    pub max_parallelism: MaxParallelism,
    pub key_group_range: KeyGroupRange,
    pub profile: OptionsProfile,
    /// The memory budget shared with other instances; the process-wide one by default.
    pub memory: SharedMemory,
    /// Bits per key of the bloom filter for point lookups; 0 turns it off.
    pub bloom_bits_per_key: f64,
    /// Remove the instance directory on close: durability comes from checkpoints, as in Flink.
    pub delete_on_close: bool,
    /// Files transferred at once by a snapshot's asynchronous part or a restore.
    pub transfer_concurrency: usize,
    /// How a restore with rescale moves other instances' entries in.
    pub rescale_method: RescaleMethod,
    /// Flink's `state.backend.rocksdb.restore-overlap-fraction-threshold`: a restore with
    /// rescale opens as its base only a handle whose key groups overlap the new range by at
    /// least this fraction of its own (0.0 by default: the largest overlap, always); with none,
    /// it starts from an empty instance and moves every handle in.
    pub restore_overlap_fraction_threshold: f64,
    /// The clock state TTL reads, here and in the compaction filter.
    pub clock: Arc<dyn Clock>,
    /// Where timers live. A restore moves them into this store whichever store the checkpoint
    /// had them in.
    pub timer_store: TimerStore,
    /// How many of each key group's earliest timers the timer service keeps in memory with
    /// `TimerStore::RocksDb` (Flink's `state.backend.rocksdb.timer-service.cache-size`, 128 by
    /// default): firing reads RocksDB once per that many timers. 0 turns the cache off.
    pub timer_cache_size: usize,
    /// How many of the task's latest point writes (value puts and deletes, map puts and
    /// removes, list appends) are held in memory before they go to RocksDB as one `WriteBatch`
    /// (1,000 by default; also written out before any scan, iterator, `MultiGet`, snapshot or
    /// compaction, and read before RocksDB): per-record writes then pay RocksDB's write path
    /// once per batch.
    /// 0 writes each one to RocksDB as it comes. See `docs/config.md`.
    pub write_batch_entries: usize,
    /// How old a file of a state with a TTL may grow before RocksDB compacts it (and its
    /// compaction filter drops what expired), as Flink's `periodic-compaction-time`: 30 days by
    /// default; `None` leaves such files until a write-driven compaction reaches them.
    pub periodic_compaction: Option<Duration>,
    /// The memtable of keyed state's column families.
    pub memtable: Memtable,
    /// Hash buckets of each `Memtable::KeyHash` memtable: 8 bytes each, allocated with the
    /// memtable and charged to the write-buffer budget (500,000: 4 MB per memtable of each
    /// keyed state; fewer for jobs with many states or few keys per subtask, at some cost per
    /// record when a memtable holds more keys than buckets: docs/config.md).
    pub key_hash_buckets: usize,
    /// A row cache in the memory budget's cache for an instance opened empty (true by
    /// default): RocksDB keeps the result of a point read from an SST file, so a read of state
    /// that a flush or compaction moved into files, repeated, skips the index and data-block
    /// search (a compacted list's read about twice as fast: docs/config.md). Restored instances
    /// never have one, whatever this says: RocksDB refuses range deletions with a row cache,
    /// a restore with rescale clips with them, and the files a restore moves in may hold those
    /// of earlier clips, which RocksDB's row cache does not handle.
    pub row_cache: bool,
    /// How long a write-ahead log a checkpoint may copy before its synchronous part also has
    /// the memtables flushed (in the background), in bytes; 8 MiB by default. A checkpoint
    /// flushes nothing: it copies the log written since the last flush, which RocksDB then
    /// replays on restore. Past this many bytes the flush makes later checkpoints copy SST
    /// files instead. 0 flushes at every checkpoint (each still copies its log). See
    /// `docs/config.md`, "Checkpoint pause".
    pub checkpoint_wal_bytes: u64,
    /// No compaction starts by itself while a restore clips the instance: the files it linked
    /// unread are checked before a compaction reads them (`restore::Unverified`).
    pub(crate) suspend_compactions: bool,
}

impl RocksDbConfig {
    pub fn new(
        path: impl Into<PathBuf>,
        max_parallelism: MaxParallelism,
        key_group_range: KeyGroupRange,
    ) -> Self {
        RocksDbConfig {
            path: path.into(),
            max_parallelism,
            key_group_range,
            profile: OptionsProfile::Default,
            memory: SharedMemory::process(),
            bloom_bits_per_key: 10.0,
            delete_on_close: true,
            transfer_concurrency: crate::transfer::DEFAULT_TRANSFER_CONCURRENCY,
            rescale_method: RescaleMethod::Files,
            restore_overlap_fraction_threshold: 0.0,
            clock: system_clock(),
            timer_store: TimerStore::RocksDb,
            timer_cache_size: 128,
            write_batch_entries: 1000,
            periodic_compaction: Some(Duration::from_secs(30 * 24 * 3600)),
            memtable: Memtable::KeyHash,
            key_hash_buckets: crate::memtable::BUCKETS,
            row_cache: true,
            checkpoint_wal_bytes: 8 << 20,
            suspend_compactions: false,
        }
    }

    /// Whether state `name` lives in memory rather than in a column family.
    pub(crate) fn in_memory(&self, name: &str) -> bool {
        self.timer_store == TimerStore::Heap && is_timer_state(name)
    }

    /// Database-wide options of an instance this process writes: [`Self::db_options`] with the
    /// row cache, if [`Self::row_cache`] asks for one (a restore clears it for every instance
    /// it opens). Read-only instances only scan, which a row cache does not serve.
    pub(crate) fn read_write_db_options(&self) -> Options {
        let mut opts = self.db_options();
        if self.row_cache {
            opts.set_row_cache(self.memory.cache());
        }
        opts
    }

    /// Database-wide options.
    pub(crate) fn db_options(&self) -> Options {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // No fsync: checkpoints, not the working directory, are what survive a crash.
        opts.set_use_fsync(false);
        // Keep RocksDB's own log small; it is for debugging, not for state.
        opts.set_log_level(LogLevel::Warn);
        opts.set_keep_log_file_num(2);
        opts.set_max_log_file_size(8 << 20);
        opts.set_stats_dump_period_sec(0);
        opts.set_write_buffer_manager(self.memory.write_buffers());
        // One thread writes an instance; the hash memtable does not support concurrent writes.
        opts.set_allow_concurrent_memtable_write(false);
        match self.profile {
            OptionsProfile::Default => {}
            OptionsProfile::SpinningDisk
            | OptionsProfile::SpinningDiskHighMem
            | OptionsProfile::FlashSsd => {
                opts.increase_parallelism(4);
                opts.set_max_open_files(-1);
            }
        }
        opts
    }

    /// Options of the column family of state `meta`: [`Self::cf_options`], plus for a state with
    /// a TTL a compaction filter that removes expired values and map entries, and expired
    /// elements from lists (the list removed when none is left), judged by the TTL in
    /// `ttl_millis` (the state's current one: a re-registration may change it); and periodic
    /// compaction, so that files no write reaches are filtered too.
    pub(crate) fn cf_options_for(&self, meta: &StateMeta, ttl_millis: &Arc<AtomicU64>) -> Options {
        let mut opts = if is_timer_state(&meta.name) {
            self.cf_options()
        } else {
            self.keyed_cf_options()
        };
        if meta.ttl.is_some() {
            let (clock, is_list) = (self.clock.clone(), meta.kind == StateKind::List);
            let ttl_millis = ttl_millis.clone();
            if let Some(period) = self.periodic_compaction {
                opts.set_periodic_compaction_seconds(period.as_secs().max(1));
            }
            if is_list {
                let (clock, ttl_millis) = (clock.clone(), ttl_millis.clone());
                opts.set_merge_operator_associative(
                    LIST_APPEND,
                    move |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
                        let ttl = ttl_millis.load(Ordering::Relaxed);
                        list_append_unexpired(existing, operands, ttl, clock.now_millis())
                    },
                );
            }
            crate::ffi::set_compaction_filter(
                &mut opts,
                Arc::new(move |value: &[u8], kept: &mut Vec<u8>| {
                    // The clock and the TTL are read without a lock (atomics, or the system
                    // clock).
                    let ttl = ttl_millis.load(Ordering::Relaxed);
                    match unexpired(value, is_list, ttl, clock.now_millis(), kept) {
                        Ok(Unexpired::All) => Decision::Keep,
                        Ok(Unexpired::Part) => Decision::Change,
                        Ok(Unexpired::Nothing) => Decision::Remove,
                        // A corrupt value is kept: a read reports it.
                        Err(_) => Decision::Keep,
                    }
                }),
            );
        }
        opts
    }

    /// The options of a keyed state's column family: [`Self::cf_options`] with the per-key hash
    /// memtable (see [`crate::memtable`]).
    pub(crate) fn keyed_cf_options(&self) -> Options {
        let mut opts = self.cf_options();
        if self.memtable == Memtable::KeyHash {
            use_key_hash_memtable(
                &mut opts,
                self.max_parallelism.prefix_len(),
                self.key_hash_buckets.max(1),
            );
        }
        // See `crate::memtable` for why in-place updates are safe here.
        opts.set_inplace_update_support(true);
        opts
    }

    /// Options of every state's column family.
    pub(crate) fn cf_options(&self) -> Options {
        let mut opts = Options::default();
        // Compacted files hold one key group each (1-byte prefixes), so that a rescale drops
        // whole files instead of rewriting the ones across its edges.
        crate::ffi::partition_files_by_first_key_byte(&mut opts);
        opts.set_disable_auto_compactions(self.suspend_compactions);
        opts.set_merge_operator_associative(LIST_APPEND, list_append);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(self.memory.cache());
        // Index and filter blocks count against the budget, but the hot ones stay pinned.
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_format_version(6);
        if self.bloom_bits_per_key > 0.0 {
            table.set_bloom_filter(self.bloom_bits_per_key, false);
        }
        match self.profile {
            OptionsProfile::Default | OptionsProfile::FlashSsd => {}
            OptionsProfile::SpinningDisk => {
                opts.set_compaction_style(DBCompactionStyle::Level);
                opts.set_level_compaction_dynamic_level_bytes(true);
            }
            OptionsProfile::SpinningDiskHighMem => {
                opts.set_compaction_style(DBCompactionStyle::Level);
                opts.set_level_compaction_dynamic_level_bytes(true);
                opts.set_target_file_size_base(256 << 20);
                opts.set_max_bytes_for_level_base(1 << 30);
                opts.set_write_buffer_size(64 << 20);
                opts.set_min_write_buffer_number_to_merge(3);
                opts.set_max_write_buffer_number(4);
                table.set_block_size(128 << 10);
            }
        }
        opts.set_block_based_table_factory(&table);
        opts
    }
}
