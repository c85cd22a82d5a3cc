//! `keyedstate demo`: a keyed streaming job on an embedded default.
//!
//! A source generates records for N keys and routes each to its subtask by key group; P subtask
//! threads, each with its own backend, update value, list, map, reducing and aggregating state.
//! Every `--checkpoint-every` records, and after the last one, the source sends a checkpoint
//! barrier to every subtask: each takes the synchronous part of its snapshot and hands the rest
//! to the checkpoint thread, which writes it while the subtasks go on, then completes the
//! checkpoint and notifies them. At the end every subtask checks each of its keys against what
//! the source generated; then the last checkpoint is restored and checked the same way.

use clap::{Args, ValueEnum};
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, LocalRecovery, PendingCheckpoint,
    RecoveryReads, RestoreMode, SubtaskHandle, load_latest, retain_completed, subtask_storage,
};
use keyedstate::codec;
use keyedstate::job::{self, Engine};
use keyedstate::metrics::{BackendMetrics, LatencyHistogram};
use keyedstate::{
    AggregateFunction, AggregatingState, AggregatingStateDescriptor, Error, KeyedStateBackend,
    ListState, ListStateDescriptor, MapState, MapStateDescriptor, MaxParallelism, PendingSnapshot,
    ReducingState, ReducingStateDescriptor, Result, SnapshotKind, ValueState, ValueStateDescriptor,
};
use keyedstate_object_store::ObjectStoreStorage;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Directory for checkpoints (`DIR/checkpoints`) and working files (`DIR/work`, `DIR/restore`);
    /// a temporary directory, removed at the end, if not set.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where checkpoints go instead of `DIR/checkpoints`: a directory, or an object-store URL
    /// (`s3://bucket/prefix`, endpoint and credentials from the `AWS_*` environment variables;
    /// see docs/object-storage.md).
    #[arg(long)]
    checkpoints: Option<String>,
    /// Keep each subtask's last completed checkpoint in `DIR/local/subtask-<i>` as well (Flink's
    /// local recovery): the restore check reads it from there, and from the checkpoint storage
    /// only what is missing or damaged there.
    #[arg(long)]
    local_recovery: bool,
    /// Take a checkpoint every this many records (and always one after the last record).
    #[arg(long, default_value_t = 50_000)]
    checkpoint_every: u64,
    /// Incremental (RocksDB's SST files; the heap takes full snapshots either way) or full
    /// (the canonical format every backend reads).
    #[arg(long, value_enum, default_value_t = Kind::Incremental)]
    checkpoint_kind: Kind,
    /// Completed checkpoints to keep.
    #[arg(long, default_value_t = 1)]
    retained: usize,
    /// Restore the last checkpoint at this parallelism (rescale) instead of the job's.
    #[arg(long)]
    rescale_to: Option<u32>,
    /// How the restored job treats the checkpoint it restored when it goes on checkpointing into
    /// the same root: no-claim keeps it (and every checkpoint already there) untouched, claim
    /// lets the restored job's checkpoints subsume it (see docs/operations.md).
    #[arg(long, value_enum, default_value_t = Mode::NoClaim)]
    restore_mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    NoClaim,
    Claim,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Rocksdb,
    Heap,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Incremental,
    Full,
}

/// The state names and kinds, in the order the report prints them.
const STATES: [(&str, &str); 5] = [
    ("last", "value"),
    ("recent", "list"),
    ("buckets", "map"),
    ("count", "reducing"),
    ("average", "aggregating"),
];
const BUCKETS: u64 = 8;
const LATENCY_SAMPLE_INTERVAL: u64 = 100;
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

/// What flows into a subtask.
enum Input {
    Records(Vec<(u64, u64)>),
    Barrier(u64),
    Complete(u64),
    Aborted(u64),
    /// The end of the input. Sent explicitly because the checkpoint thread holds senders too.
    Stop,
}

/// A subtask's synchronous snapshot part, handed to the checkpoint thread.
struct Snapshotted {
    subtask: u32,
    pending: PendingSnapshot,
    pause: Duration,
}

/// The five states of a subtask.
struct States {
    last: ValueState<u64>,
    recent: ListState<u64>,
    buckets: MapState<u64, u64>,
    count: ReducingState<u64>,
    average: AggregatingState<Average>,
}

impl States {
    fn register(backend: &KeyedStateBackend) -> Result<Self> {
        Ok(States {
            last: backend.value_state(&ValueStateDescriptor::new(STATES[0].0))?,
            recent: backend.list_state(&ListStateDescriptor::new(STATES[1].0))?,
            buckets: backend.map_state(&MapStateDescriptor::new(STATES[2].0))?,
            count: backend.reducing_state(&ReducingStateDescriptor::new(
                STATES[3].0,
                |a: &u64, b: &u64| a + b,
            ))?,
            average: backend
                .aggregating_state(&AggregatingStateDescriptor::new(STATES[4].0, Average))?,
        })
    }

    fn process(&self, backend: &KeyedStateBackend, key: u64, value: u64) -> Result<()> {
        backend.set_current_key(&key)?;
        self.last.update(&value)?;
        self.recent.add(&value)?;
        let bucket = value % BUCKETS;
        let seen = self.buckets.get(&bucket)?.unwrap_or(0);
        self.buckets.put(&bucket, &(seen + 1))?;
        self.count.add(&1)?;
        self.average.add(&value)
    }
}

/// One subtask's check of its state.
#[derive(Default)]
struct Check {
    entries: [u64; STATES.len()],
    keys_checked: u64,
    mismatches: Vec<String>,
}

/// Checks every key `backend` holds against `expected`, and counts each state's entries.
fn check(backend: &KeyedStateBackend, states: &States, expected: &Expected) -> Result<Check> {
    let mut report = Check::default();
    for (n, (state, _)) in STATES.iter().enumerate() {
        backend.scan_raw(state, &mut |_| {
            report.entries[n] += 1;
            Ok(ControlFlow::Continue(()))
        })?;
    }
    for key in backend.keys::<u64, _>(STATES[0].0, &())? {
        backend.set_current_key(&key)?;
        let k = key as usize;
        let mut mismatch = |what: &str| report.mismatches.push(format!("key {key}: {what}"));
        if states.last.get()? != Some(expected.last[k]) {
            mismatch("last value");
        }
        let list = states.recent.get()?;
        if list.len() as u64 != expected.count[k] || list.iter().sum::<u64>() != expected.sum[k] {
            mismatch("list of values");
        }
        for (bucket, &n) in expected.buckets[k].iter().enumerate() {
            if states.buckets.get(&(bucket as u64))?.unwrap_or(0) != n {
                mismatch("bucket counts");
            }
        }
        if states.count.get()? != Some(expected.count[k]) {
            mismatch("count");
        }
        if states.average.get()? != Some(expected.sum[k] as f64 / expected.count[k] as f64) {
            mismatch("average");
        }
        report.keys_checked += 1;
    }
    Ok(report)
}

/// A subtask: processes records, snapshots at barriers, applies notifications; at the end of its
/// input checks its state.
fn subtask(
    index: u32,
    backend: KeyedStateBackend,
    input: Receiver<Input>,
    snapshots: Sender<Snapshotted>,
    kind: SnapshotKind,
    expected: &Expected,
) -> Result<(Instant, Check, BackendMetrics)> {
    // As Flink's state.backend.latency-track: every 100th access of each state is timed.
    backend.enable_latency_tracking(LATENCY_SAMPLE_INTERVAL)?;
    let states = States::register(&backend)?;
    let mut processed_at = Instant::now();
    for message in input {
        match message {
            Input::Records(batch) => {
                for (key, value) in batch {
                    states.process(&backend, key, value)?;
                }
                processed_at = Instant::now();
            }
            Input::Barrier(id) => {
                let started = Instant::now();
                let pending = backend.snapshot(id, kind)?;
                let pause = started.elapsed();
                let snapshotted = Snapshotted {
                    subtask: index,
                    pending,
                    pause,
                };
                snapshots
                    .send(snapshotted)
                    .map_err(|_| Error::closed("the checkpoint thread stopped"))?;
            }
            Input::Complete(id) => backend.notify_checkpoint_complete(id)?,
            Input::Aborted(id) => backend.notify_checkpoint_aborted(id)?,
            Input::Stop => break,
        }
    }
    // Taken before the check, whose reads would otherwise dominate the latency samples.
    let metrics = backend.metrics()?;
    let report = check(&backend, &states, expected)?;
    backend.close()?;
    Ok((processed_at, report, metrics))
}

/// Checkpoint figures for the report.
#[derive(Default)]
struct CheckpointStats {
    completed: u64,
    failed: Vec<String>,
    /// Checkpoints a snapshot declined (the next one is taken another way): tolerated, as Flink
    /// tolerates declined checkpoints.
    declined: Vec<String>,
    /// Bytes of files each checkpoint added to storage (not referenced by the one before).
    bytes_written: u64,
    max_pause: Duration,
    total_pause: Duration,
    snapshots: u32,
}

/// The checkpoint in flight, shared by the source (which triggers) and the checkpoint thread
/// (which completes).
type InFlight = Arc<Mutex<Option<PendingCheckpoint>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The checkpoint thread: runs each subtask's asynchronous part as it arrives (while the
/// subtasks go on), completes the checkpoint when all have, and notifies the subtasks.
fn checkpoint_thread(
    coordinator: Arc<Mutex<CheckpointCoordinator>>,
    local: &[Arc<LocalRecovery>],
    max_p: MaxParallelism,
    in_flight: InFlight,
    snapshots: Receiver<Snapshotted>,
    subtasks: Vec<SyncSender<Input>>,
    done: Sender<u64>,
) -> CheckpointStats {
    let parallelism = subtasks.len();
    let mut stats = CheckpointStats::default();
    let mut handles: Vec<SubtaskHandle> = Vec::new();
    let mut failure: Option<Error> = None;
    let mut arrived = 0;
    let remote = lock(&coordinator).storage().clone();
    for snapshotted in snapshots {
        let id = snapshotted.pending.checkpoint_id();
        stats.max_pause = stats.max_pause.max(snapshotted.pause);
        stats.total_pause += snapshotted.pause;
        stats.snapshots += 1;
        let attempt = lock(&in_flight)
            .as_ref()
            .map(|pending| pending.attempt().clone())
            .expect("a checkpoint is in flight");
        let storage = subtask_storage(&remote, local, snapshotted.subtask as usize);
        match snapshotted
            .pending
            .run(&storage, &attempt, snapshotted.subtask)
        {
            Ok(handle) => handles.push(handle),
            Err(e) => failure = failure.or(Some(e)),
        }
        arrived += 1;
        if arrived < parallelism {
            continue;
        }
        arrived = 0;
        // The slot stays locked until the coordinator has completed or aborted the checkpoint:
        // the source must not see it empty and trigger the next one before that.
        let mut slot = lock(&in_flight);
        let trigger = slot.take().expect("a checkpoint is in flight");
        let mut coordinator = lock(&coordinator);
        let before: Vec<String> = coordinator
            .latest()
            .map(|m| m.files().map(|f| f.path.clone()).collect())
            .unwrap_or_default();
        let finished = std::mem::take(&mut handles);
        let outcome = match failure.take() {
            Some(e) => coordinator.abort(trigger, &finished).and(Err(e)),
            None => coordinator.complete(trigger, max_p, finished).cloned(),
        };
        drop(coordinator);
        let complete = match outcome {
            Ok(metadata) => {
                retain_completed(local, &metadata);
                stats.completed += 1;
                stats.bytes_written += metadata
                    .files()
                    .filter(|f| !before.contains(&f.path))
                    .map(|f| f.size)
                    .sum::<u64>();
                true
            }
            Err(e) if e.is_declined() => {
                stats.declined.push(format!("checkpoint {id}: {e}"));
                false
            }
            Err(e) => {
                stats.failed.push(format!("checkpoint {id}: {e}"));
                false
            }
        };
        for tx in &subtasks {
            let message = if complete {
                Input::Complete(id)
            } else {
                Input::Aborted(id)
            };
            // A subtask that already stopped needs no notification.
            let _ = tx.send(message);
        }
        // Only now may the source trigger the next checkpoint: its barrier then reaches every
        // subtask after this notification, and no SST is uploaded twice.
        drop(slot);
        let _ = done.send(id);
    }
    stats
}

/// The source: generates the records, routes each to the subtask owning its key group, and
/// injects checkpoint barriers.
fn source(
    args: &DemoArgs,
    max_p: MaxParallelism,
    subtasks: &[SyncSender<Input>],
    coordinator: &Mutex<CheckpointCoordinator>,
    in_flight: &InFlight,
    done: &Receiver<u64>,
) -> Result<()> {
    let mut batches: Vec<Vec<(u64, u64)>> =
        subtasks.iter().map(|_| Vec::with_capacity(BATCH)).collect();
    let mut key_bytes = Vec::new();
    let stopped = || Error::closed("a subtask stopped before the source finished");
    let send =
        |subtask: usize, message: Input| subtasks[subtask].send(message).map_err(|_| stopped());
    let flush_all = |batches: &mut Vec<Vec<(u64, u64)>>| -> Result<()> {
        for (subtask, batch) in batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                send(
                    subtask,
                    Input::Records(std::mem::replace(batch, Vec::with_capacity(BATCH))),
                )?;
            }
        }
        Ok(())
    };
    let barrier = |batches: &mut Vec<Vec<(u64, u64)>>, wait: bool| -> Result<()> {
        if wait {
            // The last checkpoint must not be skipped: wait for the one in flight.
            while lock(in_flight).is_some() {
                done.recv_timeout(Duration::from_millis(50)).ok();
            }
        } else if lock(in_flight).is_some() {
            // One checkpoint at a time, as Flink's default: skip this barrier.
            return Ok(());
        }
        flush_all(batches)?;
        let pending = lock(coordinator).trigger()?;
        let id = pending.id();
        *lock(in_flight) = Some(pending);
        (0..subtasks.len()).try_for_each(|subtask| send(subtask, Input::Barrier(id)))
    };
    for record in 0..args.records {
        let key = key_of(record, args.keys);
        key_bytes.clear();
        codec::encode(&key, &mut key_bytes)?;
        let subtask = max_p.subtask_of(max_p.key_group_of(&key_bytes), args.parallelism)? as usize;
        batches[subtask].push((key, record));
        if batches[subtask].len() == BATCH {
            send(
                subtask,
                Input::Records(std::mem::replace(
                    &mut batches[subtask],
                    Vec::with_capacity(BATCH),
                )),
            )?;
        }
        if (record + 1) % args.checkpoint_every == 0 && record + 1 < args.records {
            barrier(&mut batches, false)?;
        }
    }
    barrier(&mut batches, true)?;
    while lock(in_flight).is_some() {
        done.recv_timeout(Duration::from_millis(50)).ok();
    }
    Ok(())
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if args.keys == 0 || args.parallelism == 0 || args.checkpoint_every == 0 {
        return Err(Error::invalid_argument(
            "--keys, --parallelism and --checkpoint-every must be at least 1",
        ));
    }
    let max_p = match args.max_parallelism {
        Some(m) => MaxParallelism::new(m)?,
        None => MaxParallelism::default_for(args.parallelism),
    };
    max_p.range_for_subtask(args.parallelism, 0)?;
    if let Some(p) = args.rescale_to {
        max_p.range_for_subtask(p, 0)?;
    }
    let temp;
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()
                .map_err(|e| Error::io("cannot create a temporary directory", e))?;
            temp.path().to_path_buf()
        }
    };
    let (engine, kind) = (engine_of(args.backend), kind_of(args.checkpoint_kind));
    // The heap takes full snapshots whatever the kind asked for.
    let kind_name = if kind == SnapshotKind::Full || engine == Engine::Heap {
        "full"
    } else {
        "incremental"
    };
    let storage: Arc<dyn CheckpointStorage> = match &args.checkpoints {
        Some(url) if url.contains("://") => Arc::new(ObjectStoreStorage::from_url(url)?),
        Some(dir) => Arc::new(DirectoryStorage::new(dir)?),
        None => Arc::new(DirectoryStorage::new(root.join("checkpoints"))?),
    };
    say!(
        "demo: backend {}, parallelism {}, max parallelism {max_p}, {} keys, {} records, \
         {kind_name} checkpoint every {} records, dir {}, checkpoints {}",
        engine.name(),
        args.parallelism,
        args.keys,
        args.records,
        args.checkpoint_every,
        root.display(),
        storage.describe()
    );
    let coordinator = CheckpointCoordinator::open(storage.clone(), args.retained)?;
    let local: Vec<Arc<LocalRecovery>> = if args.local_recovery {
        (0..args.parallelism.max(args.rescale_to.unwrap_or(0)))
            .map(|i| {
                let dir = root.join(format!("local/subtask-{i}"));
                LocalRecovery::new(storage.clone(), dir).map(Arc::new)
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let expected = Arc::new(generate_expected(args.keys, args.records));
    let work = root.join("work");

    let started = Instant::now();
    let (snapshot_tx, snapshot_rx) = channel::<Snapshotted>();
    let (done_tx, done_rx) = channel::<u64>();
    let in_flight: InFlight = Arc::new(Mutex::new(None));
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for index in 0..args.parallelism {
        let (tx, rx) = sync_channel::<Input>(16);
        senders.push(tx);
        let (expected, snapshots) = (expected.clone(), snapshot_tx.clone());
        let (work, parallelism) = (work.clone(), args.parallelism);
        workers.push(std::thread::spawn(move || {
            let backend = job::open_subtask(engine, max_p, parallelism, index, &work)?;
            subtask(index, backend, rx, snapshots, kind, &expected)
        }));
    }
    drop(snapshot_tx);
    let coordinator = Arc::new(Mutex::new(coordinator));
    let checkpointer = {
        let (coordinator, in_flight, subtasks) =
            (coordinator.clone(), in_flight.clone(), senders.clone());
        let local = local.clone();
        std::thread::spawn(move || {
            checkpoint_thread(
                coordinator,
                &local,
                max_p,
                in_flight,
                snapshot_rx,
                subtasks,
                done_tx,
            )
        })
    };
    let routed = source(args, max_p, &senders, &coordinator, &in_flight, &done_rx);
    // Stop the subtasks whether or not the source finished: the checkpoint thread holds senders
    // too, so the subtasks' input would never end by itself.
    for sender in &senders {
        let _ = sender.send(Input::Stop);
    }
    drop(senders);
    let mut reports = Vec::new();
    for worker in workers {
        reports.push(
            worker
                .join()
                .map_err(|_| Error::invalid_argument("a subtask panicked"))??,
        );
    }
    let stats = checkpointer
        .join()
        .map_err(|_| Error::invalid_argument("the checkpoint thread panicked"))?;
    routed?;
    let processed = reports
        .iter()
        .map(|(at, _, _)| *at)
        .max()
        .unwrap_or(started);
    let (checks, metrics): (Vec<Check>, Vec<BackendMetrics>) =
        reports.into_iter().map(|(_, c, m)| (c, m)).unzip();
    let mut ok = print_check(&expected, &checks);
    print_metrics(&metrics);
    let secs = (processed - started).as_secs_f64();
    say!(
        "records: {} in {secs:.2} s, {:.0} records/s",
        args.records,
        args.records as f64 / secs
    );
    ok &= print_checkpoints(&stats, args.parallelism);

    let restore_started = Instant::now();
    let latest = load_latest(storage.as_ref())?;
    let restore_work = root.join("restore");
    let mut restored_checks = Vec::new();
    let restore_parallelism = args.rescale_to.unwrap_or(args.parallelism);
    let mut restored = Vec::new();
    for index in 0..restore_parallelism {
        let backend = job::restore_subtask(
            engine,
            &latest,
            &subtask_storage(&storage, &local, index as usize),
            restore_parallelism,
            index,
            &restore_work,
        )?;
        let states = States::register(&backend)?;
        restored_checks.push(check(&backend, &states, &expected)?);
        restored.push(backend);
    }
    say!(
        "restore: checkpoint {} (parallelism {}) into {} subtasks in {:.2} s",
        latest.checkpoint_id,
        args.parallelism,
        restore_parallelism,
        restore_started.elapsed().as_secs_f64()
    );
    if !local.is_empty() {
        let mut reads = RecoveryReads::default();
        for l in &local {
            reads += l.reads();
        }
        say!(
            "local recovery: {} files ({} bytes) read from the local copies, {} files ({} bytes) from {}",
            reads.local_files,
            reads.local_bytes,
            reads.remote_files,
            reads.remote_bytes,
            storage.describe()
        );
    }
    ok &= print_check(&expected, &restored_checks);
    ok &= checkpoint_after_restore(args, &restored, &storage, &latest, kind, &expected)?;
    for backend in restored {
        backend.close()?;
    }
    if ok {
        Ok(())
    } else {
        Err(Error::corruption(
            "the state does not match the generated records",
        ))
    }
}

/// The restored job goes on: one checkpoint into the same root, with a coordinator opened in the
/// restore mode asked for, then that checkpoint restored and checked. Prints which checkpoints
/// the root holds afterwards.
fn checkpoint_after_restore(
    args: &DemoArgs,
    restored: &[KeyedStateBackend],
    storage: &Arc<dyn CheckpointStorage>,
    latest: &keyedstate::checkpoint::CheckpointMetadata,
    kind: SnapshotKind,
    expected: &Expected,
) -> Result<bool> {
    let (mode, name) = match args.restore_mode {
        Mode::NoClaim => (RestoreMode::NoClaim, "no-claim"),
        Mode::Claim => (RestoreMode::Claim, "claim"),
    };
    let mut coordinator =
        CheckpointCoordinator::open_restored(storage.clone(), args.retained, latest, mode)?;
    let after = job::checkpoint(restored, &mut coordinator, kind)?;
    let work = tempfile::tempdir().map_err(|e| Error::io("cannot create a directory", e))?;
    let engine = engine_of(args.backend);
    let parallelism = after.parallelism();
    let mut checks = Vec::new();
    for index in 0..parallelism {
        let backend =
            job::restore_subtask(engine, &after, storage, parallelism, index, work.path())?;
        checks.push(check(&backend, &States::register(&backend)?, expected)?);
        backend.close()?;
    }
    let present: Vec<String> = storage
        .checkpoint_dirs()?
        .into_iter()
        .filter(|(_, done)| *done)
        .map(|(id, _)| id.to_string())
        .collect();
    say!(
        "restore mode {name}: the restored job wrote checkpoint {}; the root holds checkpoints {}",
        after.checkpoint_id,
        present.join(", ")
    );
    Ok(print_check(expected, &checks))
}

fn engine_of(backend: Backend) -> Engine {
    match backend {
        Backend::Rocksdb => Engine::RocksDb,
        Backend::Heap => Engine::Heap,
    }
}

fn kind_of(kind: Kind) -> SnapshotKind {
    match kind {
        Kind::Incremental => SnapshotKind::Incremental,
        Kind::Full => SnapshotKind::Full,
    }
}

/// Prints entry counts against the expected ones and the per-key check; true when all match.
fn print_check(expected: &Expected, checks: &[Check]) -> bool {
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
    say!("state\tkind\tentries\texpected");
    let mut ok = true;
    for (n, (state, kind)) in STATES.iter().enumerate() {
        let entries: u64 = checks.iter().map(|c| c.entries[n]).sum();
        ok &= entries == want[n];
        say!("{state}\t{kind}\t{entries}\t{}", want[n]);
    }
    let checked: u64 = checks.iter().map(|c| c.keys_checked).sum();
    let mismatches: Vec<&String> = checks.iter().flat_map(|c| &c.mismatches).collect();
    ok &= checked == distinct_keys && mismatches.is_empty();
    for m in mismatches.iter().take(10) {
        say!("mismatch: {m}");
    }
    let per_subtask: Vec<String> = checks.iter().map(|c| c.keys_checked.to_string()).collect();
    say!("keys per subtask: {}", per_subtask.join(" "));
    say!(
        "check: {} ({checked} of {distinct_keys} keys match the generated records, {} mismatches)",
        if ok { "OK" } else { "FAILED" },
        mismatches.len()
    );
    ok
}

/// Prints the checkpoint figures; true when no checkpoint failed (declined ones do not count).
fn print_checkpoints(stats: &CheckpointStats, parallelism: u32) -> bool {
    let average = stats
        .total_pause
        .checked_div(stats.snapshots.max(1))
        .unwrap_or_default();
    say!(
        "checkpoints: {} completed, {} failed, {} declined, {} bytes written, synchronous pause per subtask avg {:.1} ms max {:.1} ms ({} subtasks)",
        stats.completed,
        stats.failed.len(),
        stats.declined.len(),
        stats.bytes_written,
        average.as_secs_f64() * 1e3,
        stats.max_pause.as_secs_f64() * 1e3,
        parallelism
    );
    for failure in &stats.failed {
        say!("checkpoint failed: {failure}");
    }
    for declined in &stats.declined {
        say!("checkpoint declined: {declined}");
    }
    stats.failed.is_empty()
}

/// Prints each state's entries and sampled access latency over all subtasks, and the engine's
/// figures (summed; the block cache is shared by the process, so its largest reading).
fn print_metrics(metrics: &[BackendMetrics]) {
    for (n, (state, _)) in STATES.iter().enumerate() {
        let entries: u64 = metrics.iter().map(|m| m.states[n].estimated_entries).sum();
        let mut latency = LatencyHistogram::default();
        metrics
            .iter()
            .filter_map(|m| m.states[n].latency.as_ref())
            .for_each(|h| latency.merge(h));
        say!(
            "metrics: {state}: about {entries} entries; access latency mean {:.1} us, p99 under {:.1} us ({} samples)",
            latency.mean().as_secs_f64() * 1e6,
            latency.quantile(0.99).as_secs_f64() * 1e6,
            latency.count
        );
    }
    let sum =
        |f: fn(&BackendMetrics) -> Option<u64>| metrics.iter().filter_map(f).reduce(|a, b| a + b);
    if let (Some(sst), Some(memtables)) = (sum(|m| m.sst_bytes), sum(|m| m.memtable_bytes)) {
        let cache = metrics
            .iter()
            .filter_map(|m| m.block_cache_bytes)
            .max()
            .unwrap_or(0);
        say!(
            "metrics: {sst} bytes of SST files, {memtables} bytes of memtables, {cache} bytes in the block cache"
        );
    }
}
