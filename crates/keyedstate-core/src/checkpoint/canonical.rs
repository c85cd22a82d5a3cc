//! The canonical full snapshot: one backend-independent file per subtask, ordered by key group,
//! with the offset of each key group so that a restore reads only the key groups it needs.
//! Every backend writes it and every backend reads it. Bytes: see `docs/formats.md`.

use crate::backend::{KeyGroupSource, RawEntry, StateBackend, StateId, put_raw_entry};
use crate::descriptor::{StateKind, StateMeta};
use crate::error::{Error, Result};
use crate::key_group::{KeyGroupRange, MaxParallelism};
use crate::key_layout::{put_framed, put_varint};
use crate::ttl::{TtlMeta, Unexpired, unexpired};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;

pub const MAGIC: &[u8; 8] = b"KSSNAP\x00\x01";
pub const INDEX_MAGIC: &[u8; 8] = b"KSSNAPIX";
const ENTRY: u8 = 1;
const END_OF_KEY_GROUP: u8 = 0;

fn kind_byte(kind: StateKind) -> u8 {
    match kind {
        StateKind::Value => 0,
        StateKind::List => 1,
        StateKind::Map => 2,
        StateKind::Reducing => 3,
        StateKind::Aggregating => 4,
    }
}

fn kind_of(byte: u8) -> Option<StateKind> {
    Some(match byte {
        0 => StateKind::Value,
        1 => StateKind::List,
        2 => StateKind::Map,
        3 => StateKind::Reducing,
        4 => StateKind::Aggregating,
        _ => return None,
    })
}

/// Bytes on their way to a writer, gathered into large writes: a snapshot's entries are tens
/// of bytes each, and a write of each (the storage's writer, its buffer, its checksum) costs
/// more than encoding it.
struct Gathering<W> {
    inner: W,
    /// Encoded bytes not yet written.
    pending: Vec<u8>,
    written: u64,
}

/// Pending bytes that are written out.
const WRITE_AT: usize = 64 * 1024;

impl<W: Write> Gathering<W> {
    /// Where the next byte goes in the file.
    fn position(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// Writes the pending bytes out if there are enough of them.
    fn write_if_full(&mut self) -> Result<()> {
        if self.pending.len() >= WRITE_AT {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        self.inner
            .write_all(&self.pending)
            .map_err(|e| Error::io("cannot write a full snapshot", e))?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// Writes the canonical snapshot of `states` (indexed by state id) over `range` from `source`;
/// returns the number of bytes written. Entries (and list elements) of states with a TTL that
/// have expired at `now_millis` are left out.
pub fn write_canonical<W: Write>(
    source: &mut dyn KeyGroupSource,
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    states: &[StateMeta],
    now_millis: u64,
    out: W,
) -> Result<u64> {
    let mut out = Gathering {
        inner: out,
        pending: Vec::with_capacity(WRITE_AT + 4096),
        written: 0,
    };
    let buf = &mut out.pending;
    buf.extend_from_slice(MAGIC);
    put_varint(buf, u64::from(max_parallelism.get()));
    buf.extend_from_slice(&range.start().to_be_bytes());
    buf.extend_from_slice(&range.end().to_be_bytes());
    put_varint(buf, states.len() as u64);
    for meta in states {
        put_framed(buf, meta.name.as_bytes());
        buf.push(kind_byte(meta.kind));
        put_framed(buf, meta.value_codec.as_bytes());
        put_framed(buf, meta.user_key_codec.as_deref().unwrap_or("").as_bytes());
        put_varint(buf, meta.ttl.map_or(0, |t| t.millis));
        put_varint(
            buf,
            meta.ttl.map_or(0, |t| u64::from(t.incremental_cleanup)),
        );
    }
    let mut offsets = Vec::with_capacity(range.len());
    // The unexpired elements of a list with a TTL.
    let mut kept = Vec::new();
    for key_group in range.iter() {
        offsets.push(out.position());
        for (state, meta) in states.iter().enumerate() {
            let mut failed = None;
            let (ttl, is_list) = (meta.ttl, meta.kind == StateKind::List);
            source.scan_key_group(state as StateId, key_group, &mut |entry| {
                let value = match ttl {
                    None => entry.value,
                    Some(ttl) => {
                        match unexpired(entry.value, is_list, ttl.millis, now_millis, &mut kept)? {
                            Unexpired::All => entry.value,
                            Unexpired::Part => kept.as_slice(),
                            Unexpired::Nothing => return Ok(ControlFlow::Continue(())),
                        }
                    }
                };
                let buf = &mut out.pending;
                buf.push(ENTRY);
                put_varint(buf, state as u64);
                put_framed(buf, entry.parts.key);
                put_framed(buf, entry.parts.namespace);
                put_framed(buf, entry.parts.user_key);
                put_framed(buf, value);
                if let Err(e) = out.write_if_full() {
                    failed = Some(e);
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        out.pending.push(END_OF_KEY_GROUP);
    }
    let index_at = out.position();
    put_index(&mut out.pending, &offsets, index_at);
    out.write_pending()?;
    out.inner
        .flush()
        .map_err(|e| Error::io("cannot write a full snapshot", e))?;
    Ok(out.written)
}

/// Appends the key-group index: each key group's offset, the index's own offset `index_at`
/// (where these bytes start in the file) and the index magic.
pub fn put_index(out: &mut Vec<u8>, offsets: &[u64], index_at: u64) {
    for offset in offsets {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.extend_from_slice(&index_at.to_le_bytes());
    out.extend_from_slice(INDEX_MAGIC);
}

/// What a canonical snapshot is read from: a checked file of the checkpoint storage, or bytes in
/// memory (`std::io::Cursor`).
pub trait SnapshotReader: Read + Seek + Send {}

impl<T: Read + Seek + Send> SnapshotReader for T {}

/// A canonical snapshot opened for reading: header and index are read when it opens, the entries
/// of one key group at a time when scanned, through a bounded buffer. So a restore holds one
/// entry in memory at a time, whatever the file's size.
pub struct CanonicalSnapshot {
    reader: Box<dyn SnapshotReader>,
    origin: String,
    pub max_parallelism: MaxParallelism,
    pub range: KeyGroupRange,
    pub states: Vec<StateMeta>,
    offsets: Vec<u64>,
    index_at: u64,
}

/// Reads through `inner`, counting the bytes, and refusing to read past `left` of them (so a
/// length read from corrupt bytes cannot make it allocate more than the region holds).
struct Region<R> {
    inner: R,
    left: u64,
    read: u64,
}

impl<R: Read> Region<R> {
    fn fill(&mut self, out: &mut [u8]) -> std::result::Result<(), String> {
        if out.len() as u64 > self.left {
            return Err(format!(
                "{} bytes wanted but only {} remain",
                out.len(),
                self.left
            ));
        }
        self.inner
            .read_exact(out)
            .map_err(|e| format!("cannot read: {e}"))?;
        self.left -= out.len() as u64;
        self.read += out.len() as u64;
        Ok(())
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("over-long varint".into())
    }

    /// A length-prefixed frame into `out` (cleared first).
    fn framed(&mut self, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        let len = self.varint()?;
        if len > self.left {
            return Err(format!(
                "frame of {len} bytes but only {} remain",
                self.left
            ));
        }
        out.clear();
        out.resize(len as usize, 0);
        self.fill(out)
    }
}

impl CanonicalSnapshot {
    /// Opens the full snapshot of `handle` (a subtask of a checkpoint of `max_parallelism`) from
    /// `storage`, checked: its own header must name the handle's key groups and max
    /// parallelism, or the file is `Corruption` (a checksum-valid file in the wrong place).
    pub fn open_for(
        storage: &dyn super::CheckpointStorage,
        file: &super::FileRef,
        handle: &super::SubtaskHandle,
        max_parallelism: MaxParallelism,
    ) -> Result<Self> {
        let snapshot = Self::open(storage.open(file)?, &file.path)?;
        if snapshot.max_parallelism != max_parallelism || snapshot.range != handle.key_group_range {
            return Err(Error::corruption(format!(
                "full snapshot {}: holds key groups {} of max parallelism {}, but subtask {} of \
                 the checkpoint has key groups {} of max parallelism {max_parallelism}",
                file.path,
                snapshot.range,
                snapshot.max_parallelism,
                handle.subtask,
                handle.key_group_range
            )));
        }
        Ok(snapshot)
    }

    /// A snapshot in memory.
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> Result<Self> {
        Self::open(Box::new(std::io::Cursor::new(bytes)), origin)
    }

    /// Reads header and index; `origin` names the file in errors.
    pub fn open(mut reader: Box<dyn SnapshotReader>, origin: &str) -> Result<Self> {
        let corrupt = |what: String| Error::corruption(format!("full snapshot {origin}: {what}"));
        let len = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io(format!("cannot read full snapshot {origin}"), e))?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(format!("cannot read full snapshot {origin}"), e))?;
        let mut head = Region {
            inner: std::io::BufReader::with_capacity(64 << 10, &mut reader),
            left: len,
            read: 0,
        };
        let mut magic = [0u8; 8];
        head.fill(&mut magic).map_err(corrupt)?;
        if &magic != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let max_p = head.varint().map_err(corrupt)?;
        let max_parallelism = u32::try_from(max_p)
            .ok()
            .and_then(|m| MaxParallelism::new(m).ok())
            .ok_or_else(|| corrupt(format!("max parallelism {max_p}")))?;
        let mut bounds = [0u8; 4];
        head.fill(&mut bounds)
            .map_err(|_| corrupt("truncated header".into()))?;
        let start = u16::from_be_bytes([bounds[0], bounds[1]]);
        let end = u16::from_be_bytes([bounds[2], bounds[3]]);
        let range =
            KeyGroupRange::new(start, end, max_parallelism).map_err(|e| corrupt(e.to_string()))?;
        let count = head.varint().map_err(corrupt)?;
        let mut states = Vec::new();
        let (mut name, mut value_codec, mut user_key_codec) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..count {
            head.framed(&mut name).map_err(corrupt)?;
            let kind = head.byte().map_err(|_| corrupt("truncated state".into()))?;
            head.framed(&mut value_codec).map_err(corrupt)?;
            head.framed(&mut user_key_codec).map_err(corrupt)?;
            let text = |b: &[u8]| {
                String::from_utf8(b.to_vec()).map_err(|_| corrupt("state meta is not UTF-8".into()))
            };
            let kind = kind_of(kind).ok_or_else(|| corrupt(format!("state kind {kind}")))?;
            let ttl_millis = head.varint().map_err(corrupt)?;
            let cleanup = head.varint().map_err(corrupt)?;
            states.push(StateMeta {
                name: text(&name)?,
                kind,
                value_codec: text(&value_codec)?,
                user_key_codec: (kind == StateKind::Map)
                    .then(|| text(&user_key_codec))
                    .transpose()?,
                ttl: (ttl_millis > 0).then_some(TtlMeta {
                    millis: ttl_millis,
                    incremental_cleanup: cleanup as u32,
                }),
            });
        }
        let body_start = head.read;
        let footer = range.len() as u64 * 8 + 16;
        if len < footer {
            return Err(corrupt("missing key-group index".into()));
        }
        let mut index = vec![0u8; footer as usize];
        reader
            .seek(SeekFrom::Start(len - footer))
            .and_then(|_| reader.read_exact(&mut index))
            .map_err(|e| Error::io(format!("cannot read full snapshot {origin}"), e))?;
        if &index[index.len() - 8..] != INDEX_MAGIC {
            return Err(corrupt("missing key-group index".into()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(index[at..at + 8].try_into().expect("8 bytes"));
        let index_at = u64_at(index.len() - 16);
        if index_at != len - footer {
            return Err(corrupt("key-group index at a wrong offset".into()));
        }
        let offsets: Vec<u64> = (0..range.len()).map(|i| u64_at(i * 8)).collect();
        if offsets.first() != Some(&body_start)
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets.last() > Some(&index_at)
        {
            return Err(corrupt("key-group offsets out of order".into()));
        }
        Ok(CanonicalSnapshot {
            reader,
            origin: origin.to_owned(),
            max_parallelism,
            range,
            states,
            offsets,
            index_at,
        })
    }

    /// Visits every entry of `key_group` (which must be in the snapshot's range), with the index
    /// of its state in [`Self::states`]. Reads the key group's bytes only, one entry at a time.
    pub fn scan_key_group(
        &mut self,
        key_group: u16,
        f: &mut dyn FnMut(usize, RawEntry<'_>) -> Result<()>,
    ) -> Result<()> {
        let origin = &self.origin;
        let corrupt = |what: String| {
            Error::corruption(format!(
                "full snapshot {origin}: key group {key_group}: {what}"
            ))
        };
        if !self.range.contains(key_group) {
            return Err(corrupt(format!(
                "not in the snapshot's key groups {}",
                self.range
            )));
        }
        let i = self.range.offset_of(key_group);
        let start = self.offsets[i];
        let end = self.offsets.get(i + 1).copied().unwrap_or(self.index_at);
        self.reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(format!("cannot read full snapshot {origin}"), e))?;
        let mut region = Region {
            inner: std::io::BufReader::with_capacity(64 << 10, &mut self.reader),
            left: end - start,
            read: 0,
        };
        let (mut key, mut namespace, mut user_key, mut value) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        loop {
            let tag = region.byte().map_err(|_| corrupt("truncated".into()))?;
            match tag {
                END_OF_KEY_GROUP if region.left == 0 => return Ok(()),
                ENTRY => {
                    let state = region.varint().map_err(&corrupt)?;
                    let state = usize::try_from(state)
                        .ok()
                        .filter(|&s| s < self.states.len());
                    let state = state.ok_or_else(|| corrupt("entry of an unknown state".into()))?;
                    region.framed(&mut key).map_err(&corrupt)?;
                    region.framed(&mut namespace).map_err(&corrupt)?;
                    region.framed(&mut user_key).map_err(&corrupt)?;
                    region.framed(&mut value).map_err(&corrupt)?;
                    let parts = crate::key_layout::EntryParts {
                        key_group,
                        key: &key,
                        namespace: &namespace,
                        user_key: &user_key,
                    };
                    f(
                        state,
                        RawEntry {
                            parts,
                            value: &value,
                        },
                    )?;
                }
                _ => return Err(corrupt(format!("unexpected tag {tag}"))),
            }
        }
    }
}

/// Inserts the entries of `snapshot` that fall in `engine`'s key-group range into `engine`,
/// registering the snapshot's states first.
pub fn restore_canonical(
    engine: &mut dyn StateBackend,
    snapshot: &mut CanonicalSnapshot,
) -> Result<u64> {
    if snapshot.max_parallelism != engine.max_parallelism() {
        return Err(Error::incompatible_state(format!(
            "the snapshot has max parallelism {}, the backend {}",
            snapshot.max_parallelism,
            engine.max_parallelism()
        )));
    }
    let ids = snapshot
        .states
        .iter()
        .map(|meta| Ok((engine.register_state(meta)?, meta.kind)))
        .collect::<Result<Vec<(StateId, StateKind)>>>()?;
    let Some(overlap) = snapshot.range.intersect(engine.key_group_range()) else {
        return Ok(0);
    };
    let mut key = Vec::new();
    let mut restored = 0;
    for key_group in overlap.iter() {
        snapshot.scan_key_group(key_group, &mut |state, entry| {
            restored += 1;
            let (id, kind) = ids[state];
            put_raw_entry(engine, id, kind, &entry, &mut key)
        })?;
    }
    Ok(restored)
}
