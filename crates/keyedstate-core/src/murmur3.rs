//! MurmurHash3 x86_32: the hash that assigns keys to key groups. It is part of the on-disk format
//! (see `docs/formats.md`): changing it would send every stored key to the wrong subtask.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86_32 of `data` with `seed`, as in Austin Appleby's reference implementation.
#[inline]
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    // Keys of 4 and 8 bytes (`u32`, `u64`, `i64`, `f64` keys) hash with a constant length, which
    // the compiler unrolls into straight-line code: half the instructions of the loop below.
    match data.len() {
        4 => murmur3_32_any(&data[..4], seed),
        8 => murmur3_32_any(&data[..8], seed),
        _ => murmur3_32_any(data, seed),
    }
}

#[inline(always)]
fn murmur3_32_any(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= mix_k(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        h ^= mix_k(k);
    }
    // The length is mixed in modulo 2^32, as the reference does with its `int len`.
    h ^= data.len() as u32;
    fmix32(h)
}

fn mix_k(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}
