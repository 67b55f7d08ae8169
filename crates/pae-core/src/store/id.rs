//! [`RunId`]: a run's identifier, time-ordered and unique without a
//! coordinator.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::clock::now_ms;

/// The longest id accepted.
const MAX_LEN: usize = 64;

/// A run's identifier. New ids are `r` followed by 12 hex digits of the
/// creation time in milliseconds and 12 random hex digits, so they sort by
/// creation time and never collide in practice across processes. Ids given
/// by users may be any 1–64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A fresh id.
    pub fn generate() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // RandomState is seeded randomly per process; the counter and the
        // pid make ids made in the same millisecond differ.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        hasher.write_u64(now_ms());
        let random = hasher.finish() & 0xffff_ffff_ffff;
        Self(format!(
            "r{:012x}{random:012x}",
            now_ms() & 0xffff_ffff_ffff
        ))
    }

    /// Checks and wraps an id given by a user.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] when it is empty, longer than 64 characters
    /// or holds a character outside `[A-Za-z0-9_.-]`.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidId {
            id: text.chars().take(MAX_LEN + 8).collect(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.len() > MAX_LEN {
            return Err(invalid("it is longer than 64 characters"));
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                "only letters, digits, '_', '-' and '.' are allowed",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RunId {
    type Error = StoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_valid_and_time_ordered() {
        let ids: Vec<RunId> = (0..1000).map(|_| RunId::generate()).collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert_eq!(RunId::parse(id.as_str()).ok().as_ref(), Some(id));
            assert_eq!(id.as_str().len(), 25);
        }
        let later = RunId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let latest = RunId::generate();
        assert!(later.as_str()[..13] < latest.as_str()[..13]);
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(RunId::parse("my-run_1.2").is_ok());
        for bad in ["", "a b", "../x", "é", &"x".repeat(65)] {
            assert!(
                matches!(RunId::parse(bad), Err(StoreError::InvalidId { .. })),
                "{bad:?}"
            );
        }
        let json: Result<RunId, _> = serde_json::from_str("\"a/b\"");
        assert!(json.is_err());
    }
}
