//! The key layout round-trips, and arbitrary bytes decode to typed errors, never to panics.

use keyedstate_core::key_layout::{
    get_varint, list_elements, put_framed, put_key_group, put_varint, split_entry_key,
};
use keyedstate_core::{BincodeCodec, Codec, ErrorKind};
use proptest::prelude::*;

proptest! {
    #[test]
    fn varint_roundtrips(value in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut bytes = Vec::new();
        put_varint(&mut bytes, value);
        bytes.extend_from_slice(&tail);
        let (decoded, rest) = get_varint(&bytes).unwrap();
        prop_assert_eq!(decoded, value);
        prop_assert_eq!(rest, &tail[..]);
    }

    #[test]
    fn entry_key_splits_into_its_parts(
        kg in any::<u16>(),
        key in proptest::collection::vec(any::<u8>(), 0..300),
        ns in proptest::collection::vec(any::<u8>(), 0..20),
        user_key in proptest::collection::vec(any::<u8>(), 0..20),
        two_bytes in any::<bool>(),
    ) {
        let (prefix_len, kg) = if two_bytes { (2, kg) } else { (1, kg % 256) };
        let mut bytes = Vec::new();
        put_key_group(&mut bytes, kg, prefix_len);
        put_framed(&mut bytes, &key);
        put_framed(&mut bytes, &ns);
        bytes.extend_from_slice(&user_key);
        let parts = split_entry_key(&bytes, prefix_len).unwrap();
        prop_assert_eq!(parts.key_group, kg);
        prop_assert_eq!(parts.key, &key[..]);
        prop_assert_eq!(parts.namespace, &ns[..]);
        prop_assert_eq!(parts.user_key, &user_key[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Err(e) = split_entry_key(&bytes, 2) {
            prop_assert_eq!(e.kind(), ErrorKind::Corruption);
        }
        for element in list_elements(&bytes) {
            if let Err(e) = element {
                prop_assert_eq!(e.kind(), ErrorKind::Corruption);
            }
        }
        let codec = BincodeCodec::<Vec<String>>::new();
        if let Err(e) = codec.decode(&bytes) {
            prop_assert_eq!(e.kind(), ErrorKind::Corruption);
        }
    }
}

#[test]
fn a_huge_claimed_length_is_corruption_not_an_allocation() {
    // A vector claiming 2^60 elements in 9 bytes of input.
    let mut bytes = vec![0xfd];
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let err = BincodeCodec::<Vec<u64>>::new().decode(&bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    let err = get_varint(&[0xff; 11]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
}
