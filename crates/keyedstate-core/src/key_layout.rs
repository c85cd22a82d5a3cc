//! The bytes of a state entry's key, shared by every engine (see `docs/formats.md`):
//! `[key group, big-endian, 1 or 2 bytes][varint len][key][varint len][namespace]`, then the
//! map user key for map state. The length prefixes make key and namespace self-delimiting, so a
//! prefix scan of `[kg][len][key]` finds exactly that key's entries.
//!
//! List values are a concatenation of `[varint len][element]` frames, so appending elements is
//! concatenation and the RocksDB merge operator needs no delimiter logic.

use crate::error::{Error, Result};

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned LEB128 varint at the start of `bytes`; returns it and the bytes after it.
/// A one-byte varint (a length below 128: every frame of a small list element) is read
/// inline, longer ones by a call.
#[inline]
pub fn get_varint(bytes: &[u8]) -> Result<(u64, &[u8])> {
    match bytes.split_first() {
        Some((&b, rest)) if b < 0x80 => Ok((u64::from(b), rest)),
        _ => get_long_varint(bytes),
    }
}

fn get_long_varint(bytes: &[u8]) -> Result<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(Error::corruption("truncated or over-long varint"))
}

/// Appends `bytes` with its length prefix.
#[inline]
pub fn put_framed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads one length-prefixed frame; returns it and the bytes after it.
#[inline]
pub fn get_framed(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let (len, rest) = get_varint(bytes)?;
    match usize::try_from(len) {
        Ok(len) if len <= rest.len() => Ok(rest.split_at(len)),
        _ => Err(frame_too_long(len, rest.len())),
    }
}

#[cold]
fn frame_too_long(len: u64, remaining: usize) -> Error {
    Error::corruption(format!("frame of {len} bytes but only {remaining} remain"))
}

/// Appends the big-endian key-group prefix of `prefix_len` (1 or 2) bytes.
pub fn put_key_group(out: &mut Vec<u8>, key_group: u16, prefix_len: usize) {
    if prefix_len == 1 {
        out.push(key_group as u8);
    } else {
        out.extend_from_slice(&key_group.to_be_bytes());
    }
}

/// Reads the key-group prefix of `prefix_len` bytes.
pub fn get_key_group(bytes: &[u8], prefix_len: usize) -> Result<(u16, &[u8])> {
    if bytes.len() < prefix_len {
        return Err(Error::corruption(
            "entry key shorter than its key-group prefix",
        ));
    }
    let key_group = if prefix_len == 1 {
        u16::from(bytes[0])
    } else {
        u16::from_be_bytes([bytes[0], bytes[1]])
    };
    Ok((key_group, &bytes[prefix_len..]))
}

/// A state entry's key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryParts<'a> {
    pub key_group: u16,
    pub key: &'a [u8],
    pub namespace: &'a [u8],
    /// The map user key; empty for other kinds.
    pub user_key: &'a [u8],
}

/// Splits a full entry key (with key-group prefix) into its parts.
pub fn split_entry_key(bytes: &[u8], prefix_len: usize) -> Result<EntryParts<'_>> {
    let (key_group, rest) = get_key_group(bytes, prefix_len)?;
    let (key, rest) = get_framed(rest)?;
    let (namespace, user_key) = get_framed(rest)?;
    Ok(EntryParts {
        key_group,
        key,
        namespace,
        user_key,
    })
}

/// Appends the entry key of `parts` (with the map user key when `with_user_key`): the inverse of
/// [`split_entry_key`].
pub fn put_entry_key(
    out: &mut Vec<u8>,
    parts: &EntryParts<'_>,
    prefix_len: usize,
    with_user_key: bool,
) {
    put_key_group(out, parts.key_group, prefix_len);
    put_framed(out, parts.key);
    put_framed(out, parts.namespace);
    if with_user_key {
        out.extend_from_slice(parts.user_key);
    }
}

/// Iterates the elements of a list value.
#[inline]
pub fn list_elements(mut bytes: &[u8]) -> impl Iterator<Item = Result<&[u8]>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        match get_framed(bytes) {
            Ok((element, rest)) => {
                bytes = rest;
                Some(Ok(element))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(e.context("list value")))
            }
        }
    })
}
