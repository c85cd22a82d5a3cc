//! A process checkpointing in a loop is killed with SIGKILL at random points, 50 times (the
//! ignored `soak_checkpoint_survives_sigkill`, run by `scripts/soak.sh kill`: `KILLS` times,
//! 1,000 by default). Each
//! time, the latest completed checkpoint verifies and restores exactly a state the process
//! recorded before checkpointing it, no older than the last one it acknowledged: the last
//! acknowledged checkpoint, or a later one whose `_metadata` was written before a kill (which
//! makes it complete) but whose acknowledgement was not.
//!
//! The checkpointing process is this test binary itself, running the ignored test
//! `checkpointing_child`.

mod common;

use common::TestJob;
use keyedstate::SnapshotKind;
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, load_latest,
};
use keyedstate::job::Engine;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const CHILD_DIR: &str = "KEYEDSTATE_SIGKILL_TEST_DIR";
const PARALLELISM: u32 = 2;

/// The log: `state <round> <digest>` before each checkpoint, `ack <round>` after it completed.
/// Only whole lines count: a kill can cut the last one short (see [`Log`]).
fn read_log(dir: &Path) -> Vec<(String, u64, String)> {
    let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    text.split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let (kind, round) = (parts.next()?, parts.next()?.parse().ok()?);
            Some((
                kind.to_owned(),
                round,
                parts.next().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn storage(dir: &Path) -> Arc<dyn CheckpointStorage> {
    Arc::new(DirectoryStorage::new(dir.join("checkpoints")).unwrap())
}

#[test]
#[ignore = "the checkpointing process of checkpoint_survives_sigkill_at_random_points"]
fn checkpointing_child() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("started by the parent test"));
    let storage = storage(&dir);
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 2).unwrap();
    let (job, mut round) = match coordinator.latest().cloned() {
        Some(latest) => {
            let job = TestJob::restored(Engine::RocksDb, &latest, &storage, PARALLELISM).unwrap();
            let digest = job.digest().to_string();
            let log = read_log(&dir);
            let round = log
                .iter()
                .rev()
                .find(|(kind, _, d)| kind == "state" && *d == digest)
                .map(|e| e.1);
            (
                job,
                round.expect("the restored state is one the log recorded"),
            )
        }
        None => (TestJob::new(Engine::RocksDb, 128, PARALLELISM), 0),
    };
    let mut log = Log::open(&dir);
    loop {
        round += 1;
        job.write_round(round);
        log.append(&format!("state {round} {}", job.digest()));
        job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
        log.append(&format!("ack {round}"));
    }
}

/// The child's end of the log.
struct Log(std::fs::File);

impl Log {
    /// Opens the log for appending, first dropping a line a kill cut short: the next line
    /// starts on its own, and a torn `ack 39` cannot read as `ack 3`.
    fn open(dir: &Path) -> Self {
        let path = dir.join("log");
        let text = std::fs::read(&path).unwrap_or_default();
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.set_len(whole as u64).unwrap();
        Log(file)
    }

    /// Appends `line` in one write: `writeln!` writes each piece of its format with its own
    /// call, and a SIGKILL between two left half a line that the next child continued, so its
    /// state line no longer parsed.
    fn append(&mut self, line: &str) {
        self.0.write_all(format!("{line}\n").as_bytes()).unwrap();
        self.0.sync_data().unwrap();
    }
}

#[test]
fn checkpoint_survives_sigkill_at_random_points() {
    kill_loop(50, 0x5167_4b11);
}

#[test]
#[ignore = "a soak: run by scripts/soak.sh kill"]
fn soak_checkpoint_survives_sigkill() {
    let kills = std::env::var("KILLS").map_or(1_000, |n| n.parse().unwrap());
    kill_loop(kills, 0x50a4_0000);
}

/// Kills the checkpointing child `kills` times at points drawn from `seed`, checking the latest
/// checkpoint after each kill.
fn kill_loop(kills: u32, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = keyedstate_testkit::model::Rng::new(seed);
    let mut checked = 0;
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "checkpointing_child",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env("TMPDIR", &temp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + rng.below(450)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let storage = storage(dir.path());
        let Ok(latest) = load_latest(storage.as_ref()) else {
            continue; // killed before the first checkpoint completed
        };
        for file in latest.files() {
            storage
                .verify(file)
                .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        }
        let work = tempfile::tempdir_in(&temp).unwrap();
        let restored: Vec<_> = (0..PARALLELISM)
            .map(|i| {
                keyedstate::job::restore_subtask(
                    Engine::RocksDb,
                    &latest,
                    &storage,
                    PARALLELISM,
                    i,
                    work.path(),
                )
                .unwrap()
            })
            .collect();
        let digest = keyedstate::job::digest(&restored).unwrap().to_string();
        restored.iter().for_each(|b| b.close().unwrap());
        let log = read_log(dir.path());
        let last_ack = log
            .iter()
            .rev()
            .find(|(kind, _, _)| kind == "ack")
            .map_or(0, |e| e.1);
        // The round whose recorded state the checkpoint holds. Rounds are deterministic, so a
        // round replayed after a restart records the same digest again.
        let round = log
            .iter()
            .rev()
            .find(|(kind, _, d)| kind == "state" && *d == digest)
            .map(|e| e.1);
        // It is the last acknowledged round, or a later one whose `_metadata` was written before
        // a kill (in this run or an earlier one) but whose acknowledgement was not.
        assert!(
            round.is_some_and(|r| r >= last_ack),
            "kill {kill}: checkpoint {} restores {digest}, which is the state of round {round:?}; \
             the last acknowledged round is {last_ack}",
            latest.checkpoint_id
        );
        checked += 1;
    }
    // Each check panics on a mismatch: reaching here means none.
    println!("kills={kills} checked={checked} mismatches=0 seed={seed:#x}");
    assert!(
        checked * 10 >= kills * 9,
        "only {checked} of {kills} kills came after a completed checkpoint"
    );
    // Leftovers of killed processes: the coordinator of the next run cleans them.
    let storage = storage(dir.path());
    CheckpointCoordinator::open(storage.clone(), 2).unwrap();
    assert!(
        storage
            .checkpoint_dirs()
            .unwrap()
            .iter()
            .all(|(_, done)| *done),
        "no half-written checkpoint is left"
    );
}
