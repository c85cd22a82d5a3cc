//! One attempt at writing a checkpoint id. Its subtasks' own files go under
//! `chk-<id>/<attempt>/`, a name no other attempt uses: two writers of the same id (a split
//! brain, two jobs given one root) never overwrite each other's files, the one whose `_metadata`
//! lands first keeps a whole checkpoint, and an abort removes only its own attempt's files.

use super::storage::checkpoint_dir;
use crate::error::{Error, Result};

/// Where one attempt at checkpoint `id` writes its subtasks' own (not shared) files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointAttempt {
    id: u64,
    token: String,
}

impl CheckpointAttempt {
    /// A new attempt at checkpoint `id`, with a name of its own.
    pub fn new(id: u64) -> Self {
        CheckpointAttempt {
            id,
            token: Self::new_token(),
        }
    }

    /// A new attempt's name, for [`Self::named`]: the workers of a distributed job draw one
    /// between them (one draws, all use it) so that they write into the same attempt.
    pub fn new_token() -> String {
        // 64 bits: attempts at one id are few; instances get all 128.
        format!("{:016x}", crate::unique::unique_id() as u64)
    }

    /// The attempt at checkpoint `id` named `token` (from [`Self::new_token`], 16 lowercase
    /// hex digits).
    pub fn named(id: u64, token: &str) -> Result<Self> {
        if token.len() != 16
            || !token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::invalid_argument(format!(
                "checkpoint attempt name '{token}' is not 16 lowercase hex digits"
            )));
        }
        Ok(CheckpointAttempt {
            id,
            token: token.to_owned(),
        })
    }

    /// The attempt's name, as [`Self::named`] takes it.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn checkpoint_id(&self) -> u64 {
        self.id
    }

    /// `chk-<id>/<attempt>`, relative to the root.
    pub fn dir(&self) -> String {
        format!("{}/{}", checkpoint_dir(self.id), self.token)
    }

    /// Where subtask `subtask`'s canonical full snapshot goes.
    pub fn full_snapshot_path(&self, subtask: u32) -> String {
        format!("{}/subtask-{subtask}.snapshot", self.dir())
    }

    /// Where a subtask's heap timers beside an incremental snapshot go (a canonical snapshot).
    pub fn heap_timers_path(&self, subtask: u32) -> String {
        format!("{}/subtask-{subtask}.timers", self.dir())
    }

    /// Where a subtask's operator state goes.
    pub fn operator_state_path(&self, subtask: u32) -> String {
        format!("{}/subtask-{subtask}.operator", self.dir())
    }

    /// Where a subtask's own file `name` of a native (RocksDB) snapshot goes: its MANIFEST,
    /// CURRENT and OPTIONS, which every checkpoint uploads anew.
    pub fn native_file_path(&self, subtask: u32, name: &str) -> String {
        format!("{}/subtask-{subtask}/{name}", self.dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_attempts_at_one_id_write_to_different_directories() {
        let (a, b) = (CheckpointAttempt::new(7), CheckpointAttempt::new(7));
        assert_ne!(a.dir(), b.dir());
        assert!(a.dir().starts_with("chk-7/"), "{}", a.dir());
        let named = CheckpointAttempt::named(7, a.token()).unwrap();
        assert_eq!(named, a);
        assert!(CheckpointAttempt::named(7, "../../shared/x").is_err());
        assert_eq!(
            a.full_snapshot_path(2),
            format!("{}/subtask-2.snapshot", a.dir())
        );
    }
}
