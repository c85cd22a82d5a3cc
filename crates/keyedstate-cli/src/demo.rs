//! `keyedstate demo`: a keyed streaming job on an embedded default. A source generates records
//! for N keys and routes each to its subtask by key group; P subtask threads, each with its own
//! backend, update value, list, map, reducing and aggregating state; then every subtask checks
//! each of its keys against what the source generated.

use clap::{Args, ValueEnum};
use keyedstate_core::codec::bincode_encode;
use keyedstate_core::{
    AggregateFunction, AggregatingStateDescriptor, Error, KeyedStateBackend, ListStateDescriptor,
    MapStateDescriptor, MaxParallelism, ReducingStateDescriptor, Result, ValueStateDescriptor,
};
use keyedstate_heap::HeapBackend;
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

#[derive(Args)]
pub struct DemoArgs {
    /// The state backend of every subtask.
    #[arg(long, value_enum, default_value_t = Backend::Rocksdb)]
    backend: Backend,
    /// Number of subtasks (threads).
    #[arg(long, default_value_t = 2)]
    parallelism: u32,
    /// Max parallelism (number of key groups); Flink's default for the parallelism if not set.
    #[arg(long)]
    max_parallelism: Option<u32>,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Number of records to generate.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Directory for the subtasks' working files; a temporary directory, removed at the end, if
    /// not set.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Rocksdb,
    Heap,
}

/// The state names, in the order the report prints them.
const STATES: [&str; 5] = ["last", "recent", "buckets", "count", "average"];
const BUCKETS: u64 = 8;
const BATCH: usize = 1024;

/// Average of the record values per key: (sum, count).
struct Average;

impl AggregateFunction for Average {
    type In = u64;
    type Acc = (u64, u64);
    type Out = f64;
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, value: &u64, acc: (u64, u64)) -> (u64, u64) {
        (acc.0 + value, acc.1 + 1)
    }
    fn result(&self, acc: &(u64, u64)) -> f64 {
        acc.0 as f64 / acc.1 as f64
    }
    fn merge(&self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

/// What the source generated, per key: the truth every subtask checks its state against.
struct Expected {
    count: Vec<u64>,
    sum: Vec<u64>,
    last: Vec<u64>,
    buckets: Vec<[u64; BUCKETS as usize]>,
}

/// The records of the job: record `i` has value `i` and a key drawn by a fixed generator.
fn key_of(record: u64, keys: u64) -> u64 {
    let mut z = record.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % keys
}

/// One subtask's report.
struct SubtaskReport {
    /// When the subtask had processed its last record (before checking).
    processed_at: Instant,
    entries: [u64; STATES.len()],
    keys_checked: u64,
    mismatches: Vec<String>,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if args.keys == 0 || args.parallelism == 0 {
        return Err(Error::invalid_argument(
            "--keys and --parallelism must be at least 1",
        ));
    }
    let max_p = match args.max_parallelism {
        Some(m) => MaxParallelism::new(m)?,
        None => MaxParallelism::default_for(args.parallelism),
    };
    let temp;
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()
                .map_err(|e| Error::io("cannot create a temporary directory", e))?;
            temp.path().to_path_buf()
        }
    };
    let backend_name = match args.backend {
        Backend::Rocksdb => "rocksdb",
        Backend::Heap => "heap",
    };
    println!(
        "demo: backend {backend_name}, parallelism {}, max parallelism {max_p}, {} keys, {} records, dir {}",
        args.parallelism,
        args.keys,
        args.records,
        root.display()
    );

    let expected = Arc::new(generate_expected(args.keys, args.records));
    let started = Instant::now();
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for index in 0..args.parallelism {
        let (tx, rx) = sync_channel::<Vec<(u64, u64)>>(16);
        senders.push(tx);
        let backend = open_backend(args.backend, max_p, args.parallelism, index, &root)?;
        let expected = expected.clone();
        workers.push(std::thread::spawn(move || subtask(backend, rx, &expected)));
    }
    route(args, max_p, senders)?;
    let mut reports = Vec::new();
    for worker in workers {
        let report = worker
            .join()
            .map_err(|_| Error::invalid_argument("a subtask panicked"))??;
        reports.push(report);
    }
    let processed = reports
        .iter()
        .map(|r| r.processed_at)
        .max()
        .unwrap_or(started);
    print_report(args, &expected, &reports, processed - started)
}

fn generate_expected(keys: u64, records: u64) -> Expected {
    let n = keys as usize;
    let mut e = Expected {
        count: vec![0; n],
        sum: vec![0; n],
        last: vec![0; n],
        buckets: vec![[0; BUCKETS as usize]; n],
    };
    for record in 0..records {
        let key = key_of(record, keys) as usize;
        e.count[key] += 1;
        e.sum[key] += record;
        e.last[key] = record;
        e.buckets[key][(record % BUCKETS) as usize] += 1;
    }
    e
}

fn open_backend(
    backend: Backend,
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    root: &Path,
) -> Result<KeyedStateBackend> {
    let range = max_p.range_for_subtask(parallelism, index)?;
    match backend {
        Backend::Heap => HeapBackend::open(max_p, range),
        Backend::Rocksdb => {
            let path = root.join("work").join(format!("subtask-{index}"));
            RocksDbBackend::open(RocksDbConfig::new(path, max_p, range))
        }
    }
}

/// The source: generates the records and sends each, in batches, to the subtask owning its key
/// group.
fn route(
    args: &DemoArgs,
    max_p: MaxParallelism,
    senders: Vec<SyncSender<Vec<(u64, u64)>>>,
) -> Result<()> {
    let mut batches: Vec<Vec<(u64, u64)>> =
        senders.iter().map(|_| Vec::with_capacity(BATCH)).collect();
    let mut key_bytes = Vec::new();
    let closed = || Error::closed("a subtask stopped before the source finished");
    for record in 0..args.records {
        let key = key_of(record, args.keys);
        key_bytes.clear();
        bincode_encode(&key, &mut key_bytes)?;
        let subtask = max_p.subtask_of(max_p.key_group_of(&key_bytes), args.parallelism)? as usize;
        batches[subtask].push((key, record));
        if batches[subtask].len() == BATCH {
            let full = std::mem::replace(&mut batches[subtask], Vec::with_capacity(BATCH));
            senders[subtask].send(full).map_err(|_| closed())?;
        }
    }
    for (sender, batch) in senders.iter().zip(batches) {
        if !batch.is_empty() {
            sender.send(batch).map_err(|_| closed())?;
        }
    }
    Ok(())
}

/// One subtask: processes its records, then checks every key it holds and counts entries.
fn subtask(
    backend: KeyedStateBackend,
    input: Receiver<Vec<(u64, u64)>>,
    expected: &Expected,
) -> Result<SubtaskReport> {
    let last = backend.value_state(&ValueStateDescriptor::<u64>::new(STATES[0]))?;
    let recent = backend.list_state(&ListStateDescriptor::<u64>::new(STATES[1]))?;
    let buckets = backend.map_state(&MapStateDescriptor::<u64, u64>::new(STATES[2]))?;
    let count = backend.reducing_state(&ReducingStateDescriptor::new(
        STATES[3],
        |a: &u64, b: &u64| a + b,
    ))?;
    let average =
        backend.aggregating_state(&AggregatingStateDescriptor::new(STATES[4], Average))?;
    for batch in input {
        for (key, value) in batch {
            backend.set_current_key(&key)?;
            last.update(&value)?;
            recent.add(&value)?;
            let bucket = value % BUCKETS;
            let seen = buckets.get(&bucket)?.unwrap_or(0);
            buckets.put(&bucket, &(seen + 1))?;
            count.add(&1)?;
            average.add(&value)?;
        }
    }

    let mut report = SubtaskReport {
        processed_at: Instant::now(),
        entries: [0; STATES.len()],
        keys_checked: 0,
        mismatches: Vec::new(),
    };
    for (n, state) in STATES.iter().enumerate() {
        backend.scan_raw(state, &mut |_| {
            report.entries[n] += 1;
            Ok(ControlFlow::Continue(()))
        })?;
    }
    for key in backend.keys::<u64, _>(STATES[0], &())? {
        backend.set_current_key(&key)?;
        let k = key as usize;
        let mut mismatch = |what: &str| report.mismatches.push(format!("key {key}: {what}"));
        if last.get()? != Some(expected.last[k]) {
            mismatch("last value");
        }
        let list = recent.get()?;
        if list.len() as u64 != expected.count[k] || list.iter().sum::<u64>() != expected.sum[k] {
            mismatch("list of values");
        }
        for (bucket, &n) in expected.buckets[k].iter().enumerate() {
            if buckets.get(&(bucket as u64))?.unwrap_or(0) != n {
                mismatch("bucket counts");
            }
        }
        if count.get()? != Some(expected.count[k]) {
            mismatch("count");
        }
        let mean = expected.sum[k] as f64 / expected.count[k] as f64;
        if average.get()? != Some(mean) {
            mismatch("average");
        }
        report.keys_checked += 1;
    }
    backend.close()?;
    Ok(report)
}

fn print_report(
    args: &DemoArgs,
    expected: &Expected,
    reports: &[SubtaskReport],
    elapsed: std::time::Duration,
) -> Result<()> {
    let distinct_keys = expected.count.iter().filter(|&&c| c > 0).count() as u64;
    let bucket_entries: u64 = expected
        .buckets
        .iter()
        .map(|b| b.iter().filter(|&&n| n > 0).count() as u64)
        .sum();
    let want = [
        distinct_keys,
        distinct_keys,
        bucket_entries,
        distinct_keys,
        distinct_keys,
    ];
    println!("state\tkind\tentries\texpected");
    let kinds = ["value", "list", "map", "reducing", "aggregating"];
    let mut ok = true;
    for (n, state) in STATES.iter().enumerate() {
        let entries: u64 = reports.iter().map(|r| r.entries[n]).sum();
        ok &= entries == want[n];
        println!("{state}\t{}\t{entries}\t{}", kinds[n], want[n]);
    }
    let checked: u64 = reports.iter().map(|r| r.keys_checked).sum();
    let mismatches: Vec<&String> = reports.iter().flat_map(|r| &r.mismatches).collect();
    ok &= checked == distinct_keys && mismatches.is_empty();
    for m in mismatches.iter().take(10) {
        println!("mismatch: {m}");
    }
    let per_subtask: Vec<String> = reports.iter().map(|r| r.keys_checked.to_string()).collect();
    println!("keys per subtask: {}", per_subtask.join(" "));
    println!(
        "check: {} ({checked} of {distinct_keys} keys match the generated records, {} mismatches)",
        if ok { "OK" } else { "FAILED" },
        mismatches.len()
    );
    let secs = elapsed.as_secs_f64();
    println!(
        "records: {} in {secs:.2} s, {:.0} records/s",
        args.records,
        args.records as f64 / secs
    );
    if ok {
        Ok(())
    } else {
        Err(Error::corruption(
            "the state does not match the generated records",
        ))
    }
}
