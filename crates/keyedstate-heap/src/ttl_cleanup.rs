//! Incremental TTL cleanup, as Flink's heap backend does it: every access of a state with a TTL
//! checks a few more of its entries (`incremental_cleanup` per access), walking the key groups
//! round robin, and removes what has expired.

use crate::MapSlot;
use crate::Table;
use crate::slot::Slot;
use crate::table::{Bytes, KeyGroupTable};
use keyedstate_core::Result;
use keyedstate_core::ttl::{Unexpired, unexpired};

/// Where a state's cleanup walk stands.
#[derive(Default, Clone)]
pub(crate) struct Cursor {
    group: usize,
    /// Keys of `group` still to check.
    pending: Vec<Vec<u8>>,
}

/// Checks up to `budget` entries of `table` at `now`, removing expired entries, map entries and
/// list elements.
pub(crate) fn step(
    table: &mut Table,
    cursor: &mut Cursor,
    budget: usize,
    ttl_millis: u64,
    now: u64,
    is_list: bool,
) -> Result<()> {
    let groups = match table {
        Table::Plain(t) => t.groups(),
        Table::Map(t) => t.groups(),
        // Timers have no TTL.
        Table::Sorted(_) => return Ok(()),
    };
    let (mut checked, mut advanced) = (0, 0);
    let mut kept = Vec::new();
    while checked < budget {
        let Some(key) = cursor.pending.pop() else {
            // A whole round over empty key groups: nothing to check.
            if advanced == groups {
                break;
            }
            advanced += 1;
            cursor.group = (cursor.group + 1) % groups;
            cursor.pending = match table {
                Table::Plain(t) => t.keys_of_group(cursor.group),
                Table::Map(t) => t.keys_of_group(cursor.group),
                Table::Sorted(_) => Vec::new(),
            };
            continue;
        };
        checked += 1;
        match table {
            Table::Plain(t) => {
                clean_value(t, cursor.group, &key, is_list, ttl_millis, now, &mut kept)?
            }
            Table::Map(t) => clean_map(t, cursor.group, &key, ttl_millis, now)?,
            Table::Sorted(_) => {}
        }
    }
    Ok(())
}

fn clean_value(
    table: &mut KeyGroupTable<Slot>,
    group: usize,
    key: &[u8],
    is_list: bool,
    ttl_millis: u64,
    now: u64,
    kept: &mut Vec<u8>,
) -> Result<()> {
    let Some(slot) = table.get_at(group, key) else {
        return Ok(());
    };
    match unexpired(slot.value(), is_list, ttl_millis, now, kept)? {
        Unexpired::All => {}
        Unexpired::Part => {
            if let Some(slot) = table.get_mut_at(group, key) {
                slot.set_value(kept);
            }
        }
        Unexpired::Nothing => table.remove_at(group, key),
    }
    Ok(())
}

fn clean_map(
    table: &mut KeyGroupTable<MapSlot>,
    group: usize,
    key: &[u8],
    ttl_millis: u64,
    now: u64,
) -> Result<()> {
    let Some(MapSlot { map, .. }) = table.get_at(group, key) else {
        return Ok(());
    };
    let mut scratch = Vec::new();
    let mut expired = Vec::new();
    for (user_key, value) in map.iter() {
        if unexpired(value, false, ttl_millis, now, &mut scratch)? == Unexpired::Nothing {
            expired.push(Bytes::from_slice(user_key));
        }
    }
    if expired.is_empty() {
        return Ok(());
    }
    if let Some(entry) = table.get_mut_at(group, key) {
        expired.iter().for_each(|user_key| {
            entry.map.remove(user_key);
        });
        if entry.map.is_empty() {
            table.remove_at(group, key);
        }
    }
    Ok(())
}
