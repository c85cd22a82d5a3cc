//! `keyedstate gc`: removes what no completed checkpoint of a root references.

use crate::checkpoint_arg::open_root;
use clap::Args;
use keyedstate::Result;
use keyedstate::checkpoint::collect_garbage;
use std::path::PathBuf;

#[derive(Args)]
pub struct GcArgs {
    /// The checkpoint root, a directory or an object-store URL (`s3://bucket/prefix`). No job
    /// may be writing checkpoints to it meanwhile.
    root: PathBuf,
    /// List what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: &GcArgs) -> Result<()> {
    let storage = open_root(&args.root)?;
    let report = collect_garbage(storage.as_ref(), args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for path in &report.removed_files {
        say!("{verb} {path}");
    }
    say!(
        "{verb} {} files and {} incomplete checkpoints",
        report.removed_files.len(),
        report.removed_checkpoints.len()
    );
    Ok(())
}
