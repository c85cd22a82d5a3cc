//! Measures restore with rescale of a large RocksDB state against copying the same checkpoint
//! files with `cp -r`, in one run (issue 15's table):
//!
//! ```sh
//! cargo run --release --example rescale_vs_cp -- [GiB, default 1] [directory, default a temporary one] [methods, default Files] [steady|fresh, default steady]
//! ```
//!
//! It writes at least that much incompressible state at parallelism 4 and checkpoints it, then
//! restores that at 1, 2 and 3 and checkpoints each, so that there is a checkpoint at every
//! parallelism from 1 to 4. It then times 1 -> 4, 4 -> 1, 2 -> 3 and 3 -> 2 (every new subtask
//! restored in turn, the sum of their restores), each against `cp -r` of the checkpoint it
//! reads, with a warm page cache (the files were just read) and a cold one (the page cache
//! dropped before each run, when this runs as root). Each figure is the median of three runs.
//! `methods` is a comma-separated list of `Files`, `Ingest`, `WriteBatch`
//! (`RocksDbConfig::rescale_method`). The layout: `steady` is what a job that has run a while
//! holds, every key compacted into the last level and the latest 5% of updates in L0 files;
//! `fresh` checkpoints the state as it was written, mostly in L0 files, each spanning all of its
//! subtask's key groups.

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
    let methods: Vec<RescaleMethod> = args
        .next()
        .unwrap_or_else(|| "Files".to_owned())
        .split(',')
        .map(|m| match m {
            "Files" => RescaleMethod::Files,
            "Ingest" => RescaleMethod::Ingest,
            "WriteBatch" => RescaleMethod::WriteBatch,
            other => panic!("unknown method {other}"),
        })
        .collect();
    let steady = match args.next().as_deref() {
        None | Some("steady") => true,
        Some("fresh") => false,
        Some(other) => panic!("unknown layout {other}"),
    };
    let max_p = MaxParallelism::new(128)?;
    let keys = ((gib * f64::from(1u32 << 30)) as u64).div_ceil(VALUE_BYTES as u64);

    let started = Instant::now();
    let p4 = write_state(&dir, max_p, keys, steady)?;
    eprintln!(
        "wrote {keys} keys, a checkpoint of {} bytes at parallelism 4, in {:.1} s",
        p4.1.files().map(|f| f.size).sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    let mut at = [None, None, None, Some(p4)];
    for parallelism in 1..=3 {
        let (root, metadata) = at[3].as_ref().expect("written");
        at[parallelism - 1] = Some(rescaled_checkpoint(&dir, root, metadata, parallelism)?);
    }

    let cold = can_drop_caches();
    println!("rescale\tcache\tbytes\tcp_s\tmethod\trescale_s\tratio_to_cp");
    for (from, to) in [(1u32, 4u32), (4, 1), (2, 3), (3, 2)] {
        let (root, metadata) = at[from as usize - 1].as_ref().expect("written");
        let bytes: u64 = metadata.files().map(|f| f.size).sum();
        for cache in ["warm", "cold"] {
            if cache == "cold" && !cold {
                eprintln!("cannot drop the page cache (not root?): no cold runs");
                continue;
            }
            let before = || {
                if cache == "cold" {
                    drop_caches();
                }
            };
            let cp = median(|| {
                before();
                time_cp(root, &dir.join("cp"))
            })?;
            for &method in &methods {
                let work = dir.join(format!("restore-{from}-{to}"));
                let took = median(|| {
                    before();
                    time_restore(root, metadata, to, method, &work)
                })?;
                println!(
                    "{from}->{to}\t{cache}\t{bytes}\t{:.3}\t{method:?}\t{:.3}\t{:.2}",
                    cp.as_secs_f64(),
                    took.as_secs_f64(),
                    took.as_secs_f64() / cp.as_secs_f64()
                );
            }
        }
    }
    Ok(())
}

/// Writes `keys` values of incompressible bytes at parallelism 4 (`steady`: compacts them and
/// updates every 20th key) and checkpoints them.
fn write_state(
    dir: &Path,
    max_p: MaxParallelism,
    keys: u64,
    steady: bool,
) -> Result<(PathBuf, CheckpointMetadata)> {
    let job_dir = dir.join("job");
    let backends: Vec<_> = (0..4)
        .map(|i| job::open_subtask(Engine::RocksDb, max_p, 4, i, &job_dir))
        .collect::<Result<_>>()?;
    let mut rng = keyedstate_testkit::model::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut value = vec![0u8; VALUE_BYTES];
    let mut key_bytes = Vec::new();
    let mut write = |key: u64| -> Result<()> {
        key_bytes.clear();
        keyedstate::codec::encode(&key, &mut key_bytes)?;
        let backend = &backends[max_p.subtask_of(max_p.key_group_of(&key_bytes), 4)? as usize];
        rng.fill(&mut value);
        backend.set_current_key(&key)?;
        backend
            .value_state(&ValueStateDescriptor::<Vec<u8>>::new("blob"))?
            .update(&value)
    };
    (0..keys).try_for_each(&mut write)?;
    if steady {
        backends.iter().try_for_each(|b| b.compact())?;
        (0..keys).step_by(20).try_for_each(&mut write)?;
    }
    let root = dir.join("checkpoint-p4");
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root)?);
    let mut coordinator = CheckpointCoordinator::open(storage, 1)?;
    let metadata = job::checkpoint(&backends, &mut coordinator, SnapshotKind::Incremental)?;
    backends.iter().try_for_each(|b| b.close())?;
    Ok((root, metadata))
}

/// `metadata` (in `root`) restored at `parallelism` and checkpointed into a root of its own.
fn rescaled_checkpoint(
    dir: &Path,
    root: &Path,
    metadata: &CheckpointMetadata,
    parallelism: usize,
) -> Result<(PathBuf, CheckpointMetadata)> {
    let parallelism = parallelism as u32;
    let source: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(root)?);
    let out = dir.join(format!("checkpoint-p{parallelism}"));
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&out)?);
    let work = dir.join(format!("to-p{parallelism}"));
    let restored: Vec<_> = (0..parallelism)
        .map(|i| job::restore_subtask(Engine::RocksDb, metadata, &source, parallelism, i, &work))
        .collect::<Result<_>>()?;
    let mut coordinator = CheckpointCoordinator::open(storage, 1)?;
    let written = job::checkpoint(&restored, &mut coordinator, SnapshotKind::Incremental)?;
    restored.iter().try_for_each(|b| b.close())?;
    Ok((out, written))
}

/// The median of three runs: the machine is shared, and the page cache makes the first of a
/// series differ.
fn median(mut run: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut runs = [run()?, run()?, run()?];
    runs.sort();
    Ok(runs[1])
}

fn can_drop_caches() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok()
}

/// Writes dirty pages out and drops the page cache, so that the next run reads from disk.
fn drop_caches() {
    let _ = std::process::Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3\n");
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
