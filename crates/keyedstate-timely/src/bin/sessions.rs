//! The example job: sessionized counts per user over a generated, replayable stream.
//!
//! The source has `--partitions` partitions (as a Kafka topic has), each a deterministic
//! sequence of events `(user, epoch)`, `--events-per-epoch` per epoch for `--epochs` epochs.
//! Each worker reads the partitions its operator state assigns it, from the offsets recorded
//! with the checkpoint it restored. A user's session is its run of events with gaps of at most
//! `--gap` epochs; a timer `--gap` epochs after a session's last event closes it and emits
//! `user=<u> start=<e> end=<e> events=<n>` at that epoch. Every epoch's sessions go, sorted,
//! to `--out/epoch-<epoch>.txt` (the output deduplicated by epoch: a replayed epoch writes its
//! file again, the same). Checkpoints every `--every` epochs (or every `--interval-ms`) go to
//! `--root` (a directory, or an object-store URL such as `s3://bucket/prefix`).
//!
//! Timely's own arguments follow `--`: `-w` workers per process, `-n` processes, `-p` this
//! process's index, `-h` a hostfile of `host:port` lines. For example, 2 processes x 2 workers:
//!
//! ```text
//! timely-sessions --root /tmp/chk --out /tmp/out --work /tmp/work -- -w 2 -n 2 -p 0 -h hosts
//! timely-sessions --root /tmp/chk --out /tmp/out --work /tmp/work -- -w 2 -n 2 -p 1 -h hosts
//! ```

use clap::Parser;
use keyedstate::checkpoint::{CheckpointStorage, DirectoryStorage};
use keyedstate::job::Engine;
use keyedstate::{
    Error, FiredTimer, KeyedStateBackend, ListStateDescriptor, MaxParallelism, Result, ValueState,
    ValueStateDescriptor,
};
use keyedstate_timely::{
    CheckpointSchedule, Context, Job, JobConfig, KeyedState, write_epoch_files,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

#[derive(Parser, Clone, Debug)]
#[command(
    name = "timely-sessions",
    about = "Sessionized counts per user on timely dataflow, with keyedstate checkpoints",
    after_help = "Timely's arguments follow `--`: -w WORKERS, -n PROCESSES, -p PROCESS, -h HOSTFILE."
)]
struct Args {
    /// The checkpoint root: a directory every process reaches, or an object-store URL.
    #[arg(long)]
    root: String,
    /// Where the epoch files go (read by worker 0's process).
    #[arg(long)]
    out: PathBuf,
    /// This process's local working directory (its workers' RocksDB instances).
    #[arg(long)]
    work: PathBuf,
    /// rocksdb or heap.
    #[arg(long, default_value = "rocksdb")]
    engine: String,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    #[arg(long, default_value_t = 500)]
    users: u32,
    #[arg(long, default_value_t = 25)]
    events_per_epoch: u64,
    #[arg(long, default_value_t = 300)]
    epochs: u64,
    /// Epochs without an event that close a session.
    #[arg(long, default_value_t = 5)]
    gap: u64,
    /// A checkpoint every this many epochs.
    #[arg(long, default_value_t = 10)]
    every: u64,
    /// A checkpoint at the first epoch to end this many milliseconds after the last one
    /// instead (a processing-time interval, as Flink's); overrides --every.
    #[arg(long)]
    interval_ms: Option<u64>,
    /// Milliseconds the source waits between epochs (0: as fast as it can).
    #[arg(long, default_value_t = 0)]
    epoch_ms: u64,
    /// Timely's arguments.
    #[arg(last = true)]
    timely: Vec<String>,
}

/// One event of the generated stream.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Event {
    user: u32,
    epoch: u64,
}

/// The event at `offset` of `partition`, if the partition has one there: deterministic, so a
/// replay from an offset reads what the first read read.
fn event(args: &Args, partition: u32, offset: u64) -> Option<Event> {
    let epoch = offset / args.events_per_epoch;
    (epoch < args.epochs).then(|| {
        // SplitMix64 of the position: users spread evenly, with gaps long enough to end sessions.
        let mut z = (u64::from(partition) << 40 ^ offset).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Event {
            user: ((z ^ (z >> 31)) % u64::from(args.users)) as u32,
            epoch,
        }
    })
}

/// A user's open session.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Open {
    start: u64,
    last: u64,
    events: u64,
}

/// A closed session, as the job emits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Session {
    user: u32,
    start: u64,
    end: u64,
    events: u64,
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "user={} start={} end={} events={}",
            self.user, self.start, self.end, self.events
        )
    }
}

fn on_event(
    open: &mut ValueState<Open>,
    ctx: &mut Context<'_, Session>,
    event: Event,
    gap: u64,
) -> Result<()> {
    let session = match open.get()? {
        Some(mut session) => {
            if event.epoch > session.last {
                ctx.delete_timer(session.last + gap)?;
                ctx.register_timer(event.epoch + gap)?;
                session.last = event.epoch;
            }
            session.events += 1;
            session
        }
        None => {
            ctx.register_timer(event.epoch + gap)?;
            Open {
                start: event.epoch,
                last: event.epoch,
                events: 1,
            }
        }
    };
    open.update(&session)
}

fn on_timer(
    open: &mut ValueState<Open>,
    ctx: &mut Context<'_, Session>,
    timer: &FiredTimer,
) -> Result<()> {
    let user: u32 = timer.key_as()?;
    if let Some(session) = open.get()? {
        ctx.emit(Session {
            user,
            start: session.start,
            end: session.last,
            events: session.events,
        });
    }
    open.clear()
}

/// The source's operator state: each of this worker's partitions with its next offset.
const OFFSETS: &str = "partition-offsets";

fn run_worker(worker: &mut Worker, args: &Args, config: JobConfig) -> Result<()> {
    let started = Instant::now();
    let job = Job::start(worker, config)?;
    match (job.index(), job.restored()) {
        // Every worker restores its key groups at once; worker 0 speaks for them.
        (0, Some(restored)) => println!(
            "timely-sessions: worker 0 of {} restored checkpoint {} in {} ms",
            job.peers(),
            restored.checkpoint_id,
            started.elapsed().as_millis()
        ),
        (0, None) => println!(
            "timely-sessions: worker 0 of {} started without a checkpoint",
            job.peers()
        ),
        _ => {}
    }
    let offsets_state = job
        .operator_state()
        .list_state(&ListStateDescriptor::<(u32, u64)>::new(OFFSETS))?;
    let mut offsets = offsets_state.get()?;
    if job.restored().is_none() {
        offsets = (job.index()..args.partitions)
            .step_by(job.peers() as usize)
            .map(|p| (p, 0))
            .collect();
    }
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    let gap = args.gap;
    worker.dataflow::<u64, _, _>(|scope| {
        let (sessions, checkpoints) = input.to_stream(scope).keyed_state(
            &job,
            |e: &Event| e.user,
            |backend: &KeyedStateBackend| {
                backend.value_state(&ValueStateDescriptor::<Open>::new("open-session"))
            },
            move |open, ctx, event| on_event(open, ctx, event, gap),
            on_timer,
        );
        let written = write_epoch_files(sessions, &job, &args.out);
        checkpoints.complete_after(written).probe_with(&probe);
    });
    // Past the last event's session timer: every session has closed by then.
    let end = args.epochs + args.gap + 1;
    let mut epoch = job.first_epoch();
    input.advance_to(epoch);
    while epoch <= end {
        for (partition, offset) in offsets.iter_mut() {
            while let Some(e) = event(args, *partition, *offset).filter(|e| e.epoch <= epoch) {
                input.send(e);
                *offset += 1;
            }
        }
        offsets_state.update(&offsets)?;
        job.end_of_epoch(epoch);
        epoch += 1;
        input.advance_to(epoch);
        let next = Instant::now() + Duration::from_millis(args.epoch_ms);
        // At most a few epochs ahead of what the job has completed, and paced.
        while probe.less_than(&epoch.saturating_sub(4)) || Instant::now() < next {
            worker.step_or_park(Some(next.saturating_duration_since(Instant::now())));
            job.check()?;
        }
    }
    drop(input);
    job.end_of_input();
    while !probe.done() {
        worker.step();
        job.check()?;
    }
    Ok(())
}

fn open_root(root: &str) -> Result<Arc<dyn CheckpointStorage>> {
    if root.contains("://") {
        return Ok(Arc::new(
            keyedstate_object_store::ObjectStoreStorage::from_url(root)?,
        ));
    }
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format!("cannot create checkpoint root {root}"), e))?;
    Ok(Arc::new(DirectoryStorage::new(root)?))
}

fn main() {
    let args = Args::parse();
    let result = (|| -> Result<()> {
        let engine = match args.engine.as_str() {
            "rocksdb" => Engine::RocksDb,
            "heap" => Engine::Heap,
            other => {
                return Err(Error::invalid_argument(format!(
                    "--engine is rocksdb or heap, not {other}"
                )));
            }
        };
        let schedule = match args.interval_ms {
            Some(ms) => CheckpointSchedule::Interval(Duration::from_millis(ms)),
            None => CheckpointSchedule::EveryEpochs(args.every),
        };
        let mut config = JobConfig::new(open_root(&args.root)?, &args.work, engine, schedule);
        config.max_parallelism = MaxParallelism::new(128)?;
        let timely_args = std::iter::once("timely-sessions".to_owned()).chain(args.timely.clone());
        let timely = timely::Config::from_args(timely_args).map_err(Error::invalid_argument)?;
        let worker_args = args.clone();
        let guards = timely::execute(timely, move |worker| {
            if let Err(e) = run_worker(worker, &worker_args, config.clone()) {
                // A failed worker fails the job: the whole process goes (its peers see the
                // connections drop), and the job restarts from its latest checkpoint.
                eprintln!("timely-sessions: worker {}: {e}", worker.index());
                std::process::exit(1);
            }
        })
        .map_err(Error::invalid_argument)?;
        for result in guards.join() {
            result.map_err(Error::invalid_argument)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => println!(
            "timely-sessions: done: events={}",
            u64::from(args.partitions) * args.events_per_epoch * args.epochs
        ),
        Err(e) => {
            eprintln!("timely-sessions: {e}");
            std::process::exit(1);
        }
    }
}
