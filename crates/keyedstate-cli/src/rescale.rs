//! `keyedstate rescale`: an offline restore with rescale. Reads a checkpoint taken at parallelism
//! p and writes a complete checkpoint for parallelism p' under a new root, ready for `verify` and
//! for a job to restore. It never modifies its input.

use crate::checkpoint_arg::open_checkpoint;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, SnapshotHandle,
};
use keyedstate::job::{self, Engine};
use keyedstate::{Error, OperatorStateBackend, Result, SnapshotKind};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct RescaleArgs {
    /// A `chk-<id>` directory, or a checkpoint root (its latest completed checkpoint); a path or
    /// an object-store URL (`s3://bucket/prefix[/chk-<id>]`, endpoint and credentials from the
    /// `AWS_*` environment variables).
    checkpoint: PathBuf,
    /// The parallelism of the new checkpoint (at most the checkpoint's max parallelism).
    #[arg(long)]
    parallelism: u32,
    /// The new checkpoint root: created, or empty; not inside the input.
    #[arg(long)]
    out: PathBuf,
    /// The backend that restores and snapshots each new subtask: RocksDB writes incremental
    /// snapshots (SST files), the heap canonical full snapshots.
    #[arg(long, value_enum, default_value_t = Backend::Rocksdb)]
    backend: Backend,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Rocksdb,
    Heap,
}

/// Refuses an output inside the input root, or one that holds anything.
fn check_output(out: &Path, input_root: &Path) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out)
            .map_err(|e| Error::io(format!("cannot read {}", out.display()), e))?;
        if entries.next().is_some() {
            return Err(Error::invalid_argument(format!(
                "output directory {} is not empty",
                out.display()
            )));
        }
    }
    let absolute = |p: &Path| -> Result<PathBuf> {
        // The output may not exist yet: resolve its nearest existing ancestor.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            rest.push(
                existing
                    .file_name()
                    .map(|n| n.to_owned())
                    .unwrap_or_default(),
            );
            if !existing.pop() {
                existing = PathBuf::from(".");
                break;
            }
        }
        let mut resolved = std::fs::canonicalize(&existing)
            .map_err(|e| Error::io(format!("cannot resolve {}", existing.display()), e))?;
        resolved.extend(rest.iter().rev());
        Ok(resolved)
    };
    let (out, input) = (absolute(out)?, absolute(input_root)?);
    if out.starts_with(&input) || input.starts_with(&out) {
        return Err(Error::invalid_argument(format!(
            "output {} and input {} must not contain each other",
            out.display(),
            input.display()
        )));
    }
    Ok(())
}

pub fn run(args: &RescaleArgs) -> Result<()> {
    let started = Instant::now();
    let (input, metadata) = open_checkpoint(&args.checkpoint)?;
    check_output(&args.out, Path::new(&input.describe()))?;
    metadata
        .max_parallelism
        .range_for_subtask(args.parallelism, 0)?;
    let created = !args.out.exists();
    let result = write_rescaled(args, &input, &metadata, started);
    if result.is_err() {
        // Leave no output: an incomplete root would only mislead.
        if created {
            let _ = std::fs::remove_dir_all(&args.out);
        } else if let Ok(entries) = std::fs::read_dir(&args.out) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path())
                    .or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
    }
    result
}

fn write_rescaled(
    args: &RescaleArgs,
    input: &Arc<dyn CheckpointStorage>,
    metadata: &keyedstate::checkpoint::CheckpointMetadata,
    started: Instant,
) -> Result<()> {
    let (engine, kind) = match args.backend {
        Backend::Rocksdb => (Engine::RocksDb, SnapshotKind::Incremental),
        Backend::Heap => (Engine::Heap, SnapshotKind::Full),
    };
    // Verify the whole input first: a corrupt file fails the rescale before anything is written.
    for file in metadata.files() {
        input.verify(file)?;
    }
    let output: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&args.out)?);
    let mut coordinator = CheckpointCoordinator::open(output.clone(), 1)?;
    coordinator.continue_after(metadata.checkpoint_id.saturating_sub(1));
    let work = tempfile::tempdir_in(&args.out)
        .map_err(|e| Error::io("cannot create a working directory", e))?;
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(u64::from(args.parallelism));
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} subtasks, {elapsed}")
                .expect("valid template"),
        );
        bar.set_message(format!("rescaling to {}", args.parallelism));
        bar
    } else {
        ProgressBar::hidden()
    };
    let with_operator_state = metadata.subtasks.iter().any(|h| h.operator_state.is_some());
    let pending = coordinator.trigger()?;
    let mut handles = Vec::new();
    for index in 0..args.parallelism {
        let backend = job::restore_subtask(
            engine,
            metadata,
            input,
            args.parallelism,
            index,
            work.path(),
        )?;
        let mut handle =
            backend
                .snapshot(pending.id(), kind)?
                .run(&output, pending.attempt(), index)?;
        backend.close()?;
        if with_operator_state {
            let operators =
                OperatorStateBackend::restore(metadata, input.as_ref(), args.parallelism, index)?;
            let path = pending.attempt().operator_state_path(index);
            handle.operator_state = Some(output.put_bytes(&path, &operators.snapshot_bytes())?);
        }
        handles.push(handle);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let written = coordinator
        .complete(pending, metadata.max_parallelism, handles)?
        .clone();
    drop(work);
    let read: u64 = metadata.files().map(|f| f.size).sum();
    let wrote: u64 = written.files().map(|f| f.size).sum();
    let incremental = written
        .subtasks
        .iter()
        .any(|h| matches!(h.snapshot, SnapshotHandle::RocksDbIncremental { .. }));
    say!(
        "rescaled checkpoint {} from parallelism {} to {} into {} ({} snapshots)",
        metadata.checkpoint_id,
        metadata.parallelism(),
        args.parallelism,
        args.out
            .join(format!("chk-{}", written.checkpoint_id))
            .display(),
        if incremental {
            "RocksDB incremental"
        } else {
            "full"
        }
    );
    say!(
        "read {read} bytes, wrote {wrote} bytes in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
