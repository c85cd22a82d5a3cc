//! Measures a RocksDB checkpoint to, and a restore from, an S3-compatible server on loopback
//! (moto, started here) against a plain upload and download of the same files with the same
//! `object_store` client and concurrency, in one run (issue 14's target: at most 1.2x):
//!
//! ```sh
//! cargo run --release --example s3_transfer -- [GiB, default 1]
//! ```
//!
//! Three rounds (the medians are printed), each: one subtask writes that much incompressible
//! state and compacts it; an incremental checkpoint of it into a fresh prefix (its first, so
//! every SST file is uploaded), a plain upload of the checkpoint's files (4 files at once, each a multipart upload of
//! 8 MiB parts, 4 in flight), a restore of the checkpoint into a fresh instance, and a plain
//! download of the same files to a local directory (one streamed GET per file, 4 at once); and, for the engine's own share
//! of a restore, a restore of the same state from a checkpoint in a local directory.

use futures::StreamExt;
use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointMetadata, CheckpointStorage};
use keyedstate::job::{self, Engine};
use keyedstate::{MaxParallelism, Result, SnapshotKind, ValueStateDescriptor};
use keyedstate_object_store::ObjectStoreStorage;
use keyedstate_testkit::s3_server::S3Server;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 4096;
const PART: usize = 8 << 20;
const CONCURRENCY: usize = 4;

fn store(server: &S3Server) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(server.endpoint())
            .with_allow_http(true)
            .with_bucket_name("bench")
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client"),
    )
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Uploads `files` (local path, object key) with `object_store` alone: `CONCURRENCY` files at
/// once, each in `PART`-byte parts, `CONCURRENCY` parts in flight.
async fn plain_upload(store: Arc<dyn ObjectStore>, files: Vec<(PathBuf, ObjectPath)>) {
    futures::stream::iter(files)
        .for_each_concurrent(CONCURRENCY, |(local, key)| {
            let store = store.clone();
            async move {
                let upload = store.put_multipart(&key).await.expect("multipart upload");
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
                let bytes = tokio::fs::read(&local).await.expect("read a local file");
                for chunk in bytes.chunks(PART) {
                    writer.wait_for_capacity(CONCURRENCY).await.expect("a part");
                    writer.write(chunk);
                }
                writer.finish().await.expect("complete the upload");
            }
        })
        .await;
}

/// Downloads `keys` into `dir`, `CONCURRENCY` at once.
async fn plain_download(store: Arc<dyn ObjectStore>, keys: Vec<ObjectPath>, dir: PathBuf) {
    futures::stream::iter(keys.into_iter().enumerate())
        .for_each_concurrent(CONCURRENCY, |(i, key)| {
            let (store, dir) = (store.clone(), dir.clone());
            async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = store.get(&key).await.expect("get").into_stream();
                let mut out = tokio::fs::File::create(dir.join(format!("{i}")))
                    .await
                    .expect("create a local file");
                while let Some(chunk) = stream.next().await {
                    out.write_all(&chunk.expect("a chunk"))
                        .await
                        .expect("write");
                }
                out.flush().await.expect("flush");
            }
        })
        .await;
}

fn write_state(gib: f64, work: &Path) -> Result<keyedstate::KeyedStateBackend> {
    let max_p = MaxParallelism::new(128)?;
    let backend = job::open_subtask(Engine::RocksDb, max_p, 1, 0, work)?;
    let value_state = backend.value_state(&ValueStateDescriptor::<Vec<u8>>::new("v"))?;
    let keys = ((gib * f64::from(1u32 << 30)) as u64).div_ceil(VALUE_BYTES as u64);
    let mut rng = keyedstate_testkit::model::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut value = vec![0u8; VALUE_BYTES];
    for key in 0..keys {
        rng.fill(&mut value);
        backend.set_current_key(&key)?;
        value_state.update(&value)?;
    }
    backend.compact()?;
    Ok(backend)
}

fn main() -> Result<()> {
    let gib: f64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("GiB as a number"))
        .unwrap_or(1.0);
    let server = S3Server::start();
    server.create_bucket("bench");
    let temp = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let store = store(&server);

    let (mut checkpoint, mut upload, mut restore, mut download) = (vec![], vec![], vec![], vec![]);
    let mut local_restore = vec![];
    let mut last: Option<(Arc<dyn CheckpointStorage>, CheckpointMetadata)> = None;
    let mut bytes = 0;
    for round in 0..3 {
        // A fresh instance each round, so that each checkpoint uploads every file.
        let job_dir = temp.path().join(format!("job-{round}"));
        let backend = write_state(gib, &job_dir)?;
        let storage: Arc<dyn CheckpointStorage> = Arc::new(
            ObjectStoreStorage::new(
                store.clone(),
                &format!("keyed-{round}"),
                format!("s3://bench/keyed-{round}"),
            )
            .with_part_size(PART)
            .with_transfer_concurrency(CONCURRENCY),
        );
        let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1)?;
        let started = Instant::now();
        let metadata = job::checkpoint(
            std::slice::from_ref(&backend),
            &mut coordinator,
            SnapshotKind::Incremental,
        )?;
        checkpoint.push(started.elapsed());
        bytes = metadata.files().map(|f| f.size).sum::<u64>();

        // The same files, uploaded plainly from the instance's own copy of them.
        let native = job_dir.join("subtask-0/db");
        let files: Vec<(PathBuf, ObjectPath)> = metadata
            .files()
            .filter_map(|f| {
                let name = f.path.rsplit('/').next()?.rsplit('-').next()?.to_owned();
                let local = native.join(&name);
                local
                    .exists()
                    .then(|| (local, ObjectPath::from(format!("plain-{round}/{}", f.path))))
            })
            .collect();
        let uploaded: u64 = files
            .iter()
            .map(|(local, _)| std::fs::metadata(local).map(|m| m.len()).unwrap_or(0))
            .sum();
        let started = Instant::now();
        runtime.block_on(plain_upload(store.clone(), files.clone()));
        upload.push(
            started
                .elapsed()
                .mul_f64(bytes as f64 / uploaded.max(1) as f64),
        );

        let target = temp.path().join(format!("restore-{round}"));
        let started = Instant::now();
        let restored = job::restore_subtask(Engine::RocksDb, &metadata, &storage, 1, 0, &target)?;
        restore.push(started.elapsed());
        drop(restored);

        // The same state restored from a local directory: what the engine's own part costs.
        let local: Arc<dyn CheckpointStorage> =
            Arc::new(keyedstate::checkpoint::DirectoryStorage::new(
                temp.path().join(format!("dir-{round}")),
            )?);
        let mut local_coordinator = CheckpointCoordinator::open(local.clone(), 1)?;
        let local_metadata = job::checkpoint(
            std::slice::from_ref(&backend),
            &mut local_coordinator,
            SnapshotKind::Incremental,
        )?;
        let target = temp.path().join(format!("local-restore-{round}"));
        let started = Instant::now();
        drop(job::restore_subtask(
            Engine::RocksDb,
            &local_metadata,
            &local,
            1,
            0,
            &target,
        )?);
        local_restore.push(started.elapsed());

        let dir = temp.path().join(format!("plain-download-{round}"));
        std::fs::create_dir_all(&dir).expect("a directory");
        let keys = files.into_iter().map(|(_, key)| key).collect();
        let started = Instant::now();
        runtime.block_on(plain_download(store.clone(), keys, dir));
        download.push(
            started
                .elapsed()
                .mul_f64(bytes as f64 / uploaded.max(1) as f64),
        );
        last = Some((storage, metadata));
    }
    drop(last);
    let (checkpoint, upload, restore, download) = (
        median(checkpoint),
        median(upload),
        median(restore),
        median(download),
    );
    println!("state: {bytes} bytes in the checkpoint; medians of 3");
    println!(
        "checkpoint {:.2} s, plain upload {:.2} s: {:.2}x",
        checkpoint.as_secs_f64(),
        upload.as_secs_f64(),
        checkpoint.as_secs_f64() / upload.as_secs_f64()
    );
    println!(
        "restore {:.2} s, plain download {:.2} s: {:.2}x (restore from a local directory: {:.2} s)",
        restore.as_secs_f64(),
        download.as_secs_f64(),
        restore.as_secs_f64() / download.as_secs_f64(),
        median(local_restore).as_secs_f64()
    );
    Ok(())
}
