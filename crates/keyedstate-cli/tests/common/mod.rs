//! Running the `keyedstate` binary from the CLI's tests.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn keyedstate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyedstate"))
        .args(args)
        .output()
        .expect("keyedstate runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
