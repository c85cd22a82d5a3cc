//! The test vectors and examples in `docs/formats.md` are what the code computes.

use keyedstate_core::MaxParallelism;
use keyedstate_core::codec;
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
    let ks1 = |v: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        v(&mut out);
        out
    };
    let k42 = ks1(&|o| codec::encode(&42u64, o).unwrap());
    let computed = vec![
        entry_key(128, &k42, &[], &[]),
        entry_key(129, &k42, &[], &[]),
        entry_key(128, &k42, &[], &ks1(&|o| codec::encode("a", o).unwrap())),
        entry_key(128, &ks1(&|o| codec::encode("alice", o).unwrap()), &[], &[]),
        entry_key(
            128,
            &ks1(&|o| codec::encode(&7u64, o).unwrap()),
            &ks1(&|o| codec::encode(&3u64, o).unwrap()),
            &[],
        ),
    ];
    assert_eq!(documented, computed);
}

#[test]
fn ks1_examples_match_the_documented_bytes() {
    fn bytes<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode(value, &mut out).unwrap();
        out
    }
    let doc = formats_doc();
    let examples: Vec<(Vec<u8>, &str)> = vec![
        (bytes(&0u64), "`0u64` → `00 00 00 00 00 00 00 00`"),
        (bytes(&42u64), "`42u64` → `00 00 00 00 00 00 00 2a`"),
        (bytes(&1i64), "`1i64` → `80 00 00 00 00 00 00 01`"),
        (bytes(&-1i64), "`-1i64` → `7f ff ff ff ff ff ff ff`"),
        (bytes(&1.0f64), "`1.0f64` → `bf f0 00 00 00 00 00 00`"),
        (bytes(&-1.0f64), "`-1.0f64` → `40 0f ff ff ff ff ff ff`"),
        (bytes("alice"), "`\"alice\"` → `05 61 6c 69 63 65`"),
        (bytes(&Some(7u8)), "`Some(7u8)` → `01 07`"),
    ];
    for (computed, example) in examples {
        let flat = doc.replace('\n', " ");
        assert!(flat.contains(example), "docs/formats.md states {example}");
        let documented = example.rsplit('`').nth(1).unwrap();
        assert_eq!(computed, hex(documented), "{example}");
    }
    assert!(bytes(&()).is_empty());
}

#[test]
fn codec_id_examples_match_the_documented_shapes() {
    use keyedstate_core::{Codec, StateCodec};
    let doc = formats_doc().replace('\n', " ");
    for (id, example) in [
        (
            StateCodec::<u64>::new().id().to_owned(),
            "`u64` → `ks1:u64`",
        ),
        (
            StateCodec::<(u64, String)>::new().id().to_owned(),
            "`(u64, String)` → `ks1:(u64,string)`",
        ),
        (
            StateCodec::<Vec<u8>>::new().id().to_owned(),
            "`Vec<u8>` → `ks1:seq<u8>`",
        ),
    ] {
        assert!(doc.contains(example), "docs/formats.md states {example}");
        assert!(example.ends_with(&format!("`{id}`")), "{id} in {example}");
    }
}
