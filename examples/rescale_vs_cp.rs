//! Measures restore with rescale of a large RocksDB state against copying the same checkpoint
//! files with `cp`, in one run:
//!
//! ```sh
//! cargo run --release --example rescale_vs_cp -- [GiB, default 1] [directory, default a temporary one]
//! ```
//!
//! It writes at least that much incompressible state at parallelism 2 and checkpoints it (A);
//! restores A at parallelism 1 and checkpoints that (B); then times, each against `cp -r` of the
//! checkpoint it reads: restore 2 -> 1 from A and 1 -> 2 from B, by SST ingestion and by write
//! batches. Each figure is the median of three runs; the page cache is warm for all of them
//! alike (the files were just written).

use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, DirectoryStorage,
};
use keyedstate::job::{self, Engine};
use keyedstate::rocksdb::{RescaleMethod, RocksDbBackend, RocksDbConfig};
use keyedstate::{MaxParallelism, Result, SnapshotKind, StateBackend, ValueStateDescriptor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 4096;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args
        .next()
        .map(|a| a.parse().expect("GiB as a number"))
        .unwrap_or(1.0);
    let temp = tempfile::tempdir().expect("temporary directory");
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let max_p = MaxParallelism::new(128)?;
    let keys = ((gib * f64::from(1u32 << 30)) as u64).div_ceil(VALUE_BYTES as u64);

    // A: the state at parallelism 2.
    let started = Instant::now();
    let (root_a, a) = {
        let job_dir = dir.join("job");
        let backends: Vec<_> = (0..2)
            .map(|i| job::open_subtask(Engine::RocksDb, max_p, 2, i, &job_dir))
            .collect::<Result<_>>()?;
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut value = vec![0u8; VALUE_BYTES];
        let mut key_bytes = Vec::new();
        for key in 0..keys {
            key_bytes.clear();
            keyedstate::codec::encode(&key, &mut key_bytes)?;
            let backend = &backends[max_p.subtask_of(max_p.key_group_of(&key_bytes), 2)? as usize];
            for chunk in value.chunks_mut(8) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                chunk.copy_from_slice(&rng.to_le_bytes()[..chunk.len()]);
            }
            backend.set_current_key(&key)?;
            backend
                .value_state(&ValueStateDescriptor::<Vec<u8>>::new("blob"))?
                .update(&value)?;
        }
        let root = dir.join("checkpoint-p2");
        let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root)?);
        let mut coordinator = CheckpointCoordinator::open(storage, 1)?;
        let metadata = job::checkpoint(&backends, &mut coordinator, SnapshotKind::Incremental)?;
        backends.iter().try_for_each(|b| b.close())?;
        (root, metadata)
    };
    let bytes_a: u64 = a.files().map(|f| f.size).sum();
    eprintln!(
        "wrote {keys} keys, checkpoint A of {bytes_a} bytes at parallelism 2, in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // B: A restored at parallelism 1 and checkpointed.
    let root_b = dir.join("checkpoint-p1");
    let b = {
        let storage_a: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root_a)?);
        let storage_b: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root_b)?);
        let restored =
            job::restore_subtask(Engine::RocksDb, &a, &storage_a, 1, 0, &dir.join("to-b"))?;
        let mut coordinator = CheckpointCoordinator::open(storage_b, 1)?;
        let metadata = job::checkpoint(
            std::slice::from_ref(&restored),
            &mut coordinator,
            SnapshotKind::Incremental,
        )?;
        restored.close()?;
        metadata
    };
    let bytes_b: u64 = b.files().map(|f| f.size).sum();

    println!("measurement\tbytes\tseconds\tratio_to_cp");
    for (name, root, metadata, bytes, target) in [
        ("2->1", &root_a, &a, bytes_a, 1u32),
        ("1->2", &root_b, &b, bytes_b, 2),
    ] {
        let cp = median(|| time_cp(root, &dir.join(format!("cp-{target}"))))?;
        println!(
            "cp -r {name} source\t{bytes}\t{:.3}\t1.00",
            cp.as_secs_f64()
        );
        for method in [RescaleMethod::Ingest, RescaleMethod::WriteBatch] {
            let work = dir.join(format!("restore-{target}-{method:?}"));
            let took = median(|| time_restore(root, metadata, target, method, &work))?;
            println!(
                "rescale {name} by {method:?}\t{bytes}\t{:.3}\t{:.2}",
                took.as_secs_f64(),
                took.as_secs_f64() / cp.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The median of three runs: the machine is shared, and the page cache makes the first of a
/// series differ.
fn median(mut run: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut runs = [run()?, run()?, run()?];
    runs.sort();
    Ok(runs[1])
}

fn time_cp(root: &Path, to: &Path) -> Result<Duration> {
    let started = Instant::now();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(root)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success());
    let took = started.elapsed();
    std::fs::remove_dir_all(to).ok();
    Ok(took)
}

/// Restores every subtask of parallelism `target` from `metadata` in `root`, one after another.
fn time_restore(
    root: &Path,
    metadata: &CheckpointMetadata,
    target: u32,
    method: RescaleMethod,
    work: &Path,
) -> Result<Duration> {
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(root)?);
    let mut took = Duration::ZERO;
    for index in 0..target {
        let range = metadata.max_parallelism.range_for_subtask(target, index)?;
        let mut config = RocksDbConfig::new(
            work.join(format!("subtask-{index}")),
            metadata.max_parallelism,
            range,
        );
        config.rescale_method = method;
        let started = Instant::now();
        let mut backend = RocksDbBackend::restore_engine(config, metadata, &storage)?;
        took += started.elapsed();
        // Closing removes the instance directory: not part of the restore.
        backend.close()?;
    }
    Ok(took)
}
