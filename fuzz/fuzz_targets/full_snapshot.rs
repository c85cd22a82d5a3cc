//! Edited full snapshots, their key-group index valid: see
//! `keyedstate_testkit::fuzz::full_snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyedstate_testkit::fuzz::full_snapshot(data);
});
