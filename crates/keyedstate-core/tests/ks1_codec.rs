//! `ks1` round-trips every serde shape it supports, orders numbers by their bytes, and decodes
//! arbitrary bytes to typed errors: never a panic, never an allocation beyond the input.

use keyedstate_core::codec::{decode, encode};
use keyedstate_core::{Codec, ErrorKind, StateCodec};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Newtype(i16),
    Tuple(u8, String),
    Struct { x: f32, tags: Vec<bool> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    id: u64,
    at: i64,
    name: String,
    score: Option<f64>,
    shapes: Vec<Shape>,
    counts: BTreeMap<String, u32>,
    flag: bool,
    c: char,
    big: (u128, i128),
    unit: (),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Unit),
        any::<i16>().prop_map(Shape::Newtype),
        (any::<u8>(), ".{0,8}").prop_map(|(a, b)| Shape::Tuple(a, b)),
        (any::<f32>(), proptest::collection::vec(any::<bool>(), 0..4))
            .prop_filter("NaN is not equal to itself", |(x, _)| !x.is_nan())
            .prop_map(|(x, tags)| Shape::Struct { x, tags }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        (any::<u64>(), any::<i64>(), ".{0,12}"),
        proptest::option::of(any::<f64>().prop_filter("NaN", |f| !f.is_nan())),
        proptest::collection::vec(shape(), 0..4),
        proptest::collection::btree_map(".{0,6}", any::<u32>(), 0..4),
        (any::<bool>(), any::<char>(), any::<u128>(), any::<i128>()),
    )
        .prop_map(
            |((id, at, name), score, shapes, counts, (flag, c, a, b))| Event {
                id,
                at,
                name,
                score,
                shapes,
                counts,
                flag,
                c,
                big: (a, b),
                unit: (),
            },
        )
}

fn bytes_of<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out).unwrap();
    out
}

proptest! {
    #[test]
    fn values_roundtrip(value in event()) {
        let bytes = bytes_of(&value);
        prop_assert_eq!(decode::<Event>(&bytes).unwrap(), value);
    }

    #[test]
    fn integer_bytes_order_as_the_numbers(a in any::<i64>(), b in any::<i64>(), c in any::<u32>(), d in any::<u32>()) {
        prop_assert_eq!(bytes_of(&a).cmp(&bytes_of(&b)), a.cmp(&b));
        prop_assert_eq!(bytes_of(&c).cmp(&bytes_of(&d)), c.cmp(&d));
    }

    #[test]
    fn float_bytes_order_as_the_numbers(a in any::<f64>(), b in any::<f64>()) {
        prop_assert_eq!(bytes_of(&a).cmp(&bytes_of(&b)), a.total_cmp(&b));
        prop_assert_eq!(decode::<f64>(&bytes_of(&a)).unwrap().to_bits(), a.to_bits());
    }

    #[test]
    fn arbitrary_bytes_decode_to_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        for result in [
            decode::<Event>(&bytes).map(drop),
            decode::<Vec<String>>(&bytes).map(drop),
            decode::<BTreeMap<u64, Vec<u8>>>(&bytes).map(drop),
            decode::<Option<(char, bool, Shape)>>(&bytes).map(drop),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.kind(), ErrorKind::Corruption);
            }
        }
    }

    #[test]
    fn a_value_with_bytes_cut_off_or_added_is_corruption(value in event(), cut in 1usize..8) {
        let bytes = bytes_of(&value);
        let short = &bytes[..bytes.len().saturating_sub(cut)];
        prop_assert_eq!(decode::<Event>(short).unwrap_err().kind(), ErrorKind::Corruption);
        let mut long = bytes.clone();
        long.push(0);
        prop_assert_eq!(decode::<Event>(&long).unwrap_err().kind(), ErrorKind::Corruption);
    }
}

#[test]
fn a_huge_claimed_length_is_corruption_not_an_allocation() {
    // A vector claiming 2^60 elements in 10 bytes of input.
    let mut bytes = Vec::new();
    keyedstate_core::key_layout::put_varint(&mut bytes, 1 << 60);
    let err = decode::<Vec<u64>>(&bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    let err = decode::<String>(&bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
}

#[test]
fn sequences_of_unknown_length_are_refused_with_a_clear_error() {
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            s.serialize_seq(None)?.end()
        }
    }
    let err = encode(&Unsized, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("unknown length"), "{err}");
}

#[test]
fn self_describing_types_are_refused_on_decode() {
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        A(u64),
    }
    let bytes = bytes_of(&Untagged::A(1));
    let err = decode::<Untagged>(&bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(err.to_string().contains("self-describing"), "{err}");
    assert!(StateCodec::<Untagged>::new().id().ends_with('…'));
}
