//! [`FileReader`]: reads text files under one root directory and refuses
//! every path that would leave it.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cap_fs_ext::OpenOptionsSyncExt;
use cap_std::fs::{Dir, OpenOptions};
use pae_core::{Tool, ToolError};
use serde_json::{Value, json};

use super::table;

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
/// - paths that lead outside the root through a symbolic link, with the
///   same words whether or not anything exists where the link leads;
/// - anything that is neither a regular file nor a directory (a FIFO or a
///   device would block or never end).
///
/// Files are opened beneath a handle of the root directory, never by path:
/// on Linux with `openat2(RESOLVE_BENEATH)`, elsewhere one component at a
/// time (the [`cap_std`] crate), so a symbolic link or a directory swapped
/// in while the tool reads cannot lead it out of the root. A link with an
/// absolute target inside the root is followed (that path is opened beneath
/// the root in turn). The file is opened without blocking, and what was
/// opened is checked, not the path: a FIFO swapped in is refused, not
/// waited on. Hard links to files outside the root cannot be told from
/// files inside it: give the tool a root that untrusted parties cannot
/// write.
///
/// Files longer than the size limit are cut, with a note saying so (also
/// files that report no size, as `/proc` files do); a directory is answered
/// with a listing of its entries; files that are not UTF-8 are an error.
/// Reads are blocking calls, bounded by the size limit.
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
    dir: Arc<Dir>,
    max_bytes: u64,
}

/// A file or directory opened beneath the root.
struct Opened {
    file: std::fs::File,
    /// The path beneath the root that was opened.
    inside: PathBuf,
}

impl FileReader {
    /// A reader confined to `root`, which must be an existing directory.
    ///
    /// # Errors
    /// The I/O error of canonicalising or opening `root`, or
    /// [`std::io::ErrorKind::NotADirectory`] when it is not a directory.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
        Ok(Self {
            root,
            dir: Arc::new(dir),
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
    /// root, refusing it as [`read`](Self::read) would.
    ///
    /// [`read`](Self::read) does not use this path: it opens the file
    /// beneath a handle of the root. The path returned is for display; by
    /// the time it is used, the file system may have changed.
    ///
    /// # Errors
    /// [`ToolError::Refused`] for paths that leave the root,
    /// [`ToolError::InvalidInput`] for empty paths, [`ToolError::Failed`]
    /// when the file does not exist or cannot be opened.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, ToolError> {
        let (requested, opened) = self.open(requested)?;
        let canonical = std::fs::canonicalize(self.root.join(&opened.inside))
            .map_err(|e| open_error(requested, &e))?;
        if !canonical.starts_with(&self.root) {
            return Err(leads_outside(requested));
        }
        Ok(canonical)
    }

    /// Reads a file (or lists a directory) inside the root.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve), plus [`ToolError::Failed`] for files
    /// that cannot be read or are not UTF-8 text.
    pub fn read(&self, requested: &str) -> Result<String, ToolError> {
        let (requested, Opened { file, .. }) = self.open(requested)?;
        // The handle is checked, not the path: it is what will be read.
        let meta = file
            .metadata()
            .map_err(|e| ToolError::failed(format!("{requested:?} cannot be opened: {e}")))?;
        if meta.is_dir() {
            return list(Dir::from_std_file(file), requested);
        }
        if !meta.is_file() {
            // A FIFO or device would block or never end.
            return Err(ToolError::refused(format!(
                "{requested:?} is not a regular file"
            )));
        }
        // One byte past the limit tells whether there is more, whatever
        // size the file reports (`/proc` files report 0).
        let mut bytes = Vec::new();
        file.take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| ToolError::failed(format!("{requested:?} cannot be read: {e}")))?;
        let cut = !u64::try_from(bytes.len()).is_ok_and(|len| len <= self.max_bytes);
        if cut {
            bytes.truncate(usize::try_from(self.max_bytes).unwrap_or(usize::MAX));
        }
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
            let total = meta.len();
            let size = if total > self.max_bytes {
                format!("{total} bytes")
            } else {
                format!("more than {} bytes", self.max_bytes)
            };
            return Ok(format!(
                "{text}\n[... cut: the file has {size}, the first {} are shown]",
                self.max_bytes
            ));
        }
        Ok(text)
    }

    /// Checks the path as the model wrote it and opens it beneath the root;
    /// returns the path as written (for messages) and the open handle.
    fn open<'a>(&self, requested: &'a str) -> Result<(&'a str, Opened), ToolError> {
        let requested = unquote(requested.trim()).trim();
        let path = checked(requested)?;
        let mut opened = self.open_inside(path);
        // "sub\\file.txt" written with Windows separators, where they are
        // not separators.
        if std::path::MAIN_SEPARATOR == '/'
            && requested.contains('\\')
            && opened
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            opened = self.open_inside(Path::new(&requested.replace('\\', "/")));
        }
        opened
            .map(|opened| (requested, opened))
            .map_err(|e| open_error(requested, &e))
    }

    /// Opens `path` beneath the root. A symbolic link with an absolute
    /// target is an escape to `openat2`; when its target is inside the
    /// root, that target is opened beneath the root in turn, so a swap in
    /// between still cannot lead out.
    fn open_inside(&self, path: &Path) -> std::io::Result<Opened> {
        match self.open_beneath(path) {
            Err(e) if is_escape(&e) => {
                let Some(inside) = std::fs::canonicalize(self.root.join(path))
                    .ok()
                    .and_then(|c| c.strip_prefix(&self.root).ok().map(Path::to_path_buf))
                else {
                    // Outside the root, or nowhere: the same answer, so
                    // that it says nothing about what exists outside.
                    return Err(e);
                };
                let inside = if inside.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    inside
                };
                let file = self.open_beneath(&inside)?;
                Ok(Opened { file, inside })
            }
            opened => opened.map(|file| Opened {
                file,
                inside: path.to_path_buf(),
            }),
        }
    }

    /// Opens `path` for reading beneath the root handle without blocking
    /// (a FIFO opens at once and is refused after).
    fn open_beneath(&self, path: &Path) -> std::io::Result<std::fs::File> {
        let mut options = OpenOptions::new();
        options.read(true).nonblock(true);
        self.dir
            .open_with(path, &options)
            .map(cap_std::fs::File::into_std)
    }
}

/// The path as written, checked before touching the file system: not
/// empty, no NUL byte, not absolute in any platform's spelling, no `..`.
fn checked(requested: &str) -> Result<&Path, ToolError> {
    if requested.is_empty() {
        return Err(ToolError::invalid_input("the path is empty"));
    }
    if requested.contains('\0') {
        return Err(ToolError::refused("the path contains a NUL byte"));
    }
    let path = Path::new(requested);
    let absolute = || {
        ToolError::refused(format!(
            "{requested:?} is an absolute path; give a path relative to the root directory"
        ))
    };
    let parent = || {
        ToolError::refused(format!(
            "{requested:?} contains \"..\"; paths may not leave the root directory"
        ))
    };
    // `Path::is_absolute` is platform-specific; refuse every rooted form
    // (`/x`, `\x`, `C:x`, `file:///x`) on every platform.
    let looks_rooted = requested.starts_with(['/', '\\'])
        || requested.as_bytes().get(1) == Some(&b':')
        || requested
            .get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:"));
    if path.is_absolute() || looks_rooted || path.has_root() {
        return Err(absolute());
    }
    for component in path.components() {
        match component {
            Component::ParentDir => return Err(parent()),
            Component::Prefix(_) | Component::RootDir => return Err(absolute()),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    if requested.split(['/', '\\']).any(|part| part == "..") {
        return Err(parent());
    }
    Ok(path)
}

/// Whether an error from opening beneath the root is its refusal to leave
/// it (`cap_std` reports those as a permission error with no OS error
/// code; a real `EACCES` has one).
fn is_escape(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

fn leads_outside(requested: &str) -> ToolError {
    ToolError::refused(format!(
        "{requested:?} leads outside the root directory (through a symbolic link)"
    ))
}

fn open_error(requested: &str, e: &std::io::Error) -> ToolError {
    if is_escape(e) {
        return leads_outside(requested);
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::failed(format!("{requested:?} does not exist")),
        _ => ToolError::failed(format!("{requested:?} cannot be opened: {e}")),
    }
}

/// The entries of a directory opened beneath the root, as the answer.
fn list(dir: Dir, requested: &str) -> Result<String, ToolError> {
    let entries = dir
        .entries()
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
and \"..\" are refused. Give column to get only one column of a table, key to get only one \
setting's value or one row of a table, or both to get one value of a table."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "description": "The path of the file the request or step names, relative to the working directory.",
                    "minLength": 1
                },
                "column": {
                    "type": "string",
                    "description": "Only for a table (CSV, or columns separated by spaces): the column to return, by its header or its number from 1. Its values come back separated by commas; with key, only the value in that row.",
                    "maxLength": 100
                },
                "key": {
                    "type": "string",
                    "description": "For a file of settings (name = value, or name: value): the name whose value to return. For a table: the row whose first field is key.",
                    "maxLength": 100
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
        let part = |name: &str| {
            input
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
        };
        match (part("column"), part("key")) {
            (None, None) => self.read(path),
            (Some(column), None) => table::column(&self.read(path)?, path, column),
            (column, Some(key)) => {
                let text = self.read(path)?;
                if column.is_none() && !table::is_table(&text) {
                    table::setting(&text, path, key)
                } else {
                    table::row(&text, path, key, column)
                }
            }
        }
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn is_idempotent(&self) -> bool {
        true
    }
}
