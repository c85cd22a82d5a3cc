//! `keyedstate rescale`: an offline restore with rescale. Reads a checkpoint taken at parallelism
//! p and writes a complete checkpoint for parallelism p' under a new root, ready for `verify` and
//! for a job to restore. It never modifies its input. Input and output may each be a directory
//! or an object store: from one store to another, files stream through a local working
//! directory (the temporary RocksDB instances), never whole in memory.

use crate::checkpoint_arg::open_checkpoint;
use crate::progress::{Metered, bytes_bar};
use clap::{Args, ValueEnum};
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, SnapshotHandle,
};
use keyedstate::job::{self, Engine};
use keyedstate::{Error, OperatorStateBackend, Result, SnapshotKind};
use keyedstate_object_store::ObjectStoreStorage;
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
    /// The new checkpoint root: created, or empty; not inside the input. A directory, or an
    /// object-store URL (`s3://bucket/prefix`).
    #[arg(long)]
    out: String,
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

/// Where the rescaled checkpoint goes.
enum Output {
    Directory { path: PathBuf, created: bool },
    Store(Arc<dyn CheckpointStorage>),
}

impl Output {
    /// Opens `out` after checking it is empty and apart from `input`.
    fn open(out: &str, input: &Arc<dyn CheckpointStorage>) -> Result<Output> {
        if !out.contains("://") {
            let path = PathBuf::from(out);
            check_output(&path, Path::new(&input.describe()))?;
            let created = !path.exists();
            return Ok(Output::Directory { path, created });
        }
        let storage: Arc<dyn CheckpointStorage> = Arc::new(ObjectStoreStorage::from_url(out)?);
        let (a, b) = (
            format!("{}/", storage.describe().trim_end_matches('/')),
            format!("{}/", input.describe().trim_end_matches('/')),
        );
        if a.starts_with(&b) || b.starts_with(&a) {
            return Err(Error::invalid_argument(format!(
                "output {} and input {} must not contain each other",
                storage.describe(),
                input.describe()
            )));
        }
        if !storage.checkpoint_dirs()?.is_empty() || !storage.list_files("shared")?.is_empty() {
            return Err(Error::invalid_argument(format!(
                "output {} is not empty",
                storage.describe()
            )));
        }
        Ok(Output::Store(storage))
    }

    fn storage(&self) -> Result<Arc<dyn CheckpointStorage>> {
        match self {
            Output::Directory { path, .. } => Ok(Arc::new(DirectoryStorage::new(path)?)),
            Output::Store(storage) => Ok(storage.clone()),
        }
    }

    /// A working directory for the temporary instances: inside an output directory (so that
    /// SST files are hard-linked into it), the system's otherwise.
    fn work_dir(&self) -> Result<tempfile::TempDir> {
        match self {
            Output::Directory { path, .. } => tempfile::tempdir_in(path),
            Output::Store(_) => tempfile::tempdir(),
        }
        .map_err(|e| Error::io("cannot create a working directory", e))
    }

    /// Removes everything written: the output was empty, and an incomplete root would only
    /// mislead.
    fn remove_written(&self) {
        match self {
            Output::Directory { path, created } => {
                if *created {
                    let _ = std::fs::remove_dir_all(path);
                } else if let Ok(entries) = std::fs::read_dir(path) {
                    for entry in entries.flatten() {
                        let _ = std::fs::remove_dir_all(entry.path())
                            .or_else(|_| std::fs::remove_file(entry.path()));
                    }
                }
            }
            Output::Store(storage) => {
                for (id, _) in storage.checkpoint_dirs().unwrap_or_default() {
                    let _ = storage.delete_dir(&format!("chk-{id}"));
                }
                for path in storage.list_files("shared").unwrap_or_default() {
                    let _ = storage.delete(&path);
                }
            }
        }
    }

    /// Where checkpoint `id` of the output is, for the report.
    fn checkpoint(&self, id: u64) -> String {
        match self {
            Output::Directory { path, .. } => path.join(format!("chk-{id}")).display().to_string(),
            Output::Store(storage) => format!("{}/chk-{id}", storage.describe()),
        }
    }
}

pub fn run(args: &RescaleArgs) -> Result<()> {
    let started = Instant::now();
    let (input, metadata) = open_checkpoint(&args.checkpoint)?;
    let output = Output::open(&args.out, &input)?;
    metadata
        .max_parallelism
        .range_for_subtask(args.parallelism, 0)?;
    let result = write_rescaled(args, &input, &output, &metadata, started);
    if result.is_err() {
        output.remove_written();
    }
    result
}

fn write_rescaled(
    args: &RescaleArgs,
    input: &Arc<dyn CheckpointStorage>,
    out: &Output,
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
    // The bar counts the bytes each new subtask reads: the files of the old subtasks whose key
    // groups overlap its own.
    let mut to_read = 0;
    for index in 0..args.parallelism {
        let range = metadata
            .max_parallelism
            .range_for_subtask(args.parallelism, index)?;
        for handle in &metadata.subtasks {
            if handle.key_group_range.intersect(range).is_some() {
                to_read += handle.files().iter().map(|f| f.size).sum::<u64>();
            }
        }
    }
    let progress = bytes_bar(to_read, format!("rescaling to {}", args.parallelism));
    let input: Arc<dyn CheckpointStorage> = Metered::reads(input.clone(), progress.clone());
    let input = &input;
    let output = out.storage()?;
    let mut coordinator = CheckpointCoordinator::open(output.clone(), 1)?;
    coordinator.continue_after(metadata.checkpoint_id.saturating_sub(1));
    let work = out.work_dir()?;
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
        out.checkpoint(written.checkpoint_id),
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
