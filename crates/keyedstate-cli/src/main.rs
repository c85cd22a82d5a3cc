//! `keyedstate`: the command-line tool.

/// `println!` for command output: when the reader of standard output has gone (`keyedstate
/// inspect ... | head`), the process ends quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            crate::output_failed(e);
        }
    }};
}

mod bench;
mod checkpoint_arg;
mod demo;
mod gc;
mod inspect;
mod progress;
mod rescale;
mod restore;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "keyedstate",
    version,
    about = "Persistent keyed state for stream processors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a keyed streaming job with checkpoints, restore its last checkpoint and check it.
    Demo(demo::DemoArgs),
    /// Show a checkpoint's states, subtasks, key-group ranges and files.
    Inspect(inspect::InspectArgs),
    /// Check every file of a checkpoint and that it restores.
    Verify(verify::VerifyArgs),
    /// Remove files that no completed checkpoint of a root references.
    Gc(gc::GcArgs),
    /// Write a checkpoint at another parallelism from a checkpoint (offline rescale).
    Rescale(rescale::RescaleArgs),
    /// Materialize one subtask of a checkpoint as a plain RocksDB directory.
    Restore(restore::RestoreArgs),
    /// Measure the state benchmark workload and its baselines (use a release build).
    Bench(bench::BenchArgs),
}

fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("keyedstate: cannot write to standard output: {e}");
    std::process::exit(1);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::Rescale(args) => rescale::run(&args),
        Command::Restore(args) => restore::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyedstate: {e}");
            ExitCode::FAILURE
        }
    }
}
