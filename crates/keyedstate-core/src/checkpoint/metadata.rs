//! A checkpoint's `_metadata`: every subtask's handle, key-group range and files (each with its
//! size and checksum), the max parallelism and each state's meta info.
//!
//! On disk (see `docs/formats.md`): a first line `keyedstate-checkpoint <version>`, the JSON
//! document, and a last line `crc32c <8 hex digits>` over everything before it. A flipped bit
//! anywhere is detected before any field is trusted.
//!
//! Version 2 records each subtask's own registered states in its handle (a subtask may register
//! a state lazily, on its first record for it); the document's `states` is their union. Version
//! 1 documents, whose `states` came from one subtask, are still read: every handle is then taken
//! to hold the document's states.
//!
//! Version 3 records the codec of the keys (`key_codec`, per subtask and for the job), so that a
//! job restored with keys of another type is refused instead of misrouting every key. Keys of
//! version 1 and 2 checkpoints were encoded with bincode: their key codec reads as
//! [`LEGACY_KEY_CODEC`], which no key type of this version encodes to.

use crate::descriptor::StateMeta;
use crate::error::{Error, Result};
use crate::key_group::{KeyGroupRange, MaxParallelism};
use serde::{Deserialize, Serialize};

/// The `_metadata` format version this code writes.
pub const METADATA_VERSION: u32 = 3;

/// The key codec of checkpoints of metadata version 1 and 2, which did not record one: their
/// keys were bincode 2 encodings.
pub const LEGACY_KEY_CODEC: &str = "bincode2 (metadata version 1 or 2)";
/// The oldest version this code reads.
const OLDEST_METADATA_VERSION: u32 = 1;

fn header(version: u32) -> String {
    format!("keyedstate-checkpoint {version}\n")
}

/// A file a checkpoint references: its path relative to the checkpoint root, size and CRC32C.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    pub size: u64,
    pub crc32c: u32,
}

impl FileRef {
    /// Files under `shared/` may be referenced by several checkpoints.
    pub fn is_shared(&self) -> bool {
        self.path.starts_with("shared/")
    }
}

/// One subtask's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtaskHandle {
    pub subtask: u32,
    pub key_group_range: KeyGroupRange,
    pub snapshot: SnapshotHandle,
    /// The subtask's operator state, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_state: Option<FileRef>,
    /// A canonical snapshot of the timer states the subtask kept in memory beside a RocksDB
    /// incremental snapshot (the RocksDB backend with heap timers), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_timers: Option<FileRef>,
    /// The states this subtask had registered when it took the snapshot (version 2; empty in
    /// version 1 documents: see [`CheckpointMetadata::states_of`]).
    #[serde(default)]
    pub states: Vec<StateMeta>,
    /// The codec id of the subtask's keys (version 3); `None` when it never had a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_codec: Option<String>,
}

/// What a subtask's snapshot consists of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnapshotHandle {
    /// A canonical full snapshot: one file, readable by every backend.
    Full { file: FileRef },
    /// A RocksDB incremental snapshot: the instance's files, each under the name RocksDB gave it
    /// (`000012.sst`, `MANIFEST-000005`, ...).
    RocksDbIncremental {
        backend_id: String,
        files: Vec<NamedFile>,
    },
}

/// A file of a RocksDB instance and where the checkpoint holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFile {
    /// The file's name in the RocksDB directory.
    pub name: String,
    pub file: FileRef,
}

impl SubtaskHandle {
    /// Every file the handle references.
    pub fn files(&self) -> Vec<&FileRef> {
        let mut files: Vec<&FileRef> = match &self.snapshot {
            SnapshotHandle::Full { file } => vec![file],
            SnapshotHandle::RocksDbIncremental { files, .. } => {
                files.iter().map(|f| &f.file).collect()
            }
        };
        files.extend(&self.operator_state);
        files.extend(&self.heap_timers);
        files
    }
}

/// The `_metadata` document of a completed checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub version: u32,
    pub checkpoint_id: u64,
    pub max_parallelism: MaxParallelism,
    /// Every state any subtask holds: the union of the subtasks' states (see [`union_states`]).
    pub states: Vec<StateMeta>,
    /// One per subtask, ordered by subtask index.
    pub subtasks: Vec<SubtaskHandle>,
    /// Checkpoints in the same root that the job which wrote this one does not own: it restored
    /// one of them in [`RestoreMode::NoClaim`](super::RestoreMode::NoClaim) or found them there.
    /// Its retention and garbage collection never delete them or their files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_owned: Vec<u64>,
    /// The codec id of the job's keys, the one every subtask that had keys used (version 3;
    /// see [`CheckpointMetadata::key_codec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_codec: Option<String>,
}

/// The bytes of a `_metadata` file holding `json` as a document of `version`: the header line,
/// the document and the checksum line over both.
pub fn frame_metadata(version: u32, json: &str) -> Vec<u8> {
    frame(&header(version), json)
}

/// `header`, `json` and a last line `crc32c <8 hex digits>` over both.
fn frame(header: &str, json: &str) -> Vec<u8> {
    let mut out = String::with_capacity(header.len() + json.len() + 24);
    out.push_str(header);
    out.push_str(json);
    out.push('\n');
    let crc = crc32c::crc32c(out.as_bytes());
    out.push_str(&format!("crc32c {crc:08x}\n"));
    out.into_bytes()
}

/// What a framed file holds before its checksum line (its header line and document), once the
/// checksum holds; `origin` names the file in errors.
fn unframe<'a>(bytes: &'a [u8], origin: &str) -> Result<&'a str> {
    let corrupt = |what: &str| Error::corruption(format!("{origin}: {what}"));
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .ok_or_else(|| corrupt("truncated"))?
        + 1;
    let (body, trailer) = text.split_at(body_end);
    let stored = trailer
        .trim_end()
        .strip_prefix("crc32c ")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| corrupt("missing checksum line"))?;
    let actual = crc32c::crc32c(body.as_bytes());
    if stored != actual {
        return Err(corrupt(&format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        )));
    }
    Ok(body)
}

/// The header line of a subtask's handle file (see [`SubtaskHandle::encode`]).
const HANDLE_HEADER: &str = "keyedstate-subtask-handle 1\n";

impl SubtaskHandle {
    /// The handle as bytes, for a distributed job's workers to send to the one that completes
    /// the checkpoint. Framed as `_metadata` is: a header line `keyedstate-subtask-handle 1`,
    /// the handle as JSON, and a `crc32c` line.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid_argument(format!("cannot encode a subtask handle: {e}")))?;
        Ok(frame(HANDLE_HEADER, &json))
    }

    /// Decodes and checks an encoded handle; `origin` names where it came from in errors.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Self> {
        let json = unframe(bytes, origin)?
            .strip_prefix(HANDLE_HEADER)
            .ok_or_else(|| {
                Error::corruption(format!(
                    "{origin}: not a keyedstate subtask handle of version 1"
                ))
            })?;
        let handle: SubtaskHandle = serde_json::from_str(json)
            .map_err(|e| Error::corruption(format!("{origin}: invalid handle: {e}")))?;
        for file in handle.files() {
            super::storage::check_relative_path(&file.path).map_err(|e| e.context(origin))?;
        }
        Ok(handle)
    }
}

/// The union of the states of `subtasks`, in the order they first appear (subtask by subtask).
/// One name registered differently by two subtasks is `IncompatibleState`, naming both.
pub fn union_states(subtasks: &[SubtaskHandle]) -> Result<Vec<StateMeta>> {
    let mut union: Vec<(StateMeta, u32)> = Vec::new();
    for handle in subtasks {
        for meta in &handle.states {
            match union.iter().find(|(known, _)| known.name == meta.name) {
                Some((known, first)) => known.check_compatible(meta).map_err(|e| {
                    e.context(format_args!(
                        "subtask {first} and subtask {} registered state '{}' differently",
                        handle.subtask, meta.name
                    ))
                })?,
                None => union.push((meta.clone(), handle.subtask)),
            }
        }
    }
    Ok(union.into_iter().map(|(meta, _)| meta).collect())
}

/// The key codec the subtasks agree on: `None` when none had a key, `IncompatibleState` naming
/// two subtasks whose keys have different codecs.
pub fn union_key_codec(subtasks: &[SubtaskHandle]) -> Result<Option<String>> {
    let mut found: Option<(&str, u32)> = None;
    for handle in subtasks {
        let Some(codec) = handle.key_codec.as_deref() else {
            continue;
        };
        match found {
            Some((known, first)) if known != codec => {
                return Err(Error::incompatible_state(format!(
                    "subtask {first} has keys of codec '{known}' and subtask {} of codec \
                     '{codec}'",
                    handle.subtask
                )));
            }
            Some(_) => {}
            None => found = Some((codec, handle.subtask)),
        }
    }
    Ok(found.map(|(codec, _)| codec.to_owned()))
}

impl CheckpointMetadata {
    /// The codec of the checkpoint's keys: the recorded one from version 3 on (`None` when no
    /// subtask had a key), [`LEGACY_KEY_CODEC`] before.
    pub fn key_codec(&self) -> Option<&str> {
        if self.version >= 3 {
            self.key_codec.as_deref()
        } else {
            Some(LEGACY_KEY_CODEC)
        }
    }

    /// Every file the checkpoint references.
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        self.subtasks.iter().flat_map(SubtaskHandle::files)
    }

    pub fn parallelism(&self) -> u32 {
        self.subtasks.len() as u32
    }

    /// The states `handle` (one of this document's) holds: its own list from version 2 on, the
    /// document's list in version 1.
    pub fn states_of<'a>(&'a self, handle: &'a SubtaskHandle) -> &'a [StateMeta] {
        if self.version >= 2 {
            &handle.states
        } else {
            &self.states
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_string_pretty(self).map_err(|e| {
            Error::invalid_argument(format!("cannot encode checkpoint metadata: {e}"))
        })?;
        Ok(frame_metadata(self.version, &json))
    }

    /// Decodes and checks a `_metadata` file; `origin` names it in errors.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Self> {
        let corrupt = |what: &str| Error::corruption(format!("{origin}: {what}"));
        let body = unframe(bytes, origin)?;
        let json = (OLDEST_METADATA_VERSION..=METADATA_VERSION)
            .find_map(|version| body.strip_prefix(&header(version)))
            .ok_or_else(|| {
                corrupt(&format!(
                    "not a keyedstate checkpoint of version {OLDEST_METADATA_VERSION} to \
                     {METADATA_VERSION}"
                ))
            })?;
        let metadata: CheckpointMetadata =
            serde_json::from_str(json).map_err(|e| corrupt(&format!("invalid document: {e}")))?;
        metadata.validate().map_err(|e| e.context(origin))?;
        Ok(metadata)
    }

    /// Checks the document's internal consistency: subtasks in order, ranges partitioning the
    /// key groups as Flink assigns them, file paths safe, the states the union of the subtasks'.
    pub fn validate(&self) -> Result<()> {
        if !(OLDEST_METADATA_VERSION..=METADATA_VERSION).contains(&self.version) {
            return Err(Error::corruption(format!(
                "unsupported metadata version {}",
                self.version
            )));
        }
        // With at least one subtask, each at Flink's range for its index, the subtasks cover
        // every key group exactly once.
        if self.subtasks.is_empty() {
            return Err(Error::corruption(
                "no subtasks: a checkpoint covers every key group",
            ));
        }
        if self.version >= 2 {
            let union =
                union_states(&self.subtasks).map_err(|e| Error::corruption(e.to_string()))?;
            if union != self.states {
                return Err(Error::corruption(
                    "the states are not the union of the subtasks' states",
                ));
            }
        }
        if self.version >= 3 {
            let keys =
                union_key_codec(&self.subtasks).map_err(|e| Error::corruption(e.to_string()))?;
            if keys != self.key_codec {
                return Err(Error::corruption(
                    "the key codec is not the one of the subtasks' keys",
                ));
            }
        }
        let p = self.parallelism();
        for (i, handle) in self.subtasks.iter().enumerate() {
            let expected = self
                .max_parallelism
                .range_for_subtask(p, i as u32)
                .map_err(|e| {
                    Error::corruption(format!("parallelism {p} does not fit max parallelism: {e}"))
                })?;
            if handle.subtask != i as u32 || handle.key_group_range != expected {
                return Err(Error::corruption(format!(
                    "subtask {i} has index {} and key groups {}, expected {expected}",
                    handle.subtask, handle.key_group_range
                )));
            }
            for file in handle.files() {
                super::storage::check_relative_path(&file.path)?;
            }
        }
        Ok(())
    }
}
