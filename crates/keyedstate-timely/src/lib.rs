//! Fault-tolerant, rescalable keyed state for timely dataflow.
//!
//! A job's keyed operator ([`KeyedState::keyed_state`]) runs one keyedstate backend per worker,
//! holding the key groups Flink would give that worker; records are exchanged to the worker
//! that owns their key's group. Timely timestamps are epochs: each worker processes an epoch
//! once its input frontier has passed it, fires its event-time timers at their epochs, and at
//! every checkpoint epoch (every N epochs, or a time interval: worker 0 announces them to all)
//! snapshots its backend and the source's operator state into the job's checkpoint root. Worker 0 completes the checkpoint once every worker's handle has arrived and
//! the job's effects have passed the epoch ([`Checkpoints::complete_after`]). A run starts from
//! the latest completed checkpoint ([`Job::start`]) at any number of workers and processes.
//!
//! See `docs/timely.md` for how to write a job, how checkpoints align with timely's progress
//! tracking, and what a restart costs; `src/bin/sessions.rs` is an example job.

pub mod checkpoints;
pub mod config;
pub mod epoch_files;
pub mod job;
pub mod keyed;

pub use checkpoints::Checkpoints;
pub use config::{CheckpointSchedule, JobConfig};
pub use epoch_files::{epoch_file_name, write_epoch_files};
pub use job::Job;
pub use keyed::{Context, KeyedState, worker_of};
