//! criterion benchmarks of the state operations of the design's workload (a smaller key count,
//! so that a run takes minutes), and of checkpoint, restore and rescale.
//!
//! `cargo bench --bench state_operations`; `keyedstate bench` runs the full-size workload with its
//! baselines.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate::job::{self, Engine};
use keyedstate::{
    KeyedStateBackend, ListState, ListStateDescriptor, MapState, MapStateDescriptor,
    MaxParallelism, SnapshotKind, ValueState, ValueStateDescriptor,
};
use std::hint::black_box;
use std::sync::Arc;

const KEYS: u64 = 50_000;

/// A backend and the handles of its three states, every key holding a value, a one-element
/// list and a 10-entry map.
struct Populated {
    backend: KeyedStateBackend,
    value: ValueState<u64>,
    list: ListState<u64>,
    map: MapState<u64, f64>,
}

fn populated(engine: Engine, dir: &std::path::Path) -> Populated {
    let max_p = MaxParallelism::new(2).unwrap();
    let backend = job::open_subtask(engine, max_p, 1, 0, dir).unwrap();
    let value = backend
        .value_state(&ValueStateDescriptor::<u64>::new("value"))
        .unwrap();
    let list = backend
        .list_state(&ListStateDescriptor::<u64>::new("list"))
        .unwrap();
    let map = backend
        .map_state(&MapStateDescriptor::<u64, f64>::new("map"))
        .unwrap();
    for key in 0..KEYS {
        backend.set_current_key(&key).unwrap();
        value.update(&key).unwrap();
        list.add(&key).unwrap();
        for user_key in 0..10 {
            map.put(&user_key, &(key as f64)).unwrap();
        }
    }
    Populated {
        backend,
        value,
        list,
        map,
    }
}

fn state_operations(c: &mut Criterion) {
    for engine in [Engine::RocksDb, Engine::Heap] {
        let dir = tempfile::tempdir().unwrap();
        let Populated {
            backend,
            value,
            list,
            map,
        } = populated(engine, dir.path());
        let mut group = c.benchmark_group(engine.name());
        let mut key = 0u64;
        let mut next = move || {
            // A fixed stride through the keys: every access misses the previous one's blocks.
            key = (key + 7919) % KEYS;
            key
        };
        group.bench_function("valueUpdate", |b| {
            b.iter(|| {
                let k = next();
                backend.set_current_key(&k).unwrap();
                value.update(&(k + 1)).unwrap();
            })
        });
        group.bench_function("valueGet", |b| {
            b.iter(|| {
                backend.set_current_key(&next()).unwrap();
                black_box(value.get().unwrap());
            })
        });
        // The batch calls, 1,000 records a call (criterion's time is per batch).
        let batch: Vec<u64> = (0..1000).map(|_| next()).collect();
        let entries: Vec<(u64, u64)> = batch.iter().map(|&k| (k, k + 2)).collect();
        group.throughput(criterion::Throughput::Elements(batch.len() as u64));
        group.bench_function("valueGetBatch", |b| {
            b.iter(|| black_box(value.get_batch(&batch).unwrap()))
        });
        group.bench_function("valueUpdateBatch", |b| {
            b.iter(|| value.update_batch(&entries).unwrap())
        });
        group.throughput(criterion::Throughput::Elements(1));
        group.bench_function("listGetAndIterate", |b| {
            b.iter(|| {
                backend.set_current_key(&next()).unwrap();
                black_box(list.get().unwrap().iter().sum::<u64>());
            })
        });
        // After listGetAndIterate: the lists grow by one element per visit, by as many as
        // criterion's iterations make.
        group.bench_function("listAppend", |b| {
            b.iter(|| {
                let k = next();
                backend.set_current_key(&k).unwrap();
                list.add(&k).unwrap();
            })
        });
        group.bench_function("mapUpdate", |b| {
            b.iter(|| {
                let k = next();
                backend.set_current_key(&k).unwrap();
                map.put(&(k % 10), &0.5).unwrap();
            })
        });
        group.bench_function("mapGet", |b| {
            b.iter(|| {
                let k = next();
                backend.set_current_key(&k).unwrap();
                black_box(map.get(&(k % 10)).unwrap());
            })
        });
        group.finish();
        backend.close().unwrap();
    }
}

fn checkpoint_restore_rescale(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    for (engine, kind) in [
        (Engine::RocksDb, SnapshotKind::Incremental),
        (Engine::RocksDb, SnapshotKind::Full),
        (Engine::Heap, SnapshotKind::Full),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let Populated { backend, value, .. } = populated(engine, &dir.path().join("work"));
        let storage: Arc<dyn CheckpointStorage> =
            Arc::new(DirectoryStorage::new(dir.path().join("checkpoints")).unwrap());
        let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
        let name = format!("{}-{kind:?}", engine.name());
        let mut round = 0u64;
        group.bench_function(format!("checkpoint/{name}"), |b| {
            b.iter_batched(
                || {
                    round += 1;
                    for key in (round % 10..KEYS).step_by(10) {
                        backend.set_current_key(&key).unwrap();
                        value.update(&(key + round)).unwrap();
                    }
                },
                |()| {
                    job::checkpoint(std::slice::from_ref(&backend), &mut coordinator, kind).unwrap()
                },
                BatchSize::PerIteration,
            )
        });
        let latest = coordinator.latest().unwrap().clone();
        for parallelism in [1u32, 2] {
            let what = if parallelism == 1 {
                "restore"
            } else {
                "rescale-1-to-2"
            };
            group.bench_function(format!("{what}/{name}"), |b| {
                b.iter(|| {
                    let work = tempfile::tempdir().unwrap();
                    for index in 0..parallelism {
                        let restored = job::restore_subtask(
                            engine,
                            &latest,
                            &storage,
                            parallelism,
                            index,
                            work.path(),
                        )
                        .unwrap();
                        restored.close().unwrap();
                    }
                })
            });
        }
        backend.close().unwrap();
    }
    group.finish();
}

criterion_group!(benches, state_operations, checkpoint_restore_rescale);
criterion_main!(benches);
