//! The CHECKPOINT argument: a `chk-<id>` directory, or a root directory meaning its latest
//! completed checkpoint; either as a path or as an object-store URL (`s3://bucket/prefix`,
//! `s3://bucket/prefix/chk-7`, `file:///dir`), the S3 endpoint and credentials coming from the
//! `AWS_*` environment variables.

use keyedstate::checkpoint::{
    CheckpointMetadata, CheckpointStorage, DirectoryStorage, load_latest, load_metadata,
};
use keyedstate::{Error, Result};
use keyedstate_object_store::ObjectStoreStorage;
use std::path::Path;
use std::sync::Arc;

/// Opens the checkpoint `path` names: its storage (the root) and its checked metadata.
pub fn open_checkpoint(path: &Path) -> Result<(Arc<dyn CheckpointStorage>, CheckpointMetadata)> {
    let id = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("chk-"))
        .and_then(|id| id.parse::<u64>().ok());
    match id {
        Some(id) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            let root = open_root(parent.unwrap_or(Path::new(".")))?;
            let metadata = load_metadata(root.as_ref(), id)?;
            Ok((root, metadata))
        }
        None => {
            let root = open_root(path)?;
            let metadata = load_latest(root.as_ref())?;
            Ok((root, metadata))
        }
    }
}

/// Opens an existing checkpoint root (never creates one): a directory, or the object-store
/// URL of one.
pub fn open_root(path: &Path) -> Result<Arc<dyn CheckpointStorage>> {
    if let Some(url) = path.to_str().filter(|p| p.contains("://")) {
        return Ok(Arc::new(ObjectStoreStorage::from_url(url)?));
    }
    if !path.is_dir() {
        return Err(Error::invalid_argument(format!(
            "{} is not a directory",
            path.display()
        )));
    }
    Ok(Arc::new(DirectoryStorage::new(path)?))
}
