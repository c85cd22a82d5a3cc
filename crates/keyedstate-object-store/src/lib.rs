//! Checkpoint storage of keyedstate on object stores: [`ObjectStoreStorage`] implements
//! `CheckpointStorage` over the `object_store` crate, for S3 and S3-compatible servers
//! (`s3://bucket/prefix`), a local directory (`file:///dir`) and memory (`memory://`).
//!
//! A crate of its own so that the core and the engines stay free of HTTP dependencies for jobs
//! that checkpoint to a directory or NFS. The layout under the root is the directory layout
//! (`docs/formats.md`): `shared/` and `chk-<id>/` as key prefixes, `_metadata` written last and
//! only if absent.

mod runtime;
mod storage;
mod upload;

pub use storage::{DEFAULT_PART_SIZE, DEFAULT_TRANSFER_CONCURRENCY, ObjectStoreStorage};
