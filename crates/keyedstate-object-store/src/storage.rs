//! [`ObjectStoreStorage`]: checkpoint storage on an object store, with the layout of a
//! checkpoint directory (`shared/`, `chk-<id>/`, `_metadata` last) as object keys under a root
//! prefix.

use crate::runtime::{run, start};
use crate::upload::ObjectWriter;
use futures::StreamExt;
use keyedstate_core::checkpoint::canonical::SnapshotReader;
use keyedstate_core::checkpoint::storage::{
    METADATA_FILE, already_complete, check_relative_path, checkpoint_dir, checksum_file,
};
use keyedstate_core::checkpoint::{CheckpointStorage, FileRef, FileWriter, PutFile};
use keyedstate_core::{Error, ErrorKind, Result};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use std::io::{Seek, Write};
use std::path::Path;
use std::sync::Arc;

/// Parts of an upload: 8 MiB (S3 takes parts of 5 MiB and more).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Parts of one upload in flight at once (and downloaded chunks buffered ahead of the reader).
pub const DEFAULT_TRANSFER_CONCURRENCY: usize = 4;

/// Checkpoint storage on an object store: S3 or an S3-compatible server, a local directory
/// through `object_store`'s file store, or memory.
///
/// Uploads are streamed in parts of [`Self::with_part_size`] bytes (a multipart upload once a
/// file outgrows one part), at most [`Self::with_transfer_concurrency`] parts in flight;
/// downloads are one streamed `GET` per file, their size and CRC32C checked before use. So no
/// file is ever whole in memory. `_metadata` is written only if absent (a conditional put), so
/// of two writers completing one checkpoint id the second gets an error and the first's
/// checkpoint stays as it was. Transient errors are retried with backoff by `object_store`'s
/// client (its `RetryConfig`); the error after the last retry is an `Io` error naming the
/// object.
pub struct ObjectStoreStorage {
    pub(crate) store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    description: String,
    pub(crate) part_size: usize,
    pub(crate) concurrency: usize,
}

impl ObjectStoreStorage {
    /// Storage under `root` (a `/`-separated prefix, empty for the store's top) of `store`;
    /// `description` names it in messages (a URL).
    pub fn new(store: Arc<dyn ObjectStore>, root: &str, description: impl Into<String>) -> Self {
        ObjectStoreStorage {
            store,
            root: ObjectPath::from(root),
            description: description.into(),
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_TRANSFER_CONCURRENCY,
        }
    }

    /// The storage a URL names: `s3://bucket/prefix` (endpoint, region and credentials from
    /// the `AWS_*` environment variables, `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for an
    /// S3-compatible server on loopback), `file:///absolute/dir` or `memory://` (a new, empty
    /// store).
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::invalid_argument(format!("'{url}' is not a checkpoint storage URL: {e}"))
        })?;
        let invalid = |e: object_store::Error| {
            Error::with_source(
                ErrorKind::InvalidArgument,
                format!("cannot open checkpoint storage {url}: {e}"),
                e,
            )
        };
        let (store, root): (Arc<dyn ObjectStore>, String) = match parsed.scheme() {
            "s3" | "s3a" => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(invalid)?;
                (Arc::new(store), parsed.path().trim_matches('/').to_owned())
            }
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| {
                    Error::invalid_argument(format!("'{url}' is not an absolute file URL"))
                })?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::io(
                        format!("cannot create checkpoint root {}", dir.display()),
                        e,
                    )
                })?;
                let store =
                    object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(invalid)?;
                (Arc::new(store), String::new())
            }
            "memory" => (
                Arc::new(object_store::memory::InMemory::new()),
                parsed.path().trim_matches('/').to_owned(),
            ),
            other => {
                return Err(Error::invalid_argument(format!(
                    "checkpoint storage URL '{url}' has scheme '{other}'; s3, file or memory"
                )));
            }
        };
        Ok(Self::new(store, &root, url.trim_end_matches('/')))
    }

    /// Parts of one upload in flight at once (at least 1).
    pub fn with_transfer_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The size of upload parts (S3 needs 5 MiB or more but for the last part; smaller sizes
    /// are for tests on other stores).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// The object key of `path`, which must be a plain relative path.
    pub(crate) fn location(&self, path: &str) -> Result<ObjectPath> {
        check_relative_path(path)?;
        Ok(self.child(path))
    }

    fn child(&self, path: &str) -> ObjectPath {
        path.split('/')
            .fold(self.root.clone(), |location, part| location.child(part))
    }

    /// `path` relative to the root, for a key the store listed.
    fn relative(&self, location: &ObjectPath) -> Option<String> {
        let parts: Vec<String> = location
            .prefix_match(&self.root)?
            .map(|part| part.as_ref().to_owned())
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// An `Io` error of a request about `path`.
    pub(crate) fn failed(&self, what: &str, path: &str, e: object_store::Error) -> Error {
        Error::with_source(
            ErrorKind::Io,
            format!("cannot {what} {}/{path}: {e}", self.description),
            e,
        )
    }

    /// Reads the object at `path` with one streamed `GET`, handing each chunk to `sink` in
    /// order, and returns its size and CRC32C. The chunks come from the runtime through a
    /// bounded channel, so a few of them (tens of KiB each) are in memory whatever the size.
    /// With `expected_size`, an object of another size is `Corruption` before anything is read.
    fn read_object(
        &self,
        path: &str,
        expected_size: Option<u64>,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<(u64, u32)> {
        let location = self.location(path)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(self.concurrency.max(2));
        let store = self.store.clone();
        start(async move {
            match store.get(&location).await {
                Ok(got) => {
                    if tx.send(Ok(Chunk::Size(got.meta.size))).await.is_err() {
                        return;
                    }
                    let mut stream = got.into_stream();
                    while let Some(chunk) = stream.next().await {
                        let failed = chunk.is_err();
                        // A closed channel: the reader stopped (its sink failed); so do we.
                        if tx.send(chunk.map(Chunk::Bytes)).await.is_err() || failed {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        let (mut size, mut crc, mut read) = (None, 0u32, 0u64);
        // `futures`' executor parks this thread until the next chunk: unlike tokio's
        // `blocking_recv`, it may run on any thread, inside an async runtime's too.
        while let Some(message) = futures::executor::block_on(rx.recv()) {
            match message.map_err(|e| match e {
                object_store::Error::NotFound { .. } => missing(path),
                e => self.failed("read", path, e),
            })? {
                Chunk::Size(actual) => {
                    if let Some(expected) = expected_size.filter(|&expected| expected != actual) {
                        return Err(Error::corruption(format!(
                            "checkpoint file {path} has {actual} bytes, metadata says {expected}"
                        )));
                    }
                    size = Some(actual);
                }
                Chunk::Bytes(bytes) => {
                    crc = crc32c::crc32c_append(crc, &bytes);
                    read += bytes.len() as u64;
                    sink(&bytes)?;
                }
            }
        }
        match size {
            Some(size) if size == read => Ok((size, crc)),
            _ => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "cannot read {}/{path}: the download ended after {read} bytes",
                    self.description
                ),
            )),
        }
    }

    /// [`Self::read_object`] of `file`, checked against its size and CRC32C.
    fn download(&self, file: &FileRef, sink: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let (_, crc) = self.read_object(&file.path, Some(file.size), sink)?;
        if crc != file.crc32c {
            return Err(Error::corruption(format!(
                "checkpoint file {} has checksum {crc:08x}, metadata says {:08x}",
                file.path, file.crc32c
            )));
        }
        Ok(())
    }
}

/// What the download task sends: the object's size first, then its bytes.
enum Chunk {
    Size(u64),
    Bytes(bytes::Bytes),
}

fn missing(path: &str) -> Error {
    Error::corruption(format!("checkpoint file {path} is missing"))
}

impl CheckpointStorage for ObjectStoreStorage {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn as_dyn(&self) -> &dyn CheckpointStorage {
        self
    }

    fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<FileRef> {
        let mut writer = self.create(path)?;
        writer
            .write_all(bytes)
            .map_err(|e| Error::io(format!("cannot write {}/{path}", self.description), e))?;
        writer.finish()
    }

    fn create<'s>(&'s self, path: &str) -> Result<Box<dyn FileWriter + 's>> {
        Ok(Box::new(ObjectWriter::new(
            self,
            path.to_owned(),
            self.location(path)?,
        )))
    }

    fn put_file(&self, path: &str, source: &Path) -> Result<PutFile> {
        let location = self.location(path)?;
        let (store, at) = (self.store.clone(), location.clone());
        let local = |e| Error::io(format!("cannot read {}", source.display()), e);
        match run(async move { store.head(&at).await })? {
            Ok(_) => {
                // Already there (an instance re-uploading an SST a completed checkpoint holds):
                // taken if identical, an error otherwise.
                let existing = self.read_object(path, None, |_| Ok(()))?;
                let wanted = checksum_file(source).map_err(local)?;
                if existing != wanted {
                    return Err(Error::corruption(format!(
                        "checkpoint file {path} exists with other contents ({} bytes, checksum \
                         {:08x}) than the file to store ({} bytes, {:08x})",
                        existing.0, existing.1, wanted.0, wanted.1
                    )));
                }
                Ok(PutFile {
                    file: FileRef {
                        path: path.to_owned(),
                        size: wanted.0,
                        crc32c: wanted.1,
                    },
                    created: false,
                })
            }
            Err(object_store::Error::NotFound { .. }) => {
                let mut input = std::fs::File::open(source).map_err(local)?;
                let mut writer = ObjectWriter::new(self, path.to_owned(), location);
                std::io::copy(&mut input, &mut writer).map_err(|e| {
                    Error::io(
                        format!(
                            "cannot upload {} to {}/{path}",
                            source.display(),
                            self.description
                        ),
                        e,
                    )
                })?;
                let file = Box::new(writer).finish()?;
                Ok(PutFile {
                    file,
                    created: true,
                })
            }
            Err(e) => Err(self.failed("read", path, e)),
        }
    }

    fn read(&self, file: &FileRef) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(file.size.min(1 << 30) as usize);
        self.download(file, |part| {
            bytes.extend_from_slice(part);
            Ok(())
        })?;
        Ok(bytes)
    }

    fn open(&self, file: &FileRef) -> Result<Box<dyn SnapshotReader>> {
        // Into an anonymous local file, checked, then read from there: a full snapshot larger
        // than memory restores with bounded memory.
        let io = |e| Error::io(format!("cannot buffer {} locally", file.path), e);
        let mut local = tempfile::tempfile().map_err(io)?;
        self.download(file, |part| local.write_all(part).map_err(io))?;
        local.rewind().map_err(io)?;
        Ok(Box::new(local))
    }

    fn fetch(&self, file: &FileRef, dest: &Path) -> Result<()> {
        let io = |e| Error::io(format!("cannot write {}", dest.display()), e);
        let mut out = std::io::BufWriter::new(std::fs::File::create_new(dest).map_err(io)?);
        let result = self
            .download(file, |part| out.write_all(part).map_err(io))
            .and_then(|()| out.flush().map_err(io));
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    fn verify(&self, file: &FileRef) -> Result<()> {
        self.download(file, |_| Ok(()))
    }

    fn delete(&self, path: &str) -> Result<()> {
        let (store, at) = (self.store.clone(), self.location(path)?);
        match run(async move { store.delete(&at).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", path, e)),
        }
    }

    fn delete_dir(&self, path: &str) -> Result<()> {
        for file in self.list_files(path)? {
            self.delete(&file)?;
        }
        Ok(())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let (store, at) = (self.store.clone(), self.location(dir)?);
        let listed = run(async move { store.list(Some(&at)).try_collect::<Vec<_>>().await })?
            .map_err(|e| self.failed("list", dir, e))?;
        let mut files: Vec<String> = listed
            .iter()
            .filter_map(|meta| self.relative(&meta.location))
            .collect();
        files.sort();
        Ok(files)
    }

    fn checkpoint_dirs(&self) -> Result<Vec<(u64, bool)>> {
        let (store, root) = (self.store.clone(), self.root.clone());
        let listed = run(async move { store.list_with_delimiter(Some(&root)).await })?
            .map_err(|e| self.failed("list", "", e))?;
        let mut dirs = Vec::new();
        for prefix in &listed.common_prefixes {
            let Some(name) = prefix.filename() else {
                continue;
            };
            let Some(id) = name
                .strip_prefix("chk-")
                .and_then(|id| id.parse::<u64>().ok())
            else {
                continue;
            };
            let metadata = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
            let (store, at) = (self.store.clone(), self.child(&metadata));
            let present = match run(async move { store.head(&at).await })? {
                Ok(_) => true,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => return Err(self.failed("read", &metadata, e)),
            };
            // A file store keeps a directory whose files were all deleted; it is no checkpoint.
            if present || !self.list_files(&checkpoint_dir(id))?.is_empty() {
                dirs.push((id, present));
            }
        }
        dirs.sort_unstable();
        Ok(dirs)
    }

    fn write_metadata(&self, id: u64, bytes: &[u8]) -> Result<()> {
        let path = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
        let (store, at) = (self.store.clone(), self.child(&path));
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(bytes));
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match run(async move { store.put_opts(&at, payload, options).await })? {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(already_complete(id, &self.description))
            }
            Err(e) => Err(self.failed("write", &path, e)),
        }
    }

    fn read_metadata(&self, id: u64) -> Result<Vec<u8>> {
        let path = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
        let (store, at) = (self.store.clone(), self.child(&path));
        let result = run(async move {
            match store.get(&at).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            }
        })?;
        match result {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::corruption(format!(
                "checkpoint {id} has no {METADATA_FILE} in {}",
                self.description
            ))),
            Err(e) => Err(self.failed("read", &path, e)),
        }
    }
}
