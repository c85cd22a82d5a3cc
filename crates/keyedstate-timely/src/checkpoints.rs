//! Completing checkpoints: worker 0 gathers every worker's handle of a checkpoint epoch and
//! writes its `_metadata` once the job's effects up to that epoch are done.
//!
//! Each worker sends its handle at the epoch it checkpointed, before it lets its output pass
//! that epoch; so once the handles' frontier has passed epoch `E`, every handle of `E` has
//! arrived. The effects' frontier (the stream behind the last operator with effects: the
//! sink's) passing `E` means every output of epochs up to `E` is written. Only then does the
//! checkpoint complete: a restart from it replays only epochs after `E`, whose effects were
//! not, or not all, written (and are written again, the same).

use crate::job::Job;
use keyedstate::checkpoint::SubtaskHandle;
use keyedstate::{Error, Result};
use std::collections::BTreeMap;
use timely::Container;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::{Stream, StreamVec};

/// The checkpoints of a job's keyed operator, to complete behind the job's effects.
#[must_use = "checkpoints complete only once joined with the job's effects: complete_after"]
pub struct Checkpoints<'scope> {
    job: Job,
    handles: StreamVec<'scope, u64, Vec<u8>>,
}

impl<'scope> Checkpoints<'scope> {
    pub(crate) fn new(job: Job, handles: StreamVec<'scope, u64, Vec<u8>>) -> Self {
        Checkpoints { job, handles }
    }

    /// Completes each checkpoint once `effects` (the output of the last operator with effects
    /// outside the dataflow) has passed its epoch. Returns the ids of the completed checkpoints,
    /// on worker 0, each at its epoch.
    pub fn complete_after<C: Container>(
        self,
        effects: Stream<'scope, u64, C>,
    ) -> StreamVec<'scope, u64, u64> {
        let job = self.job;
        let mut coordinator = job.take_coordinator();
        let mut waiting: BTreeMap<u64, (Capability<u64>, Vec<SubtaskHandle>)> = BTreeMap::new();
        self.handles
            .binary_frontier::<_, CapacityContainerBuilder<Vec<u64>>, _, _, _, _>(
                effects,
                Exchange::new(|_: &Vec<u8>| 0),
                Pipeline,
                "CompleteCheckpoints",
                move |_, _| {
                    move |(handles, handles_frontier), (effects, effects_frontier), output| {
                        effects.for_each(|_, _| {});
                        handles.for_each(|stamp, data| {
                            let epoch = crate::keyed::epoch_of(&stamp);
                            let entry = waiting.entry(epoch).or_insert_with(|| {
                                (stamp.delayed(&epoch, output.output_index()), Vec::new())
                            });
                            for bytes in data.drain(..) {
                                let origin = format!("a worker's handle of checkpoint {epoch}");
                                match SubtaskHandle::decode(&bytes, &origin) {
                                    Ok(handle) => entry.1.push(handle),
                                    Err(e) => job.fail(e),
                                }
                            }
                        });
                        let passed = |epoch: &u64| {
                            !handles_frontier.less_equal(epoch)
                                && !effects_frontier.less_equal(epoch)
                        };
                        while let Some(entry) = waiting.first_entry().filter(|e| passed(e.key())) {
                            let (epoch, (cap, handles)) = entry.remove_entry();
                            let Some(coordinator) = coordinator.as_mut() else {
                                continue; // Only worker 0 gets handles.
                            };
                            if job.failed() {
                                continue;
                            }
                            match complete(&job, coordinator, epoch, handles) {
                                Ok(true) => output.session(&cap).give(epoch),
                                Ok(false) => {}
                                Err(e) => job.fail(e),
                            }
                        }
                    }
                },
            )
    }
}

/// Completes checkpoint `epoch` from `handles` if every worker's is there (false if not: a
/// worker saw its input end before the epoch, and took no checkpoint).
fn complete(
    job: &Job,
    coordinator: &mut keyedstate::checkpoint::CheckpointCoordinator,
    epoch: u64,
    mut handles: Vec<SubtaskHandle>,
) -> Result<bool> {
    let attempt = job.attempt(epoch)?;
    handles.sort_by_key(|h| h.subtask);
    let whole = handles.len() == job.peers() as usize
        && handles
            .iter()
            .enumerate()
            .all(|(i, h)| h.subtask == i as u32);
    if !whole {
        tracing::warn!(
            epoch,
            handles = handles.len(),
            workers = job.peers(),
            "checkpoint left incomplete: not every worker took it"
        );
        // Its files go at the next opening of the root, with what no checkpoint references.
        return Ok(false);
    }
    let pending = coordinator.trigger_as(attempt)?;
    keyedstate::job::complete(
        coordinator,
        pending,
        job.config().max_parallelism,
        handles,
        &[],
    )
    .map_err(|e: Error| e.context(format_args!("completing checkpoint {epoch}")))?;
    Ok(true)
}
