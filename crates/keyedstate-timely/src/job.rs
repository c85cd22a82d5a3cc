//! One worker's part of a checkpointed job: what it restored, the attempt name every worker of
//! this run writes its checkpoints under, the source's operator state at each checkpoint epoch,
//! and the first error an operator met.

use crate::config::{CheckpointSchedule, JobConfig};
use keyedstate::checkpoint::{
    CheckpointAttempt, CheckpointCoordinator, CheckpointMetadata, load_metadata,
};
use keyedstate::job::restore_subtask;
use keyedstate::{Error, KeyedStateBackend, OperatorStateBackend, Result};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandle, InputHandleVec, ProbeHandle, Scope, StreamVec};
use timely::worker::Worker;

/// A worker's handle on the job (cheap to clone; it stays on the worker's thread).
#[derive(Clone)]
pub struct Job {
    inner: Rc<Inner>,
}

struct Inner {
    config: JobConfig,
    index: u32,
    peers: u32,
    /// The name of this run's attempts, drawn by worker 0 and sent to every worker.
    token: String,
    restored: Option<CheckpointMetadata>,
    /// The keyed operator's backend until the operator takes it.
    backend: RefCell<Option<KeyedStateBackend>>,
    /// Worker 0's coordinator until the committer takes it.
    coordinator: RefCell<Option<CheckpointCoordinator>>,
    operator_state: OperatorStateBackend,
    /// The operator state's bytes at the end of each checkpoint epoch the keyed operator has not
    /// taken yet.
    operator_snapshots: RefCell<BTreeMap<u64, Vec<u8>>>,
    /// Where worker 0 announces each checkpoint epoch, at that epoch; every worker advances it
    /// with its source, and closes it when its source ends.
    control: RefCell<Option<InputHandleVec<u64, u64>>>,
    /// When the last checkpoint epoch ended (worker 0, for an interval schedule).
    last_checkpoint: Cell<Instant>,
    error: RefCell<Option<Error>>,
}

/// What worker 0 tells every worker before any of them restores: the run's attempt name and
/// the checkpoint to restore (`u64::MAX` for none).
type Start = (String, u64);

impl Job {
    /// Starts this worker's part of the job: worker 0 opens the checkpoint root (removing what
    /// a killed run left half-written), picks the latest completed checkpoint and a name for
    /// this run's attempts and sends both to every worker through a dataflow of its own; then
    /// each worker restores its key groups of that checkpoint, at this run's number of workers,
    /// and the source's operator state. Every worker of the job calls this, in the same order
    /// relative to its other dataflows.
    pub fn start(worker: &mut Worker, config: JobConfig) -> Result<Job> {
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        if config.schedule == CheckpointSchedule::EveryEpochs(0) || config.retained == 0 {
            return Err(Error::invalid_argument(
                "a job checkpoints every 1 or more epochs and retains 1 or more checkpoints",
            ));
        }
        let coordinator = match index {
            0 => Some(CheckpointCoordinator::open(
                config.storage.clone(),
                config.retained,
            )?),
            _ => None,
        };
        let start = coordinator.as_ref().map(|c| {
            let latest = c.latest().map_or(u64::MAX, |m| m.checkpoint_id);
            (CheckpointAttempt::new_token(), latest)
        });
        let (token, restore_id) = agree(worker, start)?;
        let restored = match restore_id {
            u64::MAX => None,
            id => Some(load_metadata(config.storage.as_ref(), id)?),
        };
        let work = config.work_dir.join(format!("worker-{index}"));
        if work.exists() {
            // What a killed run of this worker left: never restored from, always rebuilt.
            std::fs::remove_dir_all(&work).map_err(|e| {
                Error::io(
                    format!("cannot clear working directory {}", work.display()),
                    e,
                )
            })?;
        }
        let (backend, operator_state) = match &restored {
            Some(metadata) => (
                restore_subtask(
                    config.engine,
                    metadata,
                    &config.storage,
                    peers,
                    index,
                    &work,
                )?,
                OperatorStateBackend::restore(metadata, config.storage.as_ref(), peers, index)?,
            ),
            None => (
                keyedstate::job::open_subtask(
                    config.engine,
                    config.max_parallelism,
                    peers,
                    index,
                    &work,
                )?,
                OperatorStateBackend::new(),
            ),
        };
        Ok(Job {
            inner: Rc::new(Inner {
                config,
                index,
                peers,
                token,
                restored,
                backend: RefCell::new(Some(backend)),
                coordinator: RefCell::new(coordinator),
                operator_state,
                operator_snapshots: RefCell::default(),
                control: RefCell::new(Some(InputHandle::new())),
                last_checkpoint: Cell::new(Instant::now()),
                error: RefCell::default(),
            }),
        })
    }

    pub fn config(&self) -> &JobConfig {
        &self.inner.config
    }

    /// This worker's index, as timely numbers it.
    pub fn index(&self) -> u32 {
        self.inner.index
    }

    /// The number of workers of this run.
    pub fn peers(&self) -> u32 {
        self.inner.peers
    }

    /// The checkpoint this run restored, if any.
    pub fn restored(&self) -> Option<&CheckpointMetadata> {
        self.inner.restored.as_ref()
    }

    /// The first epoch this run's input produces: the one after the restored checkpoint's
    /// (its id is the epoch it was taken at), or 0.
    pub fn first_epoch(&self) -> u64 {
        self.restored().map_or(0, |m| m.checkpoint_id + 1)
    }

    /// Whether the job may checkpoint at `epoch`: with an interval schedule only worker 0 knows
    /// (and tells the others), so every epoch may be one.
    fn may_checkpoint_at(&self, epoch: u64) -> bool {
        match self.inner.config.schedule {
            CheckpointSchedule::EveryEpochs(every) => epoch > 0 && epoch.is_multiple_of(every),
            CheckpointSchedule::Interval(_) => true,
        }
    }

    /// The operator state of this worker's source (its partitions' offsets, say), restored
    /// and redistributed as Flink redistributes operator state.
    pub fn operator_state(&self) -> &OperatorStateBackend {
        &self.inner.operator_state
    }

    /// The source calls this once it has given every record of `epoch`, before it advances
    /// its input past it: the operator state as it is now goes into a checkpoint at `epoch`,
    /// and worker 0 decides whether there is one (and tells every worker).
    pub fn end_of_epoch(&self, epoch: u64) {
        if self.may_checkpoint_at(epoch) {
            let bytes = self.inner.operator_state.snapshot_bytes();
            self.inner
                .operator_snapshots
                .borrow_mut()
                .insert(epoch, bytes);
        }
        let mut control = self.inner.control.borrow_mut();
        let Some(control) = control.as_mut() else {
            return;
        };
        if *control.time() < epoch {
            control.advance_to(epoch);
        }
        if self.inner.index == 0 && self.checkpoint_due(epoch) {
            control.send(epoch);
        }
        control.advance_to(epoch + 1);
    }

    /// The source calls this when it has given its last epoch: the job ends once every
    /// worker's source has (no checkpoint is taken after that).
    pub fn end_of_input(&self) {
        self.inner.control.borrow_mut().take();
    }

    /// Whether the job checkpoints at `epoch` (worker 0, as its source ends `epoch`).
    fn checkpoint_due(&self, epoch: u64) -> bool {
        let due = match self.inner.config.schedule {
            CheckpointSchedule::EveryEpochs(_) => self.may_checkpoint_at(epoch),
            CheckpointSchedule::Interval(interval) => {
                self.inner.last_checkpoint.get().elapsed() >= interval
            }
        };
        if due {
            self.inner.last_checkpoint.set(Instant::now());
        }
        due
    }

    /// The checkpoint epochs worker 0 announces, on every worker.
    pub(crate) fn checkpoint_epochs<'scope>(
        &self,
        scope: Scope<'scope, u64>,
    ) -> Result<StreamVec<'scope, u64, u64>> {
        let mut control = self.inner.control.borrow_mut();
        let control = control.as_mut().ok_or_else(|| {
            Error::invalid_argument("the job's input has ended before its keyed operator was built")
        })?;
        let announced = control.to_stream(scope).broadcast();
        control.advance_to(self.first_epoch());
        Ok(announced)
    }

    /// The attempt at checkpoint `epoch` that this run's workers write.
    pub(crate) fn attempt(&self, epoch: u64) -> Result<CheckpointAttempt> {
        CheckpointAttempt::named(epoch, &self.inner.token)
    }

    /// The operator state recorded at the end of checkpoint epoch `epoch`; older ones go.
    pub(crate) fn take_operator_snapshot(&self, epoch: u64) -> Option<Vec<u8>> {
        let mut snapshots = self.inner.operator_snapshots.borrow_mut();
        let bytes = snapshots.remove(&epoch);
        snapshots.retain(|&e, _| e > epoch);
        bytes
    }

    pub(crate) fn take_backend(&self) -> Result<KeyedStateBackend> {
        self.inner.backend.borrow_mut().take().ok_or_else(|| {
            Error::invalid_argument("a job has one checkpointed keyed operator; it has one already")
        })
    }

    pub(crate) fn take_coordinator(&self) -> Option<CheckpointCoordinator> {
        self.inner.coordinator.borrow_mut().take()
    }

    /// Records the first error an operator met: from then on the operators of this worker do
    /// nothing more, and the worker's loop returns it (see [`Job::check`]).
    pub(crate) fn fail(&self, error: Error) {
        tracing::error!(worker = self.inner.index, %error, "keyed operator failed");
        self.inner.error.borrow_mut().get_or_insert(error);
    }

    pub(crate) fn failed(&self) -> bool {
        self.inner.error.borrow().is_some()
    }

    /// The error an operator of this worker met, if any. The worker's loop checks it between
    /// steps: a failed worker ends its process, the job restarts from its latest completed
    /// checkpoint (Flink's default: a failed checkpoint fails the job).
    pub fn check(&self) -> Result<()> {
        match self.inner.error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Worker 0's `start` (`Some` there, `None` elsewhere) as every worker receives it.
fn agree(worker: &mut Worker, start: Option<Start>) -> Result<Start> {
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    let received: Rc<RefCell<Option<Start>>> = Rc::default();
    let sink = received.clone();
    worker.dataflow::<u64, _, _>(|scope| {
        input
            .to_stream(scope)
            .broadcast()
            .inspect(move |start: &Start| *sink.borrow_mut() = Some(start.clone()))
            .probe_with(&probe);
    });
    if let Some(start) = start {
        input.send(start);
    }
    drop(input);
    while !probe.done() {
        worker.step();
    }
    let start = received.borrow_mut().take();
    start.ok_or_else(|| Error::invalid_argument("worker 0 closed its input without a start"))
}
