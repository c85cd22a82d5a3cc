//! `_metadata` documents, their checksum valid: see `keyedstate_testkit::fuzz::metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyedstate_testkit::fuzz::metadata(data);
});
