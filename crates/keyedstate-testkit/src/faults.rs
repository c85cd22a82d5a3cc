//! [`FaultyStorage`]: checkpoint storage that fails its n-th I/O call, for tests that take a
//! checkpoint once for every point at which it can fail.
//!
//! Every [`CheckpointStorage`] call but `describe` is one I/O call: a write (`put_bytes`,
//! `put_file`, `write_metadata`: each a write, an fsync and, for `_metadata`, a rename), a read
//! (`read`, `fetch`, `link`, `verify`, `read_metadata`), a listing (`list_files`, `checkpoint_dirs`) or a
//! deletion (`delete`, `delete_dir`).

use keyedstate_core::checkpoint::{CheckpointStorage, FileRef, PutFile};
use keyedstate_core::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How the armed call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// That call alone returns an I/O error (a full disk, a dropped connection); later calls
    /// succeed.
    Error,
    /// The process stops at that call: a write leaves half its bytes behind, and that call and
    /// every later one fail, so nothing after it reaches the storage (no cleanup either).
    Crash,
}

pub struct FaultyStorage {
    inner: Arc<dyn CheckpointStorage>,
    calls: AtomicU64,
    /// The call number that fails (1-based); 0 when disarmed.
    fail_at: AtomicU64,
    crash: AtomicBool,
    crashed: AtomicBool,
}

impl FaultyStorage {
    pub fn new(inner: Arc<dyn CheckpointStorage>) -> Self {
        FaultyStorage {
            inner,
            calls: AtomicU64::new(0),
            fail_at: AtomicU64::new(0),
            crash: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
        }
    }

    /// I/O calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Makes the `n`-th call from now (1 = the next one) fail with `fault`.
    pub fn fail_after(&self, n: u64, fault: Fault) {
        self.crash.store(fault == Fault::Crash, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
        self.fail_at.store(self.calls() + n, Ordering::SeqCst);
    }

    /// No call fails from now on (and a crash is over: a restarted process).
    pub fn disarm(&self) {
        self.fail_at.store(0, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// Whether a crash has happened (every call fails since).
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Counts a call; `Err` when it is to fail, after `torn` wrote what a crash would leave.
    fn call(&self, op: &str, target: &str, torn: impl FnOnce()) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let injected = |what: &str| {
            Err(Error::io(
                format!("{op} {target}"),
                std::io::Error::other(format!("injected {what} at I/O call {n}")),
            ))
        };
        if self.crashed() {
            return injected("stop (the process is gone)");
        }
        if n != self.fail_at.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.crash.load(Ordering::SeqCst) {
            torn();
            self.crashed.store(true, Ordering::SeqCst);
            injected("crash")
        } else {
            injected("failure")
        }
    }

    /// A write cut off halfway, where the storage has no atomic write to protect it.
    fn torn_put(&self, path: &str, bytes: &[u8]) {
        let _ = self.inner.put_bytes(path, &bytes[..bytes.len() / 2]);
    }
}

impl CheckpointStorage for FaultyStorage {
    fn describe(&self) -> String {
        // The same files as the inner storage: RocksDB's confirmed files stay valid through it.
        self.inner.describe()
    }

    fn as_dyn(&self) -> &dyn CheckpointStorage {
        self
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef> {
        self.call("write", path, || self.torn_put(path, bytes))?;
        self.inner.put_bytes(path, bytes)
    }

    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile> {
        self.call("write", path, || {
            if let Ok(bytes) = std::fs::read(source) {
                self.torn_put(path, &bytes);
            }
        })?;
        self.inner.put_file(path, source)
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        self.call("read", &file.path, || ())?;
        self.inner.read(file)
    }

    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()> {
        self.call("read", &file.path, || ())?;
        self.inner.fetch(file, dest)
    }

    fn link(&self, file: &FileRef, dest: &Path) -> Result<bool> {
        self.call("read", &file.path, || ())?;
        self.inner.link(file, dest)
    }

    fn verify(&self, file: &FileRef) -> Result<()> {
        self.call("read", &file.path, || ())?;
        self.inner.verify(file)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.call("delete", path, || ())?;
        self.inner.delete(path)
    }

    fn delete_dir(&self, path: &str) -> Result<()> {
        self.call("delete", path, || ())?;
        self.inner.delete_dir(path)
    }

    fn remove_empty_dir(&self, path: &str) -> Result<()> {
        self.call("delete", path, || ())?;
        self.inner.remove_empty_dir(path)
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        self.call("list", dir, || ())?;
        self.inner.list_files(dir)
    }

    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>> {
        self.call("list", "the checkpoint directories", || ())?;
        self.inner.checkpoint_dirs()
    }

    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()> {
        // `_metadata` is written under a temporary name and renamed: a crash leaves none.
        self.call("write", &format!("chk-{id}/_metadata"), || ())?;
        self.inner.write_metadata(id, bytes)
    }

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>> {
        self.call("read", &format!("chk-{id}/_metadata"), || ())?;
        self.inner.read_metadata(id)
    }
}
