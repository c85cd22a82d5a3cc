//! Fuzz harnesses for the decoders of checkpoint files, shared by the property tests (CI) and the
//! coverage-guided targets in `fuzz/` (cargo-fuzz, outside CI). Each wraps the fuzzer's bytes in
//! a valid frame (the `_metadata` checksum; the full snapshot's key-group index), so that the
//! input reaches the document and body parsers instead of stopping at a checksum, and checks
//! that the decoder returns `Corruption` or a checked result, never panics.

use keyedstate_core::backend::{EntryScan, KeyGroupSource, RawEntry};
use keyedstate_core::checkpoint::CheckpointMetadata;
use keyedstate_core::checkpoint::canonical::{CanonicalSnapshot, put_index, write_canonical};
use keyedstate_core::checkpoint::metadata::frame_metadata;
use keyedstate_core::key_layout::EntryParts;
use keyedstate_core::{
    ErrorKind, KeyGroupRange, MaxParallelism, Result, StateId, StateKind, StateMeta,
};

/// One edit of a byte string, decoded from 4 fuzzer bytes: a position (modulo the length), and
/// what to do there.
enum Edit {
    Flip(u8),
    Insert(u8),
    Delete,
}

fn edits(data: &[u8]) -> impl Iterator<Item = (usize, Edit)> + '_ {
    data.chunks_exact(4).map(|e| {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]]));
        let edit = match e[2] % 3 {
            0 => Edit::Flip(e[3] | 1),
            1 => Edit::Insert(e[3]),
            _ => Edit::Delete,
        };
        (at, edit)
    })
}

/// `_metadata` with `json` as its document (version 1 or 2 by the first byte), checksum valid.
/// Panics only if the decoder does: an `Err` must be `Corruption`, an `Ok` must validate.
/// Returns whether the document decoded.
pub fn metadata(data: &[u8]) -> bool {
    let Some((&version, json)) = data.split_first() else {
        return false;
    };
    let Ok(json) = std::str::from_utf8(json) else {
        return false;
    };
    let bytes = frame_metadata(1 + u32::from(version % 2), json);
    match CheckpointMetadata::decode(&bytes, "fuzz") {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Corruption, "{e}");
            false
        }
        Ok(metadata) => {
            metadata
                .validate()
                .expect("decode returns only valid documents");
            true
        }
    }
}

/// A full snapshot of its own: `data[0]` picks one of the base snapshots (1- and 2-byte key
/// groups, lists, maps, TTLs), the rest is edits of it, 4 bytes each: a position, an operation
/// (flip, insert, delete) and a byte. The key-group index is kept valid across the edits, so
/// they reach the header and entry parsers. Every key group is then scanned. Returns whether
/// the snapshot parsed.
pub fn full_snapshot(data: &[u8]) -> bool {
    let Some((&pick, data_edits)) = data.split_first() else {
        return false;
    };
    let (mut bytes, mut offsets) = base_snapshot(pick);
    // The index is rebuilt after the edits: cut it off.
    let mut index_at = bytes.len() - (offsets.len() * 8 + 16);
    bytes.truncate(index_at);
    for (at, edit) in edits(data_edits) {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match edit {
            Edit::Flip(mask) => bytes[at] ^= mask,
            Edit::Insert(byte) => {
                bytes.insert(at, byte);
                index_at += 1;
                offsets
                    .iter_mut()
                    .filter(|o| **o as usize > at)
                    .for_each(|o| *o += 1);
            }
            Edit::Delete => {
                bytes.remove(at);
                index_at -= 1;
                offsets
                    .iter_mut()
                    .filter(|o| **o as usize > at)
                    .for_each(|o| *o -= 1);
            }
        }
    }
    put_index(&mut bytes, &offsets, index_at as u64);
    match CanonicalSnapshot::from_bytes(bytes, "fuzz") {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Corruption, "{e}");
            false
        }
        Ok(mut snapshot) => {
            let states = snapshot.states.len();
            for key_group in snapshot.range.iter() {
                if let Err(e) = snapshot.scan_key_group(key_group, &mut |state, _| {
                    assert!(state < states);
                    Ok(())
                }) {
                    assert_eq!(e.kind(), ErrorKind::Corruption, "{e}");
                }
            }
            true
        }
    }
}

/// Entries for a base snapshot: for each key group and state, `per_group` entries.
struct Source {
    states: Vec<StateMeta>,
    per_group: u8,
}

impl KeyGroupSource for Source {
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        let is_map = self.states[state].kind == StateKind::Map;
        let has_ttl = self.states[state].ttl.is_some();
        for i in 0..self.per_group {
            let key = [i, key_group as u8];
            let user_key = [i ^ 0x5a];
            let mut value = Vec::new();
            if has_ttl {
                // A last-access time far in the future: never expired.
                value.extend_from_slice(&u64::MAX.to_be_bytes());
            }
            value.extend_from_slice(&[i; 3]);
            let parts = EntryParts {
                key_group,
                key: &key,
                namespace: &[],
                user_key: if is_map { &user_key } else { &[] },
            };
            if f(RawEntry {
                parts,
                value: &value,
            })?
            .is_break()
            {
                break;
            }
        }
        Ok(())
    }
}

/// One of a few valid snapshots and the offsets of its key groups.
fn base_snapshot(pick: u8) -> (Vec<u8>, Vec<u64>) {
    let (max_p, start, end) = match pick % 3 {
        0 => (128, 3, 6),
        1 => (300, 250, 258),
        _ => (1, 0, 0),
    };
    let max_p = MaxParallelism::new(max_p).expect("a valid max parallelism");
    let range = KeyGroupRange::new(start, end, max_p).expect("a valid range");
    let meta = |name: &str, kind, ttl: bool| StateMeta {
        name: name.to_owned(),
        kind,
        value_codec: "v".to_owned(),
        user_key_codec: (kind == StateKind::Map).then(|| "k".to_owned()),
        ttl: ttl.then_some(keyedstate_core::ttl::TtlMeta {
            millis: 1000,
            incremental_cleanup: 0,
        }),
    };
    let states = vec![
        meta("v", StateKind::Value, false),
        meta("m", StateKind::Map, pick & 4 != 0),
        meta("l", StateKind::List, false),
    ];
    let mut source = Source {
        states: states.clone(),
        per_group: 1 + pick / 8 % 3,
    };
    let mut bytes = Vec::new();
    write_canonical(&mut source, max_p, range, &states, 0, &mut bytes).expect("in memory");
    let index_at = bytes.len() - (range.len() * 8 + 16);
    let offsets = (0..range.len())
        .map(|i| {
            let at = index_at + i * 8;
            u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        })
        .collect();
    (bytes, offsets)
}

/// A base `_metadata` document (version 2), for seeds and property tests.
pub fn base_metadata_json() -> String {
    let max_p = MaxParallelism::new(128).expect("valid");
    let meta = StateMeta {
        name: "v".to_owned(),
        kind: StateKind::Value,
        value_codec: "u64".to_owned(),
        user_key_codec: None,
        ttl: None,
    };
    let handle = |i: u32| keyedstate_core::checkpoint::SubtaskHandle {
        subtask: i,
        key_group_range: max_p.range_for_subtask(2, i).expect("valid"),
        snapshot: keyedstate_core::checkpoint::SnapshotHandle::RocksDbIncremental {
            backend_id: "00".repeat(16),
            files: vec![keyedstate_core::checkpoint::NamedFile {
                name: "000009.sst".to_owned(),
                file: keyedstate_core::checkpoint::FileRef {
                    path: format!("shared/{i}-000009.sst"),
                    size: 1024,
                    crc32c: 7,
                },
            }],
        },
        operator_state: None,
        heap_timers: None,
        states: vec![meta.clone()],
        key_codec: Some("ks1:u64".to_owned()),
    };
    let metadata = CheckpointMetadata {
        version: 3,
        checkpoint_id: 3,
        max_parallelism: max_p,
        subtasks: vec![handle(0), handle(1)],
        states: vec![meta.clone()],
        not_owned: vec![1],
        key_codec: Some("ks1:u64".to_owned()),
    };
    serde_json::to_string_pretty(&metadata).expect("serializable")
}

/// Applies edits (4 bytes each: position, operation, byte) to `text`'s bytes, for property
/// tests of [`metadata`] that start from a valid document.
pub fn edited(text: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for (at, edit) in edits(data) {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match edit {
            Edit::Flip(mask) => bytes[at] ^= mask,
            Edit::Insert(byte) => bytes.insert(at, byte),
            Edit::Delete => {
                bytes.remove(at);
            }
        }
    }
    bytes
}
