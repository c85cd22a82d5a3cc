//! `keyedstate restore`: materializes one subtask of a checkpoint, at any parallelism, as a plain
//! RocksDB directory (one column family per state) that any RocksDB tool can open.

use crate::checkpoint_arg::open_checkpoint;
use crate::progress::{Metered, bytes_bar};
use clap::Args;
use keyedstate::checkpoint::CheckpointStorage;
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate::{Error, Result, StateBackend};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct RestoreArgs {
    /// A `chk-<id>` directory, or a checkpoint root (its latest completed checkpoint); a path or
    /// an object-store URL (`s3://bucket/prefix[/chk-<id>]`, endpoint and credentials from the
    /// `AWS_*` environment variables).
    checkpoint: PathBuf,
    /// The parallelism to restore at.
    #[arg(long)]
    parallelism: u32,
    /// The subtask, 0 to parallelism - 1.
    #[arg(long)]
    subtask: u32,
    /// The directory to create for the RocksDB database (must not exist, or be empty).
    #[arg(long)]
    into: PathBuf,
}

pub fn run(args: &RestoreArgs) -> Result<()> {
    let (storage, metadata) = open_checkpoint(&args.checkpoint)?;
    let range = metadata
        .max_parallelism
        .range_for_subtask(args.parallelism, args.subtask)?;
    if args.into.exists()
        && std::fs::read_dir(&args.into)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::invalid_argument(format!(
            "{} exists and is not empty",
            args.into.display()
        )));
    }
    let parent = args
        .into
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    // The instance is built next to the target and its database moved in place when complete.
    let instance = tempfile::tempdir_in(parent)
        .map_err(|e| Error::io("cannot create a working directory", e))?;
    let mut config = RocksDbConfig::new(
        instance.path().join("instance"),
        metadata.max_parallelism,
        range,
    );
    config.delete_on_close = false;
    let to_read = metadata
        .subtasks
        .iter()
        .filter(|h| h.key_group_range.intersect(range).is_some())
        .flat_map(|h| h.files())
        .map(|f| f.size)
        .sum();
    let progress = bytes_bar(to_read, format!("restoring subtask {}", args.subtask));
    let storage: Arc<dyn CheckpointStorage> = Metered::reads(storage, progress.clone());
    let restored = RocksDbBackend::restore_engine(config, &metadata, &storage);
    progress.finish_and_clear();
    let mut backend = restored?;
    let states: Vec<String> = backend.states().iter().map(|m| m.name.clone()).collect();
    backend.close()?;
    let _ = std::fs::remove_dir(&args.into);
    let db = instance.path().join("instance").join("db");
    std::fs::rename(&db, &args.into).map_err(|e| {
        Error::io(
            format!("cannot move the database to {}", args.into.display()),
            e,
        )
    })?;
    say!(
        "restored subtask {} of {} (key groups {range}) of checkpoint {} into {}",
        args.subtask,
        args.parallelism,
        metadata.checkpoint_id,
        args.into.display()
    );
    say!("column families: {}", states.join(", "));
    Ok(())
}
