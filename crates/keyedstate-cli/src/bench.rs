//! `keyedstate bench`: the design's state benchmark workload (as flink-benchmarks' state
//! benchmarks) through the public API, with its baselines measured in the same run.
//!
//! 500,000 u64 keys visited in one shuffled order (fixed by the seed); max parallelism 2; every
//! operation is set-current-key plus one state call. Each group (value, list, map, checkpoint)
//! runs on a fresh backend holding only its state, in the order of `../shared/DESIGN.md`, so the
//! figures compare like for like with Flink's (`vs-flink.sh`). Checkpoint: value state only; a
//! base checkpoint, then rounds of 10% of the keys changing and one checkpoint taken to a local
//! directory (timed without the change), counted in checkpoints per second. Baselines: `raw-rocksdb` (put, get and merge on the identical key bytes with the
//! identical options) and `std-hashmap`.

use clap::{Args, ValueEnum};
use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate::codec;
use keyedstate::heap::HeapBackend;
use keyedstate::job::Engine;
use keyedstate::key_layout::{list_elements, put_framed, put_key_group};
use keyedstate::rocksdb::{Memtable, OptionsProfile, RawBaseline, RocksDbBackend, RocksDbConfig};
use keyedstate::{
    Error, KeyedStateBackend, ListStateDescriptor, MapStateDescriptor, MaxParallelism, Result,
    SnapshotKind, StateEngine, ValueStateDescriptor,
};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchArgs {
    /// Which backends to measure; each with its baseline.
    #[arg(long, value_enum, default_value_t = Which::All)]
    backend: Which,
    /// Number of keys.
    #[arg(long, default_value_t = 500_000)]
    keys: u64,
    /// Timed passes over all keys per benchmark.
    #[arg(long, default_value_t = 5)]
    passes: u32,
    /// Untimed passes before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// Which groups to run, in the workload's order: value, list, map, checkpoint (comma
    /// separated; all by default).
    #[arg(long, value_delimiter = ',', default_value = "value,list,map,checkpoint", value_parser = ["value", "list", "map", "checkpoint"])]
    groups: Vec<String>,
    /// Timed checkpoints per checkpoint benchmark (after an untimed base checkpoint).
    #[arg(long, default_value_t = 3)]
    checkpoint_rounds: u32,
    /// Seed of the shuffled key order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// RocksDB options profile, for the backend and its raw baseline alike: default,
    /// spinning-disk, spinning-disk-high-mem or flash-ssd.
    #[arg(long, default_value = "default", value_parser = parse_profile)]
    rocksdb_profile: OptionsProfile,
    /// The memtable of keyed state for the backend and its raw baseline: key-hash or
    /// skip-list.
    #[arg(long, default_value = "key-hash", value_parser = parse_memtable)]
    rocksdb_memtable: Memtable,
    /// Bits per key of RocksDB's bloom filters, for the backend and its raw baseline; 0 turns
    /// them off.
    #[arg(long, default_value_t = 10.0)]
    bloom_bits_per_key: f64,
    /// The backend's write buffer: how many of the latest point writes go to RocksDB as one
    /// batch (the raw baseline writes each one); 0 writes each one as it comes.
    #[arg(long, default_value_t = 1000)]
    rocksdb_write_batch_entries: usize,
}

fn parse_memtable(name: &str) -> std::result::Result<Memtable, String> {
    Memtable::from_name(name)
        .ok_or_else(|| format!("unknown memtable '{name}'; key-hash or skip-list"))
}

fn parse_profile(name: &str) -> std::result::Result<OptionsProfile, String> {
    OptionsProfile::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = OptionsProfile::ALL.iter().map(|p| p.name()).collect();
        format!("unknown profile '{name}'; one of {}", names.join(", "))
    })
}

/// The RocksDB configuration of the benchmarks: the same for the backend and the raw baseline.
fn rocksdb_config(args: &BenchArgs, path: PathBuf) -> Result<RocksDbConfig> {
    let max_p = MaxParallelism::new(2)?;
    let mut config = RocksDbConfig::new(path, max_p, max_p.full_range());
    config.profile = args.rocksdb_profile;
    config.bloom_bits_per_key = args.bloom_bits_per_key;
    config.memtable = args.rocksdb_memtable;
    config.write_batch_entries = args.rocksdb_write_batch_entries;
    Ok(config)
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Rocksdb,
    Heap,
    All,
}

const USER_KEYS: u64 = 10;

/// Runs `op` over every key (with its position in `order`) `warmup + passes` times; returns operations per second of the timed
/// passes.
fn measure(
    order: &[u64],
    warmup: u32,
    passes: u32,
    mut op: impl FnMut(usize, u64) -> Result<()>,
) -> Result<f64> {
    timed_passes(order.len(), warmup, passes, || {
        order.iter().enumerate().try_for_each(|(i, &k)| op(i, k))
    })
}

/// Records per call of the batch API (Flink 2.0's default async-state buffer).
const BATCH: usize = 1000;

/// Like [`measure`], calling `op` with the positions of `BATCH` records at a time; returns
/// records per second.
fn measure_batches(
    order: &[u64],
    warmup: u32,
    passes: u32,
    mut op: impl FnMut(std::ops::Range<usize>) -> Result<()>,
) -> Result<f64> {
    timed_passes(order.len(), warmup, passes, || {
        (0..order.len())
            .step_by(BATCH)
            .try_for_each(|start| op(start..(start + BATCH).min(order.len())))
    })
}

/// Runs `pass` (over `records` records) `warmup` times untimed, then `passes` times timed;
/// returns records per second of the timed passes.
fn timed_passes(
    records: usize,
    warmup: u32,
    passes: u32,
    mut pass: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..warmup {
        pass()?;
    }
    let started = Instant::now();
    for _ in 0..passes {
        pass()?;
    }
    Ok(records as f64 * f64::from(passes) / started.elapsed().as_secs_f64())
}

fn report(backend: &str, benchmark: &str, ops_per_sec: f64) {
    // Checkpoints are a few per second: keep their decimals.
    if ops_per_sec < 100.0 {
        say!("{backend}\t{benchmark}\t{ops_per_sec:.3}");
    } else {
        say!("{backend}\t{benchmark}\t{ops_per_sec:.0}");
    }
}

/// The keys in one shuffled order (Fisher-Yates with splitmix64).
fn shuffled(keys: u64, seed: u64) -> Vec<u64> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<u64> = (0..keys).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.keys == 0 || args.passes == 0 || args.checkpoint_rounds == 0 {
        return Err(Error::invalid_argument(
            "--keys, --passes and --checkpoint-rounds must be at least 1",
        ));
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "keyedstate bench: this is a debug build; figures mean little (use cargo run --release)"
        );
    }
    let dir =
        tempfile::tempdir().map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let order = shuffled(args.keys, args.seed);
    say!("backend\tbenchmark\tops_per_sec");
    if args.backend != Which::Heap {
        bench_backend(args, Engine::RocksDb, &order, dir.path())?;
        bench_raw_rocksdb(args, &order, dir.path())?;
    }
    if args.backend != Which::Rocksdb {
        bench_backend(args, Engine::Heap, &order, dir.path())?;
        bench_std_hashmap(args, &order)?;
    }
    Ok(())
}

/// The workload's groups on `engine`, its type known to the compiler (static dispatch, as an
/// application that picks its engine at compile time has it): each group on a fresh backend.
fn bench_backend(args: &BenchArgs, engine: Engine, order: &[u64], dir: &Path) -> Result<()> {
    let max_p = MaxParallelism::new(2)?;
    match engine {
        Engine::RocksDb => bench_groups(args, engine, order, dir, &|path| {
            RocksDbBackend::open_typed(rocksdb_config(args, path)?)
        }),
        Engine::Heap => bench_groups(args, engine, order, dir, &|_| {
            HeapBackend::open_typed(max_p, max_p.full_range())
        }),
    }
}

/// Opens a fresh backend in a directory (JMH forks: each benchmark group gets one).
type Open<'a, E> = dyn Fn(PathBuf) -> Result<KeyedStateBackend<E>> + 'a;

/// A fresh backend of `engine` in `dir/name`.
fn fresh_backend<E: StateEngine + ?Sized>(
    open: &Open<'_, E>,
    engine: Engine,
    dir: &Path,
    name: &str,
) -> Result<KeyedStateBackend<E>> {
    open(dir.join(format!("{}-{name}", engine.name())))
}

/// The workload's groups, each on a fresh backend holding only its state, in the design's order.
fn bench_groups<E: StateEngine + ?Sized>(
    args: &BenchArgs,
    engine: Engine,
    order: &[u64],
    dir: &Path,
    open: &Open<'_, E>,
) -> Result<()> {
    let (w, p) = (args.warmup, args.passes);
    let name = engine.name();
    let runs = |group: &str| args.groups.iter().any(|g| g == group);

    if runs("value") {
        let b = fresh_backend(open, engine, dir, "value")?;
        let value = b.value_state(&ValueStateDescriptor::<u64>::new("value"))?;
        for &key in order {
            b.set_current_key(&key)?;
            value.update(&key)?;
        }
        report(
            name,
            "valueUpdate",
            measure(order, w, p, |_, k| {
                b.set_current_key(&k).and_then(|()| value.update(&(k + 1)))
            })?,
        );
        report(
            name,
            "valueGet",
            measure(order, w, p, |_, k| {
                b.set_current_key(&k)
                    .and_then(|()| value.get().map(black_box).map(drop))
            })?,
        );
        // The batch API, BATCH records a call; ops/s counts records.
        let entries: Vec<(u64, u64)> = order.iter().map(|&k| (k, k + 2)).collect();
        report(
            name,
            "valueUpdateBatch",
            measure_batches(order, w, p, |range| value.update_batch(&entries[range]))?,
        );
        report(
            name,
            "valueGetBatch",
            measure_batches(order, w, p, |range| {
                value.get_batch(&order[range]).map(black_box).map(drop)
            })?,
        );
        b.close()?;
    }

    if runs("list") {
        // One element per key, compacted (RocksDB), read before anything is appended.
        let one_element_lists = |name: &str| -> Result<_> {
            let b = fresh_backend(open, engine, dir, name)?;
            let list = b.list_state(&ListStateDescriptor::<u64>::new("list"))?;
            for &key in order {
                b.set_current_key(&key)?;
                list.add(&key)?;
            }
            b.compact()?;
            Ok((b, list))
        };
        let (b, list) = one_element_lists("list")?;
        // Read into one reused vector, as a job's per-record loop would (Flink's heap backend
        // lends its list for the iteration; `get` would allocate a vector per record).
        let mut elements = Vec::new();
        report(
            name,
            "listGetAndIterate",
            measure(order, w, p, |_, k| {
                b.set_current_key(&k)?;
                list.get_into(&mut elements)?;
                black_box(elements.iter().sum::<u64>());
                Ok(())
            })?,
        );
        // Before any append, as listGetAndIterate: the same one-element lists.
        report(
            name,
            "listGetBatch",
            measure_batches(order, w, p, |range| {
                list.get_batch(&order[range]).map(black_box).map(drop)
            })?,
        );
        report(
            name,
            "listAppend",
            measure(order, w, p, |_, k| {
                b.set_current_key(&k).and_then(|()| list.add(&k))
            })?,
        );
        b.close()?;
        // On lists as listAppend found them (one element each), not on the ones its passes
        // grew: a list's appends are merge operands until a compaction, so later appends work
        // on more of them.
        let (b, list) = one_element_lists("list-batch")?;
        let appends: Vec<(u64, u64)> = order.iter().map(|&k| (k, k)).collect();
        report(
            name,
            "listAppendBatch",
            measure_batches(order, w, p, |range| list.add_batch(&appends[range]))?,
        );
        b.close()?;
    }

    if runs("map") {
        let b = fresh_backend(open, engine, dir, "map")?;
        let map = b.map_state(&MapStateDescriptor::<u64, f64>::new("map"))?;
        for &key in order {
            b.set_current_key(&key)?;
            for user_key in 0..USER_KEYS {
                map.put(&user_key, &(key as f64))?;
            }
        }
        report(
            name,
            "mapUpdate",
            measure(order, w, p, |_, k| {
                b.set_current_key(&k)
                    .and_then(|()| map.put(&(k % USER_KEYS), &(k as f64 + 0.5)))
            })?,
        );
        report(
            name,
            "mapGet",
            measure(order, w, p, |_, k| {
                b.set_current_key(&k)
                    .and_then(|()| map.get(&(k % USER_KEYS)).map(black_box).map(drop))
            })?,
        );
        let lookups: Vec<(u64, u64)> = order.iter().map(|&k| (k, k % USER_KEYS)).collect();
        let puts: Vec<(u64, u64, f64)> = order
            .iter()
            .map(|&k| (k, k % USER_KEYS, k as f64 + 0.25))
            .collect();
        report(
            name,
            "mapUpdateBatch",
            measure_batches(order, w, p, |range| map.put_batch(&puts[range]))?,
        );
        report(
            name,
            "mapGetBatch",
            measure_batches(order, w, p, |range| {
                map.get_batch(&lookups[range]).map(black_box).map(drop)
            })?,
        );
        b.close()?;
    }

    if !runs("checkpoint") {
        return Ok(());
    }
    let kinds: &[SnapshotKind] = match engine {
        Engine::RocksDb => &[SnapshotKind::Incremental, SnapshotKind::Full],
        Engine::Heap => &[SnapshotKind::Full],
    };
    for &kind in kinds {
        bench_checkpoints(args, engine, kind, order, dir, open)?;
    }
    Ok(())
}

/// Checkpoint figures on a fresh backend holding value state only (key i holding i): a base
/// checkpoint, then `--checkpoint-rounds` rounds of changing a different tenth of the keys
/// (untimed) and one timed checkpoint (synchronous part, asynchronous part to a local directory,
/// completion). Checkpoints per second on stdout; pause, time and bytes on stderr.
fn bench_checkpoints<E: StateEngine + ?Sized>(
    args: &BenchArgs,
    engine: Engine,
    kind: SnapshotKind,
    order: &[u64],
    dir: &Path,
    open: &Open<'_, E>,
) -> Result<()> {
    let name = if kind == SnapshotKind::Full {
        "checkpointFull"
    } else {
        "checkpointIncremental"
    };
    let backend = fresh_backend(open, engine, dir, name)?;
    let value = backend.value_state(&ValueStateDescriptor::<u64>::new("value"))?;
    for key in 0..order.len() as u64 {
        backend.set_current_key(&key)?;
        value.update(&key)?;
    }
    let root = dir.join(format!("checkpoints-{}-{name}", engine.name()));
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root)?);
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1)?;
    let checkpoint = |coordinator: &mut CheckpointCoordinator| -> Result<_> {
        let started = Instant::now();
        let pending = coordinator.trigger()?;
        let snapshot = backend.snapshot(pending.id(), kind)?;
        let synchronous = started.elapsed();
        let handle = snapshot.run(&storage, pending.attempt(), 0)?;
        let metadata = coordinator
            .complete(pending, backend.max_parallelism(), vec![handle])?
            .clone();
        backend.notify_checkpoint_complete(metadata.checkpoint_id)?;
        Ok((started.elapsed(), synchronous, metadata))
    };
    let (_, _, base) = checkpoint(&mut coordinator)?;
    let mut previous: Vec<String> = base.files().map(|f| f.path.clone()).collect();
    let tenth = order.len().div_ceil(10);
    let (mut total, mut pause, mut bytes, mut shared_bytes) =
        (Duration::ZERO, Duration::ZERO, 0u64, 0u64);
    let rounds = args.checkpoint_rounds;
    for round in 0..rounds {
        // Change 10% of the keys: a different tenth each round.
        for &key in order
            .iter()
            .cycle()
            .skip(round as usize * tenth)
            .take(tenth)
        {
            backend.set_current_key(&key)?;
            value.update(&(key + u64::from(round) + 7))?;
        }
        let (elapsed, synchronous, metadata) = checkpoint(&mut coordinator)?;
        // What this checkpoint added: new shared files (SST files and closed logs) and its own
        // files (MANIFEST, CURRENT, OPTIONS, the open log's copy).
        let new = || metadata.files().filter(|f| !previous.contains(&f.path));
        shared_bytes += new().filter(|f| f.is_shared()).map(|f| f.size).sum::<u64>();
        bytes += new().map(|f| f.size).sum::<u64>();
        previous = metadata.files().map(|f| f.path.clone()).collect();
        total += elapsed;
        pause += synchronous;
    }
    backend.close()?;
    let n = f64::from(rounds);
    report(engine.name(), name, n / total.as_secs_f64());
    // Only incremental checkpoints add shared files.
    let sst = if shared_bytes > 0 {
        format!(
            ", of which {} bytes of new shared files (written / new shared: {:.2})",
            shared_bytes / u64::from(rounds),
            bytes as f64 / shared_bytes as f64
        )
    } else {
        String::new()
    };
    eprintln!(
        "{}\t{name}\tper checkpoint: {:.1} ms in all, {:.1} ms synchronous pause, {} bytes written{sst}",
        engine.name(),
        total.as_secs_f64() * 1e3 / n,
        pause.as_secs_f64() * 1e3 / n,
        bytes / u64::from(rounds)
    );
    Ok(())
}

/// The entry key bytes the backend uses for `key` in the void namespace, at max parallelism 2.
fn entry_key(key: u64) -> Result<Vec<u8>> {
    let max_p = MaxParallelism::new(2)?;
    let mut serialized = Vec::new();
    codec::encode(&key, &mut serialized)?;
    let mut out = Vec::with_capacity(serialized.len() + 4);
    put_key_group(
        &mut out,
        max_p.key_group_of(&serialized),
        max_p.prefix_len(),
    );
    put_framed(&mut out, &serialized);
    put_framed(&mut out, &[]);
    Ok(out)
}

fn bench_raw_rocksdb(args: &BenchArgs, order: &[u64], dir: &Path) -> Result<()> {
    // Key bytes and encoded values as the backend would produce them, computed up front and
    // indexed by position in `order`, so the timed loop does nothing but the RocksDB call.
    let encode = |v: u64| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        codec::encode(&v, &mut out)?;
        Ok(out)
    };
    let element = |v: u64| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        put_framed(&mut out, &encode(v)?);
        Ok(out)
    };
    let per_key = |f: &dyn Fn(u64) -> Result<Vec<u8>>| -> Result<Vec<Vec<u8>>> {
        order.iter().map(|&k| f(k)).collect()
    };
    let keys = per_key(&entry_key)?;
    let (w, p) = (args.warmup, args.passes);
    let name = "raw-rocksdb";
    let mut out = Vec::new();
    // Each group on a fresh instance, as the backend's.
    let open = |group: &str| {
        RawBaseline::open(
            &rocksdb_config(args, dir.join(format!("raw-{group}")))?,
            &[group],
        )
    };

    let runs = |group: &str| args.groups.iter().any(|g| g == group);
    if runs("value") {
        let raw = open("value")?;
        for (i, &k) in order.iter().enumerate() {
            raw.put(0, &keys[i], &encode(k)?)?;
        }
        let values = per_key(&|k| encode(k + 1))?;
        report(
            name,
            "valueUpdate",
            measure(order, w, p, |i, _| raw.put(0, &keys[i], &values[i]))?,
        );
        report(
            name,
            "valueGet",
            measure(order, w, p, |i, _| raw.get(0, &keys[i], &mut out).map(drop))?,
        );
    }

    if runs("list") {
        let raw = open("list")?;
        let elements = per_key(&element)?;
        for i in 0..order.len() {
            raw.merge(0, &keys[i], &elements[i])?;
        }
        raw.compact(0)?;
        report(
            name,
            "listGetAndIterate",
            measure(order, w, p, |i, _| {
                raw.get(0, &keys[i], &mut out)?;
                black_box(list_elements(&out).count());
                Ok(())
            })?,
        );
        report(
            name,
            "listAppend",
            measure(order, w, p, |i, _| raw.merge(0, &keys[i], &elements[i]))?,
        );
    }

    if runs("map") {
        let raw = open("map")?;
        let map_keys: Vec<Vec<Vec<u8>>> = (0..USER_KEYS)
            .map(|uk| {
                let user_key = encode(uk)?;
                Ok(keys
                    .iter()
                    .map(|key| [key.as_slice(), &user_key].concat())
                    .collect())
            })
            .collect::<Result<_>>()?;
        let map_key = |i: usize, k: u64| &map_keys[(k % USER_KEYS) as usize][i];
        let f64_bytes = |v: f64| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            codec::encode(&v, &mut out)?;
            Ok(out)
        };
        for (i, &k) in order.iter().enumerate() {
            for keys_of_user_key in &map_keys {
                raw.put(0, &keys_of_user_key[i], &f64_bytes(k as f64)?)?;
            }
        }
        let map_value = f64_bytes(0.5)?;
        report(
            name,
            "mapUpdate",
            measure(order, w, p, |i, k| raw.put(0, map_key(i, k), &map_value))?,
        );
        report(
            name,
            "mapGet",
            measure(order, w, p, |i, k| {
                raw.get(0, map_key(i, k), &mut out).map(drop)
            })?,
        );
    }
    Ok(())
}

fn bench_std_hashmap(args: &BenchArgs, order: &[u64]) -> Result<()> {
    let mut value: HashMap<u64, u64> = order.iter().map(|&k| (k, k)).collect();
    let mut list: HashMap<u64, Vec<u64>> = order.iter().map(|&k| (k, vec![k])).collect();
    let mut map: HashMap<u64, HashMap<u64, f64>> = order
        .iter()
        .map(|&k| (k, (0..USER_KEYS).map(|uk| (uk, k as f64)).collect()))
        .collect();
    let (w, p) = (args.warmup, args.passes);
    let name = "std-hashmap";
    report(
        name,
        "valueUpdate",
        measure(order, w, p, |_, k| {
            value.insert(k, k + 1);
            Ok(())
        })?,
    );
    report(
        name,
        "valueGet",
        measure(order, w, p, |_, k| {
            black_box(value.get(&k));
            Ok(())
        })?,
    );
    report(
        name,
        "listGetAndIterate",
        measure(order, w, p, |_, k| {
            black_box(list.get(&k).map(|l| l.iter().sum::<u64>()));
            Ok(())
        })?,
    );
    report(
        name,
        "listAppend",
        measure(order, w, p, |_, k| {
            list.entry(k).or_default().push(k);
            Ok(())
        })?,
    );
    report(
        name,
        "mapUpdate",
        measure(order, w, p, |_, k| {
            map.entry(k)
                .or_default()
                .insert(k % USER_KEYS, k as f64 + 0.5);
            Ok(())
        })?,
    );
    report(
        name,
        "mapGet",
        measure(order, w, p, |_, k| {
            black_box(map.get(&k).and_then(|m| m.get(&(k % USER_KEYS))));
            Ok(())
        })?,
    );
    Ok(())
}
