//! A prompt cache on disk: the keys and values of prompts read before, so a
//! new process does not read a long system prompt again. Each entry is a
//! llama.cpp sequence-state file (the keys and values with their tokens)
//! and a small file of its tokens, for choosing the entry that shares the
//! longest prefix with a new prompt without loading every state.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

/// Entries kept per directory; the oldest go first.
const MAX_ENTRIES: usize = 24;

/// Prompts that share fewer tokens than this with every entry are read
/// as usual (loading a state costs more than reading a few tokens).
pub(crate) const MIN_SHARED_TOKENS: usize = 48;

/// Prompts that needed fewer new tokens than this are not stored.
pub(crate) const MIN_NEW_TOKENS: usize = 64;

/// Where one model's prompt states are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// The cache for the model file at `model` under `root`: a directory
    /// per model file (by name and size), so no state is read into another
    /// model.
    pub(crate) fn new(root: &Path, model: &Path) -> Self {
        let name = model
            .file_name()
            .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
        let size = fs::metadata(model).map_or(0, |m| m.len());
        Self {
            dir: root.join(format!("{name}-{size}")),
        }
    }

    /// The entry sharing the longest prefix with `tokens` (at least
    /// [`MIN_SHARED_TOKENS`]), and how many tokens it shares.
    pub(crate) fn best_match(&self, tokens: &[LlamaToken]) -> Option<(PathBuf, usize)> {
        let entries = fs::read_dir(&self.dir).ok()?;
        let mut best: Option<(PathBuf, usize)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "tokens") {
                continue;
            }
            let Some(stored) = read_tokens(&path) else {
                continue;
            };
            let shared = stored
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count();
            if shared >= MIN_SHARED_TOKENS && best.as_ref().is_none_or(|(_, n)| shared > *n) {
                best = Some((path.with_extension("state"), shared));
            }
        }
        best
    }

    /// Loads the state at `path` into sequence 0 of `context`; its tokens.
    /// `None` (and nothing to undo beyond clearing the cache) when the file
    /// cannot be read into this context.
    pub(crate) fn load(
        &self,
        context: &mut LlamaContext<'_>,
        path: &Path,
        max_tokens: usize,
    ) -> Option<Vec<LlamaToken>> {
        let loaded = context.state_seq_load_file(path, 0, max_tokens).ok();
        if let Some((tokens, _)) = &loaded {
            // Touch it: the least recently used entries go first.
            let _ = fs::File::options()
                .append(true)
                .open(path)
                .and_then(|f| f.set_modified(SystemTime::now()));
            return Some(tokens.clone());
        }
        None
    }

    /// Stores the state of sequence 0 of `context`, which holds `tokens`.
    /// Failures are ignored: the cache only saves time.
    pub(crate) fn save(&self, context: &LlamaContext<'_>, tokens: &[LlamaToken]) {
        if fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let name = format!("{:016x}", fnv1a(tokens));
        let state = self.dir.join(format!("{name}.state"));
        let token_file = self.dir.join(format!("{name}.tokens"));
        if state.exists() && token_file.exists() {
            return;
        }
        // Written beside and renamed into place, so a reader never sees
        // half a file.
        let partial = self
            .dir
            .join(format!(".{name}.{}.partial", std::process::id()));
        if context.state_seq_save_file(&partial, 0, tokens).is_err()
            || fs::rename(&partial, &state).is_err()
        {
            let _ = fs::remove_file(&partial);
            return;
        }
        let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.0.to_le_bytes()).collect();
        let written = fs::File::create(&partial)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&partial, &token_file));
        if written.is_err() {
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_file(&state);
            return;
        }
        self.prune();
    }

    /// Removes the oldest entries beyond [`MAX_ENTRIES`].
    fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut states: Vec<(SystemTime, PathBuf)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "state"))
            .map(|p| {
                let time = fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (time, p)
            })
            .collect();
        if states.len() <= MAX_ENTRIES {
            return;
        }
        states.sort();
        for (_, path) in &states[..states.len() - MAX_ENTRIES] {
            let _ = fs::remove_file(path.with_extension("tokens"));
            let _ = fs::remove_file(path);
        }
    }
}

fn read_tokens(path: &Path) -> Option<Vec<LlamaToken>> {
    let bytes = fs::read(path).ok()?;
    (bytes.len() % 4 == 0).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| LlamaToken(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    })
}

/// FNV-1a over the tokens: a name that stays the same across builds.
fn fnv1a(tokens: &[LlamaToken]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for token in tokens {
        for byte in token.0.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_matched_by_their_longest_shared_prefix() {
        let root = std::env::temp_dir().join(format!("pae-disk-cache-{}", std::process::id()));
        let cache = DiskCache::new(&root, Path::new("/nowhere/model.gguf"));
        fs::create_dir_all(&cache.dir).unwrap();
        let write = |name: &str, tokens: &[i32]| {
            let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
            fs::write(cache.dir.join(format!("{name}.tokens")), bytes).unwrap();
        };
        let long: Vec<i32> = (0..100).collect();
        let mut other = long.clone();
        other[70] = -1;
        write("a", &long[..60]);
        write("b", &other);
        let prompt: Vec<LlamaToken> = long.iter().map(|t| LlamaToken(*t)).collect();
        let (path, shared) = cache.best_match(&prompt).unwrap();
        assert_eq!(shared, 70);
        assert_eq!(path, cache.dir.join("b.state"));
        assert!(cache.best_match(&prompt[..20]).is_none());
        fs::remove_dir_all(&root).unwrap();
        assert_ne!(fnv1a(&prompt[..2]), fnv1a(&prompt[..3]));
    }
}
