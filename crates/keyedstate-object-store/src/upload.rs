//! [`ObjectWriter`]: a checkpoint file streamed to the object store. A file that fits in one
//! part is one put; a larger one becomes a multipart upload whose parts go out as they fill,
//! at most `concurrency` at once, so memory holds `concurrency + 1` parts whatever the size.
//! An upload that is dropped unfinished, or fails, is aborted: no object appears.

use crate::runtime::{run, start, wait};
use crate::storage::ObjectStoreStorage;
use keyedstate_core::checkpoint::{FileRef, FileWriter};
use keyedstate_core::{Error, Result};
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, PutPayload};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::Receiver;

pub(crate) struct ObjectWriter<'s> {
    storage: &'s ObjectStoreStorage,
    path: String,
    location: ObjectPath,
    /// The part being filled.
    part: Vec<u8>,
    /// Once the file outgrew one part.
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<Receiver<object_store::Result<()>>>,
    size: u64,
    crc: u32,
    finished: bool,
}

impl<'s> ObjectWriter<'s> {
    pub(crate) fn new(storage: &'s ObjectStoreStorage, path: String, location: ObjectPath) -> Self {
        ObjectWriter {
            storage,
            path,
            location,
            part: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
            size: 0,
            crc: 0,
            finished: false,
        }
    }

    fn failed(&self, e: object_store::Error) -> Error {
        self.storage.failed("upload", &self.path, e)
    }

    /// Sends the filled part (starting the multipart upload with the first), waiting for the
    /// oldest part in flight when `concurrency` are.
    fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let (store, at) = (self.storage.store.clone(), self.location.clone());
            let upload =
                run(async move { store.put_multipart(&at).await })?.map_err(|e| self.failed(e))?;
            self.upload = Some(upload);
        }
        let bytes = std::mem::replace(&mut self.part, Vec::with_capacity(self.storage.part_size));
        let upload = self.upload.as_mut().expect("started above");
        self.in_flight
            .push_back(start(upload.put_part(PutPayload::from(bytes))));
        while self.in_flight.len() > self.storage.concurrency {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<()> {
        if let Some(part) = self.in_flight.pop_front() {
            wait(&part)?.map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    fn complete(&mut self) -> Result<()> {
        let Some(mut upload) = self.upload.take() else {
            // One part: a single put.
            let (store, at) = (self.storage.store.clone(), self.location.clone());
            let payload = PutPayload::from(std::mem::take(&mut self.part));
            run(async move { store.put(&at, payload).await })?.map_err(|e| self.failed(e))?;
            return Ok(());
        };
        let result = (|| {
            if !self.part.is_empty() {
                let bytes = std::mem::take(&mut self.part);
                self.in_flight
                    .push_back(start(upload.put_part(PutPayload::from(bytes))));
            }
            while !self.in_flight.is_empty() {
                self.wait_oldest()?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                let completed = run(async move {
                    let completed = upload.complete().await;
                    if completed.is_err() {
                        let _ = upload.abort().await;
                    }
                    completed
                })?;
                completed.map(drop).map_err(|e| self.failed(e))
            }
            Err(e) => {
                abort(upload);
                Err(e)
            }
        }
    }
}

/// Aborts a multipart upload, so its parts do not linger in the store; best effort (a store
/// that fails here also removes incomplete uploads by its own lifecycle rules).
fn abort(mut upload: Box<dyn MultipartUpload>) {
    let _ = run(async move { upload.abort().await });
}

impl Write for ObjectWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.storage.part_size - self.part.len();
        let n = buf.len().min(room);
        self.part.extend_from_slice(&buf[..n]);
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.size += n as u64;
        if self.part.len() == self.storage.part_size {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FileWriter for ObjectWriter<'_> {
    fn finish(mut self: Box<Self>) -> Result<FileRef> {
        self.complete()?;
        self.finished = true;
        Ok(FileRef {
            path: self.path.clone(),
            size: self.size,
            crc32c: self.crc,
        })
    }
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Unfinished: let the parts in flight end, then abort the upload.
        for part in self.in_flight.drain(..) {
            let _ = wait(&part);
        }
        if let Some(upload) = self.upload.take() {
            abort(upload);
        }
    }
}
