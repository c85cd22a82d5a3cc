//! `keyedstate verify`: every referenced file present with its size and checksum, and the
//! checkpoint restores; optionally the logical digest of its state.

use crate::checkpoint_arg::open_checkpoint;
use clap::Args;
use keyedstate::checkpoint::{
    CheckpointMetadata, CheckpointStorage, SnapshotHandle, load_latest, load_metadata,
};
use keyedstate::job::{self, Engine};
use keyedstate::{Error, Result, StateDigest};
use std::path::PathBuf;
use std::sync::Arc;

/// How many times a root whose checkpoints a running job keeps subsuming is read again.
const ATTEMPTS: usize = 10;

#[derive(Args)]
pub struct VerifyArgs {
    /// A `chk-<id>` directory, or a checkpoint root (its latest completed checkpoint); a path or
    /// an object-store URL (`s3://bucket/prefix[/chk-<id>]`, endpoint and credentials from the
    /// `AWS_*` environment variables).
    checkpoint: PathBuf,
    /// Print, as the last line, `entries=<N> digest=<hex>`: an order-independent hash of every
    /// logical entry, equal for equal state whatever the backend, format or parallelism.
    #[arg(long)]
    digest: bool,
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let (storage, mut metadata) = open_checkpoint(&args.checkpoint)?;
    let whole_root = !args
        .checkpoint
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("chk-"));
    for _ in 1..ATTEMPTS {
        match verify(args, &storage, &metadata) {
            Err(e) if subsumed(&storage, &metadata) => {
                let id = metadata.checkpoint_id;
                if !whole_root {
                    return Err(Error::invalid_argument(format!(
                        "checkpoint {id} was subsumed (removed by its job's retention) while it \
                         was read: {e}"
                    )));
                }
                metadata = load_latest(storage.as_ref())?;
                say!(
                    "checkpoint {id} was subsumed while it was read; verifying the latest, \
                     checkpoint {}",
                    metadata.checkpoint_id
                );
            }
            result => return result,
        }
    }
    verify(args, &storage, &metadata)
}

/// Whether `metadata`'s checkpoint is gone from `storage` (a job's retention removed it).
fn subsumed(storage: &Arc<dyn CheckpointStorage>, metadata: &CheckpointMetadata) -> bool {
    load_metadata(storage.as_ref(), metadata.checkpoint_id).is_err()
        && storage
            .checkpoint_dirs()
            .is_ok_and(|dirs| !dirs.contains(&(metadata.checkpoint_id, true)))
}

fn verify(
    args: &VerifyArgs,
    storage: &Arc<dyn CheckpointStorage>,
    metadata: &CheckpointMetadata,
) -> Result<()> {
    let files: Vec<_> = metadata.files().collect();
    for file in &files {
        storage.verify(file)?;
    }
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    say!(
        "checkpoint {}: {} files, {bytes} bytes, sizes and checksums OK",
        metadata.checkpoint_id,
        files.len()
    );
    // Incremental snapshots restore only into RocksDB; full ones restore fastest on the heap.
    let incremental = metadata
        .subtasks
        .iter()
        .any(|h| matches!(h.snapshot, SnapshotHandle::RocksDbIncremental { .. }));
    let engine = if incremental {
        Engine::RocksDb
    } else {
        Engine::Heap
    };
    let work =
        tempfile::tempdir().map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let mut digest = StateDigest::default();
    for index in 0..metadata.parallelism() {
        let backend = job::restore_subtask(
            engine,
            metadata,
            storage,
            metadata.parallelism(),
            index,
            work.path(),
        )?;
        digest.merge(backend.digest()?);
        backend.close()?;
    }
    say!(
        "restored {} subtasks with the {} backend: OK",
        metadata.parallelism(),
        engine.name()
    );
    if args.digest {
        say!("{digest}");
    }
    Ok(())
}
