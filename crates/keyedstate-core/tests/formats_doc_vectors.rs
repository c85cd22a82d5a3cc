//! The test vectors and examples in `docs/formats.md` are what the code computes.

use keyedstate_core::MaxParallelism;
use keyedstate_core::key_layout::{put_framed, put_key_group};
use keyedstate_core::murmur3_32;

fn formats_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/formats.md");
    std::fs::read_to_string(path).expect("docs/formats.md is readable")
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn key_group_hash_matches_the_documented_vectors() {
    let doc = formats_doc();
    let rows: Vec<Vec<String>> = doc
        .lines()
        .map(cells)
        .filter(|c| c.len() == 6 && c[1].starts_with("0x"))
        .collect();
    assert!(rows.len() >= 10, "the vector table was found");
    for row in rows {
        let input = if row[0] == "-" {
            Vec::new()
        } else {
            hex(&row[0])
        };
        let hash = u32::from_str_radix(row[1].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(murmur3_32(&input, 0), hash, "murmur3 of {}", row[0]);
        for (column, max_p) in [(2, 128), (3, 129), (4, 32_768)] {
            let max_p = MaxParallelism::new(max_p).unwrap();
            let expected: u16 = row[column].parse().unwrap();
            assert_eq!(
                max_p.key_group_of(&input),
                expected,
                "key group of {} at {max_p}",
                row[0]
            );
        }
    }
}

/// Builds an entry key from its parts the way `docs/formats.md` describes.
fn entry_key(max_p: u32, key: &[u8], namespace: &[u8], user_key: &[u8]) -> Vec<u8> {
    let max_p = MaxParallelism::new(max_p).unwrap();
    let mut out = Vec::new();
    put_key_group(&mut out, max_p.key_group_of(key), max_p.prefix_len());
    put_framed(&mut out, key);
    put_framed(&mut out, namespace);
    out.extend_from_slice(user_key);
    out
}

#[test]
fn entry_key_examples_match_the_layout() {
    let doc = formats_doc();
    let documented: Vec<Vec<u8>> = doc
        .lines()
        .map(cells)
        .filter(|c| c.len() == 4 && c[0].parse::<u32>().is_ok())
        .map(|c| hex(&c[3]))
        .collect();
    let computed = vec![
        entry_key(128, &[0x2a], &[], &[]),
        entry_key(129, &[0x2a], &[], &[]),
        entry_key(128, &[0x2a], &[], &[0x01, b'a']),
        entry_key(128, b"\x05alice", &[], &[]),
        entry_key(128, &[0x07], &[0x03], &[]),
    ];
    assert_eq!(documented, computed);
}

#[test]
fn bincode_examples_match_the_documented_bytes() {
    let encode = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        f(&mut out);
        out
    };
    use keyedstate_core::codec::bincode_encode;
    assert_eq!(encode(&|o| bincode_encode(&0u64, o).unwrap()), hex("00"));
    assert_eq!(encode(&|o| bincode_encode(&42u64, o).unwrap()), hex("2a"));
    assert_eq!(
        encode(&|o| bincode_encode(&1000u64, o).unwrap()),
        hex("fbe803")
    );
    assert_eq!(
        encode(&|o| bincode_encode("alice", o).unwrap()),
        hex("05616c696365")
    );
    assert_eq!(
        encode(&|o| bincode_encode(&(), o).unwrap()),
        Vec::<u8>::new()
    );
    let doc = formats_doc();
    for example in [
        "`42u64` → `2a`",
        "`1000u64` → `fb e8 03`",
        "`\"alice\"` → `05 61 6c 69 63 65`",
    ] {
        assert!(doc.contains(example), "docs/formats.md states {example}");
    }
}
