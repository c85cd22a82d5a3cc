//! The example job (`timely-sessions`) run as separate processes on loopback: one process is
//! killed with SIGKILL at a random point (the others then too, as a cluster manager restarts a
//! failed job), and the job restarts from its latest checkpoint at another layout: 2 processes
//! x 2 workers, then 3 processes x 1 worker, then 1 x 1, and round again. After the last kill
//! the job runs to its end; its output, deduplicated by epoch, must equal that of a run never
//! interrupted. `soak_sessions_survive_sigkill` (ignored; `scripts/timely-kill-loop.sh`) does
//! `KILLS` kills, 50 by default.

use keyedstate::checkpoint::{CheckpointStorage, DirectoryStorage, load_latest};
use keyedstate_testkit::model::Rng;
use keyedstate_testkit::s3_server::S3Server;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_timely-sessions");

/// The layouts the job restarts at, in turn: (processes, workers per process).
const LAYOUTS: [(usize, usize); 3] = [(2, 2), (3, 1), (1, 1)];

/// What every run of one job is given.
struct JobArgs {
    engine: &'static str,
    epochs: u64,
    /// The checkpoint root: `<dir>/checkpoints` when `None`, else this URL, reached with `env`.
    root: Option<String>,
    env: Vec<(&'static str, String)>,
    /// More arguments of the job (its checkpoint schedule).
    extra: Vec<&'static str>,
}

/// The processes of one run of the job; all are killed when it is dropped (a failed assertion
/// included).
struct Run {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Run {
    /// Starts the job at `layout` on free loopback ports.
    fn start(dir: &Path, job: &JobArgs, layout: (usize, usize), epoch_ms: u64, run: u32) -> Run {
        let (processes, workers) = layout;
        let hosts = dir.join(format!("hosts-{run}"));
        let ports: Vec<TcpListener> = (0..processes)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let lines: Vec<String> = ports
            .iter()
            .map(|l| format!("127.0.0.1:{}\n", l.local_addr().unwrap().port()))
            .collect();
        std::fs::write(&hosts, lines.concat()).unwrap();
        drop(ports); // Free again, for the processes to bind.
        let mut run_ = Run {
            children: Vec::new(),
            logs: Vec::new(),
        };
        for process in 0..processes {
            let log = dir.join(format!("run-{run}-process-{process}.log"));
            let out = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(EXE);
            let root = job
                .root
                .clone()
                .unwrap_or_else(|| dir.join("checkpoints").to_str().unwrap().to_owned());
            command
                .envs(job.env.iter().map(|(k, v)| (k, v)))
                .args(["--root", &root])
                .args(["--out", dir.join("out").to_str().unwrap()])
                .args([
                    "--work",
                    dir.join(format!("work-{process}")).to_str().unwrap(),
                ])
                .args(["--engine", job.engine, "--epochs", &job.epochs.to_string()])
                .args(["--epoch-ms", &epoch_ms.to_string()])
                .args(&job.extra)
                .arg("--")
                .args(["-w", &workers.to_string()])
                .args(["-n", &processes.to_string(), "-p", &process.to_string()])
                .args(["-h", hosts.to_str().unwrap()])
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .stdin(Stdio::null());
            run_.children.push(command.spawn().unwrap());
            run_.logs.push(log);
            // Each process connects to those before it, retrying only after a second: let
            // each listen first.
            std::thread::sleep(Duration::from_millis(100));
        }
        run_
    }

    /// Waits for every process to end by itself, successfully, within `limit`.
    fn finish(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for (i, child) in self.children.iter_mut().enumerate() {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(&self.logs[i]).unwrap_or_default();
                    assert!(status.success(), "process {i} failed: {status}\n{log}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "process {i} did not end in {limit:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Process 0's line on its restore, if it restored.
    fn restore_line(&self) -> Option<String> {
        self.log_line("restored checkpoint")
    }

    /// Whether worker 0 has restored a checkpoint or found none, and so started its epochs.
    fn started(&self) -> bool {
        self.restore_line().is_some() || self.log_line("started without a checkpoint").is_some()
    }

    fn log_line(&self, text: &str) -> Option<String> {
        let log = std::fs::read_to_string(&self.logs[0]).ok()?;
        log.lines().find(|l| l.contains(text)).map(str::to_owned)
    }
}

/// The job's output: every epoch file, by name.
fn output(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn kill_loop(engine: &'static str, kills: u32, seed: u64, extra: Vec<&'static str>) {
    let checkpointed = |dir: &Path| {
        DirectoryStorage::new(dir.join("checkpoints"))
            .and_then(|storage| load_latest(&storage))
            .is_ok()
    };
    kill_loop_at(engine, kills, seed, None, Vec::new(), extra, &checkpointed);
}

fn kill_loop_at(
    engine: &'static str,
    kills: u32,
    seed: u64,
    root: Option<String>,
    env: Vec<(&'static str, String)>,
    extra: Vec<&'static str>,
    // Whether a checkpoint of the job in this directory has completed.
    checkpointed: &dyn Fn(&Path) -> bool,
) {
    // Long enough that no run reaches the end before its kill: a run goes on for 0.3 to 1.5 s
    // after its restore, at 8 ms an epoch.
    let epochs = 100 + 250 * u64::from(kills);
    let job = JobArgs {
        engine,
        epochs,
        root: root.clone(),
        env: env.clone(),
        extra: extra.clone(),
    };
    let reference = tempfile::tempdir().unwrap();
    let uninterrupted = JobArgs {
        engine,
        epochs,
        root: None,
        env: Vec::new(),
        extra: Vec::new(),
    };
    Run::start(reference.path(), &uninterrupted, (1, 2), 0, 0).finish(Duration::from_secs(600));
    let expected = output(reference.path());
    let events: u64 = expected
        .iter()
        .flat_map(|(_, text)| text.lines())
        .map(|line| {
            line.rsplit("events=")
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        events,
        4 * 25 * job.epochs,
        "every event is in exactly one session"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let mut restores = Vec::new();
    for kill in 0..kills {
        let layout = LAYOUTS[kill as usize % LAYOUTS.len()];
        let mut run = Run::start(dir.path(), &job, layout, 8, kill);
        // A run after the first restores first (its processes connect, worker 0 opens the
        // root, every worker restores; or finds no checkpoint, when none completed before
        // the last kill, and starts afresh): the kill comes at a random point after that. The
        // first run starts afresh and is killed after its first checkpoint completed (waited
        // for, not timed: under load, to an object store, it may take seconds).
        if kill == 0 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !checkpointed(dir.path()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !run.started() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        // One process first, as a machine fails; then the rest of the job.
        let victim = rng.below(layout.0 as u64) as usize;
        for (i, child) in run.children.iter_mut().enumerate() {
            let ended = child.try_wait().unwrap();
            assert!(
                ended.is_none(),
                "kill {kill}: process {i} ended before its kill: {ended:?}"
            );
        }
        let _ = run.children[victim].kill();
        let _ = run.children[victim].wait();
        std::thread::sleep(Duration::from_millis(50));
        restores.extend(run.restore_line());
        drop(run);
        // Whatever the kill left, the latest completed checkpoint is whole (checked here on a
        // directory; on an object store by the restart).
        if job.root.is_some() {
            continue;
        }
        let storage = DirectoryStorage::new(dir.path().join("checkpoints")).unwrap();
        if let Ok(latest) = load_latest(&storage) {
            for file in latest.files() {
                storage
                    .verify(file)
                    .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
            }
        }
    }
    let last = LAYOUTS[kills as usize % LAYOUTS.len()];
    let run = Run::start(dir.path(), &job, last, 0, kills);
    let logs = run.logs.clone();
    run.finish(Duration::from_secs(600));
    restores.extend(
        std::fs::read_to_string(&logs[0])
            .unwrap()
            .lines()
            .filter(|l| l.contains("restored checkpoint"))
            .map(str::to_owned),
    );
    let actual = output(dir.path());
    let mismatches = expected.iter().zip(&actual).filter(|(e, a)| e != a).count()
        + expected.len().abs_diff(actual.len());
    for line in &restores {
        println!("{line}");
    }
    println!(
        "engine={engine} kills={kills} restores={} mismatches={mismatches} seed={seed:#x}",
        restores.len()
    );
    assert_eq!(
        mismatches, 0,
        "the output differs from an uninterrupted run's"
    );
    // Every run after the first restores before its kill, unless no checkpoint had completed
    // yet; most must have.
    assert!(
        restores.len() as u32 * 2 >= kills,
        "only {} of {kills} runs restored a checkpoint: the kills came too early",
        restores.len()
    );
}

#[test]
fn sessions_on_rocksdb_survive_sigkill_and_restart_at_other_worker_counts() {
    kill_loop("rocksdb", 3, 0x7153_0001, Vec::new());
}

#[test]
fn sessions_on_the_heap_checkpointing_every_60_ms_survive_sigkill_and_restart_at_other_worker_counts()
 {
    // A processing-time interval: worker 0 picks the checkpoint epochs as they come.
    kill_loop("heap", 3, 0x7153_0002, vec!["--interval-ms", "60"]);
}

#[test]
fn sessions_checkpointing_to_s3_survive_sigkill() {
    let server = S3Server::start();
    server.create_bucket("jobs");
    let root = "s3://jobs/sessions".to_owned();
    let checkpointed = |_: &Path| {
        server
            .list("jobs", "sessions/")
            .iter()
            .any(|key| key.ends_with("/_metadata"))
    };
    kill_loop_at(
        "rocksdb",
        2,
        0x7153_0003,
        Some(root),
        server.env(),
        Vec::new(),
        &checkpointed,
    );
}

#[test]
#[ignore = "a soak: run by scripts/timely-kill-loop.sh"]
fn soak_sessions_survive_sigkill() {
    let kills = std::env::var("KILLS").map_or(50, |n| n.parse().unwrap());
    let engine = match std::env::var("ENGINE").as_deref() {
        Ok("heap") => "heap",
        _ => "rocksdb",
    };
    kill_loop(engine, kills, 0x7153_5000, Vec::new());
}
