//! An exactly-once sink: the records of each epoch, sorted, in one file per epoch, written on
//! worker 0 once the frontier has passed the epoch. A run restarted from a checkpoint replays
//! the epochs after it and writes their files again, atomically and with the same contents:
//! the output, deduplicated by epoch, is that of a run never interrupted.

use crate::job::Job;
use keyedstate::{Error, Result};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;

/// The name of epoch `epoch`'s file.
pub fn epoch_file_name(epoch: u64) -> String {
    format!("epoch-{epoch:010}.txt")
}

/// Writes the records of `stream` to `dir`, one line each (their `Display`), sorted, in one file
/// per epoch that has any ([`epoch_file_name`]). Returns a stream that passes an epoch once its
/// file is written: join the job's checkpoints behind it
/// ([`crate::Checkpoints::complete_after`]).
pub fn write_epoch_files<'scope, O>(
    stream: StreamVec<'scope, u64, O>,
    job: &Job,
    dir: impl Into<PathBuf>,
) -> StreamVec<'scope, u64, ()>
where
    O: ExchangeData + Ord + Display,
{
    let dir = dir.into();
    let job = job.clone();
    let mut waiting: BTreeMap<u64, (Capability<u64>, Vec<O>)> = BTreeMap::new();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(|_: &O| 0),
        "EpochFiles",
        move |_, _| {
            move |(input, frontier), output| {
                input.for_each(|stamp, data| {
                    let epoch = crate::keyed::epoch_of(&stamp);
                    waiting
                        .entry(epoch)
                        .or_insert_with(|| {
                            (stamp.delayed(&epoch, output.output_index()), Vec::new())
                        })
                        .1
                        .append(data);
                });
                while let Some(entry) = waiting
                    .first_entry()
                    .filter(|e| !frontier.less_equal(e.key()))
                {
                    let (epoch, (_cap, mut records)) = entry.remove_entry();
                    records.sort();
                    if let Err(e) = write_atomically(&dir, epoch, &records) {
                        // Held back: nothing after this epoch may complete a checkpoint.
                        job.fail(e);
                        return;
                    }
                }
            }
        },
    )
}

/// Writes `dir/<epoch file>` through a temporary file renamed over it, synced: a kill leaves
/// the old file or the new one, never a part.
fn write_atomically<O: Display>(dir: &Path, epoch: u64, records: &[O]) -> Result<()> {
    let io = |what: &str, path: &Path| {
        let what = format!("cannot {what} {}", path.display());
        move |e| Error::io(what, e)
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let path = dir.join(epoch_file_name(epoch));
    let temp = dir.join(format!(".{}.tmp", epoch_file_name(epoch)));
    let mut text = String::new();
    for record in records {
        text.push_str(&format!("{record}\n"));
    }
    let mut file = std::fs::File::create(&temp).map_err(io("create", &temp))?;
    file.write_all(text.as_bytes())
        .map_err(io("write", &temp))?;
    file.sync_all().map_err(io("sync", &temp))?;
    std::fs::rename(&temp, &path).map_err(io("rename into", &path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}
