//! Local recovery, as Flink's `state.backend.local-recovery`: a subtask keeps a copy of the
//! files of its last completed checkpoint on the machine that runs it, and a restore on that
//! machine reads them from there instead of downloading them.
//!
//! [`LocalRecovery`] is a [`CheckpointStorage`] in front of the job's (remote) storage, one per
//! subtask. Everything written through it goes to the remote storage, which stays the
//! checkpoint's only authority (`_metadata`, listings, `verify`), and a copy goes to a local
//! directory under the same path: SST files are hard-linked there from RocksDB's native
//! checkpoint (no bytes written), other files written a second time. Reads take the local copy
//! when it is there and passes its size and checksum check, and fall back to the remote file,
//! file by file, when it is missing or damaged; a shared file (an SST) read remotely is linked
//! into the local copy as well, so the checkpoints after a restore find it there.
//!
//! The copy is secondary: a local write that fails is logged and dropped, never a failed
//! checkpoint. After each completed checkpoint [`LocalRecovery::retain_only`] keeps the files of
//! that checkpoint's handle and removes the rest (older checkpoints, aborted attempts).

use super::canonical::SnapshotReader;
use super::metadata::{CheckpointMetadata, FileRef, SubtaskHandle};
use super::storage::{CheckpointStorage, DirectoryStorage, FileWriter, PutFile, checkpoint_dir};
use crate::error::Result;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a restore's files came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReads {
    pub local_files: u64,
    pub local_bytes: u64,
    pub remote_files: u64,
    pub remote_bytes: u64,
}

/// The storage subtask `subtask` of a job checkpoints and restores through: its local recovery
/// (`local[subtask]`) where it has one, `remote` otherwise.
pub fn subtask_storage(
    remote: &Arc<dyn CheckpointStorage>,
    local: &[Arc<LocalRecovery>],
    subtask: usize,
) -> Arc<dyn CheckpointStorage> {
    match local.get(subtask) {
        Some(local) => local.clone(),
        None => remote.clone(),
    }
}

/// After checkpoint `metadata` completed: each subtask's local copy (`local[i]` of subtask `i`)
/// keeps that checkpoint's files ([`LocalRecovery::retain_only`]). A failure is logged, not
/// returned: the copy is secondary.
pub fn retain_completed(local: &[Arc<LocalRecovery>], metadata: &CheckpointMetadata) {
    for (local, handle) in local.iter().zip(&metadata.subtasks) {
        if let Err(e) = local.retain_only(handle) {
            tracing::warn!(error = %e, "local recovery: cannot drop older local copies");
        }
    }
}

impl std::ops::AddAssign for RecoveryReads {
    fn add_assign(&mut self, other: RecoveryReads) {
        self.local_files += other.local_files;
        self.local_bytes += other.local_bytes;
        self.remote_files += other.remote_files;
        self.remote_bytes += other.remote_bytes;
    }
}

/// One subtask's checkpoint storage with a local copy of what it wrote (see the module docs).
pub struct LocalRecovery {
    remote: Arc<dyn CheckpointStorage>,
    local: DirectoryStorage,
    local_files: AtomicU64,
    local_bytes: AtomicU64,
    remote_files: AtomicU64,
    remote_bytes: AtomicU64,
}

impl LocalRecovery {
    /// `remote` with a local copy in `local_dir` (created if missing). Put `local_dir` on the
    /// filesystem of the subtask's RocksDB instance, so that SST files are hard-linked.
    pub fn new(remote: Arc<dyn CheckpointStorage>, local_dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(LocalRecovery {
            remote,
            local: DirectoryStorage::new(local_dir)?,
            local_files: AtomicU64::new(0),
            local_bytes: AtomicU64::new(0),
            remote_files: AtomicU64::new(0),
            remote_bytes: AtomicU64::new(0),
        })
    }

    pub fn local_dir(&self) -> &Path {
        self.local.root()
    }

    /// The storage behind the local copy.
    pub fn remote(&self) -> &Arc<dyn CheckpointStorage> {
        &self.remote
    }

    /// The files read so far, from the local copy and from the remote storage.
    pub fn reads(&self) -> RecoveryReads {
        RecoveryReads {
            local_files: self.local_files.load(Ordering::Relaxed),
            local_bytes: self.local_bytes.load(Ordering::Relaxed),
            remote_files: self.remote_files.load(Ordering::Relaxed),
            remote_bytes: self.remote_bytes.load(Ordering::Relaxed),
        }
    }

    /// After `handle`'s checkpoint completed: the local copy keeps exactly the files `handle`
    /// references and drops the rest. Fails only if the local directory cannot be listed.
    pub fn retain_only(&self, handle: &SubtaskHandle) -> Result<()> {
        let keep: BTreeSet<&str> = handle.files().iter().map(|f| f.path.as_str()).collect();
        let mut dirs = Vec::new();
        for (id, _) in self.local.checkpoint_dirs()? {
            dirs.push(checkpoint_dir(id));
        }
        dirs.push("shared".to_owned());
        for dir in &dirs {
            for path in self.local.list_files(dir)? {
                if !keep.contains(path.as_str()) {
                    self.best_effort("remove", &path, self.local.delete(&path));
                }
            }
        }
        // Directories the removals emptied (attempts, then checkpoints).
        for dir in dirs.iter().filter(|d| d.as_str() != "shared") {
            if self.local.list_files(dir)?.is_empty() {
                self.best_effort("remove", dir, self.local.delete_dir(dir));
            }
        }
        Ok(())
    }

    fn best_effort<T>(&self, what: &str, path: &str, result: Result<T>) -> Option<T> {
        result
            .inspect_err(|e| {
                tracing::warn!(error = %e, path, local = %self.local.root().display(), "local recovery: cannot {what} the local copy; the remote one is used");
            })
            .ok()
    }

    /// `read` from the local copy if it has `file` whole, counting where it came from.
    fn local_first<T>(
        &self,
        file: &FileRef,
        local: impl FnOnce(&DirectoryStorage) -> Result<T>,
        remote: impl FnOnce(&dyn CheckpointStorage) -> Result<T>,
    ) -> Result<T> {
        if self.local.exists(&file.path)
            && let Some(found) = self.best_effort("read", &file.path, local(&self.local))
        {
            self.local_files.fetch_add(1, Ordering::Relaxed);
            self.local_bytes.fetch_add(file.size, Ordering::Relaxed);
            return Ok(found);
        }
        let found = remote(self.remote.as_ref())?;
        self.remote_files.fetch_add(1, Ordering::Relaxed);
        self.remote_bytes.fetch_add(file.size, Ordering::Relaxed);
        Ok(found)
    }
}

impl CheckpointStorage for LocalRecovery {
    fn describe(&self) -> String {
        // The remote storage's files: RocksDB's confirmed SSTs stay valid through it.
        self.remote.describe()
    }

    fn as_dyn(&self) -> &dyn CheckpointStorage {
        self
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef> {
        let file = self.remote.put_bytes(path, bytes)?;
        self.best_effort("write", path, self.local.put_bytes(path, bytes));
        Ok(file)
    }

    fn create<'s>(&'s self, path: &str) -> Result<Box<dyn FileWriter + 's>> {
        let remote = self.remote.create(path)?;
        let local = self.best_effort("write", path, self.local.create(path));
        Ok(Box::new(Tee {
            owner: self,
            path: path.to_owned(),
            remote,
            local,
        }))
    }

    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile> {
        let put = self.remote.put_file(path, source)?;
        // A stale copy under this name (a failed earlier attempt) gives way to the new one.
        if self.local.put_file(path, source).is_err() {
            let _ = self.local.delete(path);
            self.best_effort("write", path, self.local.put_file(path, source));
        }
        Ok(put)
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        self.local_first(file, |l| l.read(file), |r| r.read(file))
    }

    fn open(&self, file: &FileRef) -> Result<Box<dyn SnapshotReader>> {
        self.local_first(file, |l| l.open(file), |r| r.open(file))
    }

    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()> {
        let mut remote_copy = false;
        self.local_first(
            file,
            |l| l.fetch(file, dest),
            |r| {
                remote_copy = true;
                // What a failed local fetch may have left.
                let _ = std::fs::remove_file(dest);
                r.fetch(file, dest)
            },
        )?;
        if remote_copy && file.is_shared() {
            // Immutable: linked, so the next checkpoint's copy of this SST costs nothing.
            let _ = self.local.delete(&file.path);
            self.best_effort("write", &file.path, self.local.put_file(&file.path, dest));
        }
        Ok(())
    }

    fn link(&self, file: &FileRef, dest: &Path) -> Result<bool> {
        // A file of the local copy is fetched (checked as it is linked, so that a damaged one
        // gives way to the remote file), not linked unread.
        if self.local.exists(&file.path) {
            return Ok(false);
        }
        let linked = self.remote.link(file, dest)?;
        if linked {
            self.remote_files.fetch_add(1, Ordering::Relaxed);
            self.remote_bytes.fetch_add(file.size, Ordering::Relaxed);
        }
        Ok(linked)
    }

    fn verify(&self, file: &FileRef) -> Result<()> {
        self.remote.verify(file)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.remote.delete(path)?;
        self.best_effort("remove", path, self.local.delete(path));
        Ok(())
    }

    fn delete_dir(&self, path: &str) -> Result<()> {
        self.remote.delete_dir(path)?;
        self.best_effort("remove", path, self.local.delete_dir(path));
        Ok(())
    }

    fn remove_empty_dir(&self, path: &str) -> Result<()> {
        self.remote.remove_empty_dir(path)?;
        self.best_effort("remove", path, self.local.remove_empty_dir(path));
        Ok(())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        self.remote.list_files(dir)
    }

    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>> {
        self.remote.checkpoint_dirs()
    }

    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()> {
        self.remote.write_metadata(id, bytes)
    }

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>> {
        self.remote.read_metadata(id)
    }
}

/// A file written to the remote storage and, while that works, to the local copy.
struct Tee<'s> {
    owner: &'s LocalRecovery,
    path: String,
    remote: Box<dyn FileWriter + 's>,
    local: Option<Box<dyn FileWriter + 's>>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.remote.write(buf)?;
        if let Some(local) = &mut self.local
            && let Err(e) = local.write_all(&buf[..n])
        {
            tracing::warn!(error = %e, path = %self.path, "local recovery: cannot write the local copy; the remote one is used");
            self.local = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.remote.flush()
    }
}

impl FileWriter for Tee<'_> {
    fn finish(self: Box<Self>) -> Result<FileRef> {
        let Tee {
            owner,
            path,
            remote,
            local,
        } = *self;
        let file = remote.finish()?;
        if let Some(local) = local {
            owner.best_effort("write", &path, local.finish());
        }
        Ok(file)
    }
}
