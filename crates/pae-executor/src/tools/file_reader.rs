//! [`FileReader`]: reads text files under one root directory and refuses
//! every path that would leave it.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use pae_core::{Tool, ToolError};
use serde_json::{Value, json};

/// The default most bytes returned from one file.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024;

/// Reads UTF-8 text files inside a root directory.
///
/// The model gives a path relative to the root (quotes or backticks around
/// it are dropped; `\` separates directories too). The tool refuses, with
/// [`ToolError::Refused`]:
/// - absolute paths (`/etc/passwd`, `C:\...`, `\\server\share`,
///   `file:///...`), paths with a `..` component (with `/` or `\`) and
///   paths with a NUL byte, before touching the file system;
/// - paths that resolve outside the root through a symbolic link (the path
///   is canonicalised and must still start with the canonical root);
/// - anything that is neither a regular file nor a directory (a FIFO or a
///   device would block or never end).
///
/// Hard links to files outside the root cannot be told from files inside
/// it, and a path swapped for a link between the check and the read is
/// not caught: give the tool a root that untrusted parties cannot write.
///
/// Files longer than the size limit are cut, with a note saying so; a
/// directory is answered with a listing of its entries; files that are
/// not UTF-8 are an error. Reads are blocking `std::fs` calls, bounded by the
/// size limit.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("pae-doc-fr-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # std::fs::write(dir.join("notes.txt"), "hello").unwrap();
/// use pae_core::Tool;
/// use pae_executor::tools::FileReader;
/// use serde_json::json;
///
/// let reader = FileReader::new(&dir).unwrap();
/// let text = futures::executor::block_on(reader.call(json!({"path": "notes.txt"}))).unwrap();
/// assert_eq!(text, "hello");
/// let refused = futures::executor::block_on(reader.call(json!({"path": "../x"}))).unwrap_err();
/// assert!(refused.to_string().starts_with("refused:"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileReader {
    root: PathBuf,
    max_bytes: u64,
}

impl FileReader {
    /// A reader confined to `root`, which must be an existing directory.
    ///
    /// # Errors
    /// The I/O error of canonicalising `root`, or
    /// [`std::io::ErrorKind::NotADirectory`] when it is not a directory.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            root,
            max_bytes: DEFAULT_MAX_BYTES,
        })
    }

    /// Sets the most bytes returned from one file (default
    /// [`DEFAULT_MAX_BYTES`]).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a path given by the model to a canonical path inside the
    /// root.
    ///
    /// # Errors
    /// [`ToolError::Refused`] for paths that leave the root,
    /// [`ToolError::InvalidInput`] for empty paths, [`ToolError::Failed`]
    /// when the file does not exist.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, ToolError> {
        let requested = unquote(requested.trim()).trim();
        if requested.is_empty() {
            return Err(ToolError::invalid_input("the path is empty"));
        }
        if requested.contains('\0') {
            return Err(ToolError::refused("the path contains a NUL byte"));
        }
        let path = Path::new(requested);
        // `Path::is_absolute` is platform-specific; refuse every rooted form
        // (`/x`, `\x`, `C:x`, `file:///x`) on every platform.
        let looks_rooted = requested.starts_with(['/', '\\'])
            || requested.as_bytes().get(1) == Some(&b':')
            || requested
                .get(..5)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:"));
        if path.is_absolute() || looks_rooted || path.has_root() {
            return Err(ToolError::refused(format!(
                "{requested:?} is an absolute path; give a path relative to the root directory"
            )));
        }
        for component in path.components() {
            match component {
                Component::ParentDir => {
                    return Err(ToolError::refused(format!(
                        "{requested:?} contains \"..\"; paths may not leave the root directory"
                    )));
                }
                Component::Prefix(_) | Component::RootDir => {
                    return Err(ToolError::refused(format!(
                        "{requested:?} is an absolute path; give a path relative to the root directory"
                    )));
                }
                Component::CurDir | Component::Normal(_) => {}
            }
        }
        if requested.split(['/', '\\']).any(|part| part == "..") {
            return Err(ToolError::refused(format!(
                "{requested:?} contains \"..\"; paths may not leave the root directory"
            )));
        }
        let mut found = std::fs::canonicalize(self.root.join(path));
        // "sub\\file.txt" written with Windows separators, where they are
        // not separators.
        if std::path::MAIN_SEPARATOR == '/'
            && requested.contains('\\')
            && found
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            found = std::fs::canonicalize(self.root.join(requested.replace('\\', "/")));
        }
        let canonical = found.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                ToolError::failed(format!("{requested:?} does not exist"))
            }
            _ => ToolError::failed(format!("{requested:?} cannot be opened: {e}")),
        })?;
        if !canonical.starts_with(&self.root) {
            return Err(ToolError::refused(format!(
                "{requested:?} leads outside the root directory (through a symbolic link)"
            )));
        }
        Ok(canonical)
    }

    /// Reads a file (or lists a directory) inside the root.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve), plus [`ToolError::Failed`] for files
    /// that cannot be read or are not UTF-8 text.
    pub fn read(&self, requested: &str) -> Result<String, ToolError> {
        let path = self.resolve(requested)?;
        let requested = unquote(requested.trim()).trim();
        let kind = std::fs::metadata(&path)
            .map_err(|e| ToolError::failed(format!("{requested:?} cannot be opened: {e}")))?
            .file_type();
        if kind.is_dir() {
            return self.list(&path, requested);
        }
        if !kind.is_file() {
            // A FIFO or device would block or never end.
            return Err(ToolError::refused(format!(
                "{requested:?} is not a regular file"
            )));
        }
        let file = std::fs::File::open(&path)
            .map_err(|e| ToolError::failed(format!("{requested:?} cannot be opened: {e}")))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut bytes = Vec::new();
        file.take(self.max_bytes)
            .read_to_end(&mut bytes)
            .map_err(|e| ToolError::failed(format!("{requested:?} cannot be read: {e}")))?;
        let cut = total > self.max_bytes;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) if cut && e.utf8_error().error_len().is_none() => {
                // The limit fell inside a multi-byte character.
                let valid = e.utf8_error().valid_up_to();
                let mut bytes = e.into_bytes();
                bytes.truncate(valid);
                String::from_utf8(bytes).unwrap_or_default()
            }
            Err(_) => {
                return Err(ToolError::failed(format!(
                    "{requested:?} is not a text file (it is not valid UTF-8)"
                )));
            }
        };
        if cut {
            return Ok(format!(
                "{text}\n[... cut: the file has {total} bytes, the first {} are shown]",
                self.max_bytes
            ));
        }
        Ok(text)
    }

    fn list(&self, dir: &Path, requested: &str) -> Result<String, ToolError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ToolError::failed(format!("{requested:?} cannot be listed: {e}")))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|entry| {
                let mut name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    name.push('/');
                }
                name
            })
            .collect();
        names.sort();
        let shown = names.len().min(100);
        let more = if names.len() > shown {
            format!(" (and {} more)", names.len() - shown)
        } else {
            String::new()
        };
        Ok(format!(
            "{requested:?} is a directory; its entries: {}{more}",
            names[..shown].join(", ")
        ))
    }
}

/// The text inside one pair of matching quotes or backticks around all of
/// it (models quote paths), or the text itself.
fn unquote(text: &str) -> &str {
    ['"', '\'', '`']
        .iter()
        .find_map(|q| text.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(text)
}

#[async_trait]
impl Tool for FileReader {
    fn name(&self) -> &str {
        "read_file"
    }

    fn description(&self) -> &str {
        "Reads a UTF-8 text file. The path is relative to the working directory; absolute paths \
and \"..\" are refused."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "The file's path relative to the working directory, for example \"notes/todo.txt\".",
                    "minLength": 1
                }
            },
            "required": ["path"],
            "additionalProperties": false
        })
    }

    async fn call(&self, input: Value) -> Result<String, ToolError> {
        let path = match &input {
            Value::String(s) => s.as_str(),
            other => other
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| ToolError::invalid_input("expected {\"path\": \"...\"}"))?,
        };
        self.read(path)
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn is_idempotent(&self) -> bool {
        true
    }
}
