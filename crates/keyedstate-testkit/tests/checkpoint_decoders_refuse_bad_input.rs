//! The `_metadata` and full-snapshot decoders on edited valid files, their checksum and index
//! kept valid so that the edits reach the document and body parsers: `Corruption` or a checked
//! result, never a panic. (The coverage-guided version of the same harnesses: `fuzz/`.)

use keyedstate_testkit::fuzz;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn edited_metadata_is_refused_or_valid_never_a_panic(
        version in any::<u8>(),
        edits in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let mut data = vec![version];
        data.extend(fuzz::edited(&fuzz::base_metadata_json(), &edits));
        fuzz::metadata(&data);
    }

    #[test]
    fn edited_full_snapshots_are_refused_or_read_never_a_panic(
        data in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        fuzz::full_snapshot(&data);
    }
}

#[test]
fn the_unedited_bases_decode() {
    let mut data = vec![1];
    data.extend(fuzz::base_metadata_json().into_bytes());
    assert!(fuzz::metadata(&data));
    for pick in 0..=255 {
        assert!(fuzz::full_snapshot(&[pick]), "base {pick}");
    }
}

/// The edits reach past the frames: some edited inputs still decode (a flipped value byte), so
/// the parsers behind the checks run.
#[test]
fn some_edited_inputs_still_decode() {
    // Base 0, one byte flipped at each position in turn: the header's bytes break the parse,
    // the entries' do not.
    let decoded = (0..=255u8)
        .filter(|&at| fuzz::full_snapshot(&[0, at, 0, 0, 0xff]))
        .count();
    assert!(decoded > 0 && decoded < 256, "{decoded} of 256");
}
