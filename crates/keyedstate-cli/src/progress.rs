//! Progress of long transfers: a bar on a terminal (stderr), nothing otherwise. [`Metered`] is
//! checkpoint storage that advances the bar by each file's size as it is read.

use indicatif::{ProgressBar, ProgressStyle};
use keyedstate::Result;
use keyedstate::checkpoint::canonical::SnapshotReader;
use keyedstate::checkpoint::{CheckpointStorage, FileRef, FileWriter, PutFile};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A bar of `total` bytes with `message`, drawn only when stderr is a terminal.
pub fn bytes_bar(total: u64, message: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {elapsed}",
        )
        .expect("valid template"),
    );
    bar.set_message(message);
    // Ticks between files, so that a long one does not look like a hang.
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `inner`, advancing `bar` by the size of every file read from it.
pub struct Metered {
    inner: Arc<dyn CheckpointStorage>,
    bar: ProgressBar,
}

impl Metered {
    pub fn reads(inner: Arc<dyn CheckpointStorage>, bar: ProgressBar) -> Arc<Self> {
        Arc::new(Metered { inner, bar })
    }

    fn read<T>(&self, file: &FileRef, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.bar.inc(file.size);
        }
        result
    }
}

impl CheckpointStorage for Metered {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn as_dyn(&self) -> &dyn CheckpointStorage {
        self
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef> {
        self.inner.put_bytes(path, bytes)
    }

    fn create<'s>(&'s self, path: &str) -> Result<Box<dyn FileWriter + 's>> {
        self.inner.create(path)
    }

    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile> {
        self.inner.put_file(path, source)
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        self.read(file, self.inner.read(file))
    }

    fn open(&self, file: &FileRef) -> Result<Box<dyn SnapshotReader>> {
        self.read(file, self.inner.open(file))
    }

    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()> {
        self.read(file, self.inner.fetch(file, dest))
    }

    fn link(&self, file: &FileRef, dest: &Path) -> Result<bool> {
        self.read(file, self.inner.link(file, dest))
    }

    fn verify(&self, file: &FileRef) -> Result<()> {
        self.inner.verify(file)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)
    }

    fn delete_dir(&self, path: &str) -> Result<()> {
        self.inner.delete_dir(path)
    }

    fn remove_empty_dir(&self, path: &str) -> Result<()> {
        self.inner.remove_empty_dir(path)
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        self.inner.list_files(dir)
    }

    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>> {
        self.inner.checkpoint_dirs()
    }

    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()> {
        self.inner.write_metadata(id, bytes)
    }

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>> {
        self.inner.read_metadata(id)
    }
}
