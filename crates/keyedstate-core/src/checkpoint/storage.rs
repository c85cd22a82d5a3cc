//! Where checkpoints live: a directory (local, or on NFS where hard links from the working
//! directory fail with EXDEV and files are copied), or memory (tests, small state).
//!
//! Layout under the root: `shared/` for files several checkpoints may reference, `chk-<id>/` for
//! one checkpoint's own files and its `_metadata`, which is written last (temporary name, fsync,
//! rename, fsync of the directory): a checkpoint without `_metadata` does not exist.

use super::canonical::SnapshotReader;
use super::metadata::FileRef;
use crate::error::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The name of a checkpoint's metadata file inside `chk-<id>/`.
pub const METADATA_FILE: &str = "_metadata";

/// The directory of checkpoint `id`, relative to the root.
pub fn checkpoint_dir(id: u64) -> String {
    format!("chk-{id}")
}

/// The error of a `_metadata` write that finds one there: the first writer's stays.
pub fn already_complete(id: u64, location: &str) -> Error {
    Error::invalid_argument(format!(
        "checkpoint {id} in {location} is complete already: another writer wrote its {METADATA_FILE} first, and it is kept"
    ))
}

/// A checkpoint store. Paths are relative to its root, `/`-separated.
pub trait CheckpointStorage: Send + Sync {
    /// Where it is: for messages, and as its identity (two storages with the same description
    /// hold the same files).
    fn describe(&self) -> String;

    /// Stores `bytes` at `path` durably.
    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef>;

    /// Creates the file `path` to be written as a stream (a full snapshot), durably stored when
    /// the writer finishes. By default the bytes are gathered and stored with `put_bytes`.
    fn create<'s>(&'s self, path: &str) -> Result<Box<dyn FileWriter + 's>> {
        check_relative_path(path)?;
        Ok(Box::new(Gathered {
            storage: self.as_dyn(),
            path: path.to_owned(),
            bytes: Vec::new(),
        }))
    }

    /// This storage as a trait object (for default methods that hand it on).
    fn as_dyn(&self) -> &dyn CheckpointStorage;

    /// Stores a copy (or hard link) of local file `source` at `path` durably. A file already at
    /// `path` with the same size and checksum is taken as it is (an instance re-uploading an SST
    /// a completed checkpoint holds, before it heard of that completion); one with other contents
    /// is an error.
    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile>;

    /// Reads a file after checking its size and checksum.
    fn read(&self, file: &FileRef) -> Result<Vec<u8>>;

    /// Opens a file for reading, after checking its size and checksum: for files too large to
    /// hold in memory (full snapshots). By default it is read into memory.
    fn open(&self, file: &FileRef) -> Result<Box<dyn SnapshotReader>> {
        Ok(Box::new(std::io::Cursor::new(self.read(file)?)))
    }

    /// Puts a file at local path `dest` (a copy, or a hard link of an immutable shared file) and
    /// checks its size and checksum.
    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()>;

    /// Puts an immutable shared file at local path `dest` as a hard link, without reading it,
    /// where the storage is a directory on `dest`'s filesystem; false (nothing done) where it
    /// cannot, or for any other file. Only its size is checked: the caller runs
    /// [`check_local_file`] before anything reads it. A restore that drops most of the files
    /// it links (a scale-out) so reads only those it keeps.
    fn link(&self, file: &FileRef, dest: &Path) -> Result<bool> {
        let _ = (file, dest);
        Ok(false)
    }

    /// Checks that a file is present with its size and checksum.
    fn verify(&self, file: &FileRef) -> Result<()>;

    /// Removes a file; a missing file is not an error.
    fn delete(&self, path: &str) -> Result<()>;

    /// Removes a directory and everything in it; a missing one is not an error.
    fn delete_dir(&self, path: &str) -> Result<()>;

    /// Removes directory `path` if nothing is in it (an aborted attempt's `chk-<id>/`, which
    /// another writer may still be filling). Stores without directories have nothing to do.
    fn remove_empty_dir(&self, path: &str) -> Result<()> {
        let _ = path;
        Ok(())
    }

    /// Paths of the files below `dir`, relative to the root.
    fn list_files(&self, dir: &str) -> Result<Vec<String>>;

    /// Ids of the `chk-<id>` directories, with whether each has its `_metadata`.
    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>>;

    /// Writes checkpoint `id`'s `_metadata` atomically and only if there is none: after this
    /// returns the checkpoint exists, and a crash before it leaves no `_metadata` at all. One
    /// already there (another writer completed the id first) stays, and this fails with
    /// `InvalidArgument` ([`already_complete`]).
    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()>;

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>>;
}

/// A file being written to checkpoint storage; `finish` makes it durable and returns its
/// reference (size and CRC32C of what was written). Dropped unfinished, it is not stored.
pub trait FileWriter: Write {
    fn finish(self: Box<Self>) -> Result<FileRef>;
}

/// The default [`CheckpointStorage::create`]: the bytes in memory until `finish`.
struct Gathered<'s> {
    storage: &'s dyn CheckpointStorage,
    path: String,
    bytes: Vec<u8>,
}

impl Write for Gathered<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FileWriter for Gathered<'_> {
    fn finish(self: Box<Self>) -> Result<FileRef> {
        self.storage.put_bytes(&self.path, &self.bytes)
    }
}

/// [`DirectoryStorage::create`]: written under a temporary name beside its place, checksummed
/// as it goes; `finish` fsyncs it, renames it into place and fsyncs the directory.
struct DirectoryFile {
    path: String,
    full: PathBuf,
    temporary: PathBuf,
    out: std::io::BufWriter<File>,
    size: u64,
    crc: u32,
    finished: bool,
}

impl Write for DirectoryFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl FileWriter for DirectoryFile {
    fn finish(mut self: Box<Self>) -> Result<FileRef> {
        let io = |e| {
            Error::io(
                format!("cannot write checkpoint file {}", self.full.display()),
                e,
            )
        };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        fs::rename(&self.temporary, &self.full).map_err(io)?;
        self.finished = true;
        sync_dir(self.full.parent().expect("has a parent"))?;
        Ok(FileRef {
            path: self.path.clone(),
            size: self.size,
            crc32c: self.crc,
        })
    }
}

impl Drop for DirectoryFile {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// The outcome of [`CheckpointStorage::put_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutFile {
    pub file: FileRef,
    /// False when an identical file was there already: it belongs to whoever wrote it, and a
    /// failed attempt must not remove it.
    pub created: bool,
}

/// Takes an existing file at `path` if it has `source`'s size and checksum.
fn reuse_identical(path: &str, existing: (u64, u32), source: (u64, u32)) -> Result<PutFile> {
    if existing != source {
        return Err(Error::corruption(format!(
            "checkpoint file {path} exists with other contents ({} bytes, checksum {:08x}) than the file to store ({} bytes, {:08x})",
            existing.0, existing.1, source.0, source.1
        )));
    }
    Ok(PutFile {
        file: FileRef {
            path: path.to_owned(),
            size: source.0,
            crc32c: source.1,
        },
        created: false,
    })
}

/// Checks a path read from metadata: relative, no `..`, no `.`, no empty part.
pub fn check_relative_path(path: &str) -> Result<()> {
    let refuse = || {
        Error::corruption(format!(
            "path '{path}' leaves the checkpoint root or is not a plain relative path"
        ))
    };
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return Err(refuse());
    }
    let parsed = Path::new(path);
    if !parsed
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        || path.split('/').any(str::is_empty)
    {
        return Err(refuse());
    }
    Ok(())
}

fn mismatch(file: &FileRef, what: String) -> Error {
    Error::corruption(format!("checkpoint file {} {what}", file.path))
}

fn check_contents(file: &FileRef, size: u64, crc: u32) -> Result<()> {
    if size != file.size {
        return Err(mismatch(
            file,
            format!("has {size} bytes, metadata says {}", file.size),
        ));
    }
    if crc != file.crc32c {
        return Err(mismatch(
            file,
            format!("has checksum {crc:08x}, metadata says {:08x}", file.crc32c),
        ));
    }
    Ok(())
}

/// Checks that the local file at `path` (one [`CheckpointStorage::link`] put there) has the
/// size and checksum `file` says.
pub fn check_local_file(file: &FileRef, path: &Path) -> Result<()> {
    let (size, crc) =
        checksum_file(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    check_contents(file, size, crc)
}

/// A checkpoint root directory on a local or network filesystem.
pub struct DirectoryStorage {
    root: PathBuf,
    temp_counter: AtomicU64,
}

impl DirectoryStorage {
    /// Opens (and creates) the root directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| {
            Error::io(
                format!("cannot create checkpoint root {}", root.display()),
                e,
            )
        })?;
        let root = fs::canonicalize(&root).map_err(|e| {
            Error::io(
                format!("cannot resolve checkpoint root {}", root.display()),
                e,
            )
        })?;
        Ok(DirectoryStorage {
            root,
            temp_counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a file is at `path` (false for a path that leaves the root).
    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_ok_and(|full| full.is_file())
    }

    /// The local path of `path`, which must stay inside the root even through symlinks.
    fn resolve(&self, path: &str) -> Result<PathBuf> {
        check_relative_path(path)?;
        let full = self.root.join(path);
        if let Ok(real) = fs::canonicalize(&full)
            && !real.starts_with(&self.root)
        {
            return Err(Error::corruption(format!(
                "path '{path}' resolves through a symlink to {}, outside the checkpoint root",
                real.display()
            )));
        }
        Ok(full)
    }

    fn io(&self, what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let message = format!("{what} {}", path.display());
        move |e| Error::io(message, e)
    }

    fn create_parent(&self, full: &Path) -> Result<()> {
        let parent = full.parent().expect("paths below the root have a parent");
        fs::create_dir_all(parent).map_err(self.io("cannot create directory", parent))
    }

    /// Reads a whole file, computing size and checksum, without trusting metadata.
    fn read_checked(&self, file: &FileRef) -> Result<Vec<u8>> {
        let full = self.resolve(&file.path)?;
        let bytes = fs::read(&full).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::corruption(format!("checkpoint file {} is missing", file.path))
            }
            _ => Error::io(format!("cannot read checkpoint file {}", full.display()), e),
        })?;
        check_contents(file, bytes.len() as u64, crc32c::crc32c(&bytes))?;
        Ok(bytes)
    }
}

/// Copies `source` to `dest` (which must not exist), returning size and checksum; removes the
/// partial copy on failure (a full disk, say).
fn copy_with_checksum(source: &Path, dest: &Path) -> Result<(u64, u32)> {
    let result = (|| -> std::io::Result<(u64, u32)> {
        let mut input = File::open(source)?;
        let mut output = File::create_new(dest)?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut size, mut crc) = (0u64, 0u32);
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            output.write_all(&buf[..n])?;
            size += n as u64;
        }
        output.sync_all()?;
        Ok((size, crc))
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(dest);
        Error::io(
            format!("cannot copy {} to {}", source.display(), dest.display()),
            e,
        )
    })
}

/// Size and CRC32C of a local file, read in 1 MiB blocks.
pub fn checksum_file(path: &Path) -> std::io::Result<(u64, u32)> {
    checksum_reader(&mut File::open(path)?)
}

/// Size and CRC32C of everything `input` yields, read in 1 MiB blocks.
fn checksum_reader(input: &mut impl Read) -> std::io::Result<(u64, u32)> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok((size, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync directory {}", dir.display()), e))
}

impl CheckpointStorage for DirectoryStorage {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn as_dyn(&self) -> &dyn CheckpointStorage {
        self
    }

    fn create<'s>(&'s self, path: &str) -> Result<Box<dyn FileWriter + 's>> {
        let full = self.resolve(path)?;
        self.create_parent(&full)?;
        let name = full.file_name().expect("a file path").to_string_lossy();
        let temporary = full.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&temporary).map_err(self.io("cannot create", &temporary))?;
        Ok(Box::new(DirectoryFile {
            path: path.to_owned(),
            full,
            temporary,
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            size: 0,
            crc: 0,
            finished: false,
        }))
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef> {
        let full = self.resolve(path)?;
        self.create_parent(&full)?;
        let written = File::create(&full).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&full);
            return Err(Error::io(
                format!("cannot write checkpoint file {}", full.display()),
                e,
            ));
        }
        sync_dir(full.parent().expect("has a parent"))?;
        Ok(FileRef {
            path: path.to_owned(),
            size: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        })
    }

    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile> {
        let full = self.resolve(path)?;
        self.create_parent(&full)?;
        if full.exists() {
            let existing = checksum_file(&full).map_err(self.io("cannot read", &full))?;
            let wanted = checksum_file(source).map_err(self.io("cannot read", source))?;
            return reuse_identical(path, existing, wanted);
        }
        // An immutable file (an SST) on the same filesystem is hard-linked: no bytes are written.
        // Across filesystems (NFS, tmpfs) linking fails with EXDEV, and the file is copied.
        let (size, crc32c) = match fs::hard_link(source, &full) {
            Ok(()) => checksum_file(&full).map_err(self.io("cannot read", &full))?,
            Err(_) => copy_with_checksum(source, &full)?,
        };
        sync_dir(full.parent().expect("has a parent"))?;
        Ok(PutFile {
            file: FileRef {
                path: path.to_owned(),
                size,
                crc32c,
            },
            created: true,
        })
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        self.read_checked(file)
    }

    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()> {
        let full = self.resolve(&file.path)?;
        if !full.exists() {
            return Err(Error::corruption(format!(
                "checkpoint file {} is missing",
                file.path
            )));
        }
        // Shared files (SSTs) are immutable: on the same filesystem a hard link is a copy that
        // costs no writes. Mutable files (MANIFEST, CURRENT, WAL) are always copied, so that the
        // restored instance can never change the checkpoint.
        let checked = if self.link(file, dest)? {
            check_local_file(file, dest)
        } else {
            copy_with_checksum(&full, dest).and_then(|(size, crc)| check_contents(file, size, crc))
        };
        checked.inspect_err(|_| {
            let _ = fs::remove_file(dest);
        })
    }

    fn link(&self, file: &FileRef, dest: &Path) -> Result<bool> {
        let full = self.resolve(&file.path)?;
        if !file.is_shared() || fs::hard_link(&full, dest).is_err() {
            return Ok(false);
        }
        let size = fs::metadata(dest)
            .map_err(self.io("cannot stat", dest))?
            .len();
        if size != file.size {
            let _ = fs::remove_file(dest);
            return Err(mismatch(
                file,
                format!("has {size} bytes, metadata says {}", file.size),
            ));
        }
        Ok(true)
    }

    fn open(&self, file: &FileRef) -> Result<Box<dyn SnapshotReader>> {
        // Checked through the handle that is then read, so the bytes checked are the bytes used.
        let full = self.resolve(&file.path)?;
        let missing_or = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::corruption(format!("checkpoint file {} is missing", file.path))
            }
            _ => Error::io(format!("cannot read checkpoint file {}", full.display()), e),
        };
        let mut handle = File::open(&full).map_err(missing_or)?;
        let (size, crc) = checksum_reader(&mut handle).map_err(missing_or)?;
        check_contents(file, size, crc)?;
        handle.seek(SeekFrom::Start(0)).map_err(missing_or)?;
        Ok(Box::new(handle))
    }

    fn verify(&self, file: &FileRef) -> Result<()> {
        let full = self.resolve(&file.path)?;
        let (size, crc) = checksum_file(&full).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::corruption(format!("checkpoint file {} is missing", file.path))
            }
            _ => Error::io(format!("cannot read checkpoint file {}", full.display()), e),
        })?;
        check_contents(file, size, crc)
    }

    fn delete(&self, path: &str) -> Result<()> {
        let full = self.resolve(path)?;
        match fs::remove_file(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot delete {}", full.display()), e))
            }
            _ => Ok(()),
        }
    }

    fn delete_dir(&self, path: &str) -> Result<()> {
        let full = self.resolve(path)?;
        match fs::remove_dir_all(&full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("cannot delete {}", full.display()), e))
            }
            _ => Ok(()),
        }
    }

    fn remove_empty_dir(&self, path: &str) -> Result<()> {
        let full = self.resolve(path)?;
        match fs::remove_dir(&full) {
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Err(Error::io(format!("cannot delete {}", full.display()), e))
            }
            _ => Ok(()),
        }
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(rel) = pending.pop() {
            let full = self.resolve(&rel)?;
            let entries = match fs::read_dir(&full) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("cannot list {}", full.display()), e)),
            };
            for entry in entries {
                let entry = entry.map_err(self.io("cannot list", &full))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = format!("{rel}/{name}");
                let kind = entry
                    .file_type()
                    .map_err(self.io("cannot stat", &entry.path()))?;
                if kind.is_dir() {
                    pending.push(child);
                } else {
                    out.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>> {
        let entries = fs::read_dir(&self.root).map_err(self.io("cannot list", &self.root))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.io("cannot list", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix("chk-")
                .and_then(|id| id.parse::<u64>().ok())
            {
                out.push((id, entry.path().join(METADATA_FILE).is_file()));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()> {
        let dir = self.resolve(&checkpoint_dir(id))?;
        fs::create_dir_all(&dir).map_err(self.io("cannot create directory", &dir))?;
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{METADATA_FILE}.{}.{n}.tmp", std::process::id()));
        let written = File::create_new(&temp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        // A hard link is created only where no file is (a rename would replace the first
        // writer's `_metadata`); it is atomic on local filesystems and on NFS.
        let linked = written.and_then(|()| fs::hard_link(&temp, dir.join(METADATA_FILE)));
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(already_complete(id, &self.root.display().to_string()));
            }
            Err(e) => {
                return Err(Error::io(
                    format!(
                        "cannot write the metadata of checkpoint {id} in {}",
                        dir.display()
                    ),
                    e,
                ));
            }
        }
        sync_dir(&dir)?;
        sync_dir(&self.root)
    }

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>> {
        let path = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
        let full = self.resolve(&path)?;
        fs::read(&full).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::new(
                ErrorKind::InvalidArgument,
                format!("checkpoint {id} has no {path} in {}", self.root.display()),
            ),
            _ => Error::io(format!("cannot read {}", full.display()), e),
        })
    }
}

/// Checkpoints held in memory: for tests and small state. Same layout and checks as a directory.
pub struct MemoryStorage {
    /// Distinguishes memory storages in [`CheckpointStorage::describe`].
    id: u64,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        MemoryStorage {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            files: Mutex::default(),
        }
    }
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces a stored file's bytes, for tests that corrupt checkpoints.
    pub fn overwrite(&self, path: &str, bytes: Vec<u8>) {
        self.files().insert(path.to_owned(), bytes);
    }
}

impl CheckpointStorage for MemoryStorage {
    fn describe(&self) -> String {
        format!("memory #{}", self.id)
    }

    fn as_dyn(&self) -> &dyn CheckpointStorage {
        self
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef> {
        check_relative_path(path)?;
        self.files().insert(path.to_owned(), bytes.to_vec());
        Ok(FileRef {
            path: path.to_owned(),
            size: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        })
    }

    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile> {
        let bytes = fs::read(source)
            .map_err(|e| Error::io(format!("cannot read {}", source.display()), e))?;
        let existing = self
            .files()
            .get(path)
            .map(|b| (b.len() as u64, crc32c::crc32c(b)));
        if let Some(existing) = existing {
            return reuse_identical(path, existing, (bytes.len() as u64, crc32c::crc32c(&bytes)));
        }
        Ok(PutFile {
            file: self.put_bytes(path, &bytes)?,
            created: true,
        })
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        check_relative_path(&file.path)?;
        let bytes = self.files().get(&file.path).cloned().ok_or_else(|| {
            Error::corruption(format!("checkpoint file {} is missing", file.path))
        })?;
        check_contents(file, bytes.len() as u64, crc32c::crc32c(&bytes))?;
        Ok(bytes)
    }

    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()> {
        let bytes = self.read(file)?;
        fs::write(dest, bytes).map_err(|e| Error::io(format!("cannot write {}", dest.display()), e))
    }

    fn verify(&self, file: &FileRef) -> Result<()> {
        self.read(file).map(drop)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.files().remove(path);
        Ok(())
    }

    fn delete_dir(&self, path: &str) -> Result<()> {
        let prefix = format!("{path}/");
        self.files().retain(|p, _| !p.starts_with(&prefix));
        Ok(())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        let prefix = format!("{dir}/");
        Ok(self
            .files()
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect())
    }

    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>> {
        let files = self.files();
        let mut ids: BTreeMap<u64, bool> = BTreeMap::new();
        for path in files.keys() {
            let mut parts = path.splitn(2, '/');
            if let Some(id) = parts
                .next()
                .and_then(|d| d.strip_prefix("chk-"))
                .and_then(|id| id.parse().ok())
            {
                *ids.entry(id).or_default() |= parts.next() == Some(METADATA_FILE);
            }
        }
        Ok(ids.into_iter().collect())
    }

    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()> {
        match self
            .files()
            .entry(format!("{}/{METADATA_FILE}", checkpoint_dir(id)))
        {
            std::collections::btree_map::Entry::Occupied(_) => Err(already_complete(id, "memory")),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(bytes.to_vec());
                Ok(())
            }
        }
    }

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>> {
        let path = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
        self.files().get(&path).cloned().ok_or_else(|| {
            Error::invalid_argument(format!("checkpoint {id} has no {path} in memory"))
        })
    }
}
