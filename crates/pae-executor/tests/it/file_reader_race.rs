//! The file reader against a hostile file system: a thread swaps what a
//! path names (`renameat2(RENAME_EXCHANGE)`) while the reader reads it, and
//! no read may return a file outside the root or hang on a FIFO; refusals
//! say nothing about what exists outside the root; files that report size
//! 0 (`/proc`) are cut with a note like any other.
#![cfg(target_os = "linux")]

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use pae_core::ToolError;
use pae_executor::tools::FileReader;
use rustix::fs::{FileType, Mode, OFlags, RenameFlags};

/// Reads per race, unless `PAE_RACE_READS` says otherwise.
const READS: usize = 5_000;
/// How long one read may take before it counts as a hang.
const STALL: Duration = Duration::from_secs(5);
/// What the files outside the root hold.
const SECRET: &str = "top secret";
/// What the files inside the root hold.
const INSIDE: &str = "inside";

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pae-executor-race-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// `scratch/root`, and `scratch/secret.txt` and `scratch/out/f.txt`
    /// outside it.
    fn root(&self) -> PathBuf {
        let root = self.0.join("root");
        std::fs::create_dir_all(&root).expect("create the root");
        std::fs::write(self.0.join("secret.txt"), SECRET).expect("write secret.txt");
        std::fs::create_dir_all(self.0.join("out")).expect("create out/");
        std::fs::write(self.0.join("out/f.txt"), SECRET).expect("write out/f.txt");
        root
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the reads returned.
#[derive(Debug, Default)]
struct Tally {
    reads: usize,
    inside: usize,
    leaks: usize,
    refused: usize,
    failed: usize,
    other: usize,
    hangs: usize,
    swaps: usize,
}

impl Tally {
    fn count(&mut self, result: &Result<String, ToolError>) {
        self.reads += 1;
        match result {
            Ok(text) if text.contains(SECRET) => self.leaks += 1,
            Ok(text) if text == INSIDE => self.inside += 1,
            Ok(_) => self.other += 1,
            Err(ToolError::Refused { .. }) => self.refused += 1,
            Err(_) => self.failed += 1,
        }
    }
}

fn reads() -> usize {
    std::env::var("PAE_RACE_READS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(READS)
}

/// Swaps `a` and `b` inside `dir` until `stop` is set; returns how many
/// swaps it made. Falls back to three renames where the file system has no
/// `RENAME_EXCHANGE`.
fn swapper(
    dir: PathBuf,
    a: &'static str,
    b: &'static str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&dir).expect("open the root directory");
        let mut swaps = 0;
        let mut exchange = true;
        while !stop.load(Ordering::Relaxed) {
            if exchange {
                match rustix::fs::renameat_with(&fd, a, &fd, b, RenameFlags::EXCHANGE) {
                    Ok(()) => swaps += 1,
                    Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => exchange = false,
                    Err(e) => panic!("renameat2({a}, {b}): {e}"),
                }
            } else {
                let tmp = "swap.tmp";
                rustix::fs::renameat(&fd, a, &fd, tmp).expect("rename a away");
                rustix::fs::renameat(&fd, b, &fd, a).expect("rename b to a");
                rustix::fs::renameat(&fd, tmp, &fd, b).expect("rename a to b");
                swaps += 1;
            }
        }
        swaps
    })
}

/// Opens every FIFO among `names` for writing without blocking, which
/// wakes a reader stuck opening it.
fn unblock(dir: &Path, names: &[&str]) {
    for _ in 0..100 {
        for name in names {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(OFlags::NONBLOCK.bits() as i32)
                .open(dir.join(name));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads `path` [`reads`] times while `a` and `b` in the root are swapped.
/// A read that takes longer than [`STALL`] is a hang: the swapping stops,
/// the FIFO is opened for writing to wake the reader, and the race ends.
fn race(reader: FileReader, path: &'static str, a: &'static str, b: &'static str) -> Tally {
    let reads = reads();
    let root = reader.root().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let swapping = swapper(root.clone(), a, b, Arc::clone(&stop));
    let (tx, rx) = mpsc::channel();
    let reading = std::thread::spawn(move || {
        for _ in 0..reads {
            if tx.send(reader.read(path)).is_err() {
                return;
            }
        }
    });
    let mut tally = Tally::default();
    while tally.reads < reads {
        match rx.recv_timeout(STALL) {
            Ok(result) => tally.count(&result),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tally.hangs += 1;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    tally.swaps = swapping.join().expect("the swapping thread");
    if tally.hangs > 0 {
        unblock(&root, &[a, b]);
    }
    drop(rx);
    // A reader still stuck is left behind: the test fails on the hang.
    if tally.hangs == 0 {
        reading.join().expect("the reading thread");
    }
    tally
}

fn check(case: &str, tally: &Tally) {
    println!("{case}: {tally:?}");
    assert_eq!(tally.hangs, 0, "{case}: a read hung: {tally:?}");
    assert_eq!(tally.leaks, 0, "{case}: reads left the root: {tally:?}");
    assert_eq!(tally.reads, reads(), "{case}: {tally:?}");
    assert!(tally.swaps > 0, "{case}: nothing was swapped: {tally:?}");
}

#[test]
fn file_reader_never_follows_a_symlink_swapped_in() {
    let scratch = Scratch::new();
    let root = scratch.root();
    std::fs::write(root.join("a.txt"), INSIDE).unwrap();
    std::os::unix::fs::symlink(scratch.path().join("secret.txt"), root.join("b.txt")).unwrap();
    let reader = FileReader::new(&root).unwrap();
    check(
        "symlink swapped in",
        &race(reader, "a.txt", "a.txt", "b.txt"),
    );
}

#[test]
fn file_reader_never_follows_a_parent_directory_swapped_in() {
    let scratch = Scratch::new();
    let root = scratch.root();
    std::fs::create_dir(root.join("d")).unwrap();
    std::fs::write(root.join("d/f.txt"), INSIDE).unwrap();
    // A relative link this time: `e/f.txt` is `scratch/out/f.txt`.
    std::os::unix::fs::symlink("../out", root.join("e")).unwrap();
    let reader = FileReader::new(&root).unwrap();
    check(
        "parent directory swapped in",
        &race(reader, "d/f.txt", "d", "e"),
    );
}

#[test]
fn file_reader_never_hangs_on_a_fifo_swapped_in() {
    let scratch = Scratch::new();
    let root = scratch.root();
    std::fs::write(root.join("p.txt"), INSIDE).unwrap();
    let dir = std::fs::File::open(&root).unwrap();
    rustix::fs::mknodat(&dir, "q", FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
    let reader = FileReader::new(&root).unwrap();
    let tally = race(reader, "p.txt", "p.txt", "q");
    check("FIFO swapped in", &tally);
}

fn refusal(result: Result<String, ToolError>) -> String {
    match result {
        Err(ToolError::Refused { message }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn file_reader_refusals_do_not_tell_what_exists_outside() {
    let scratch = Scratch::new();
    let root = scratch.root();
    std::os::unix::fs::symlink(scratch.path(), root.join("outside")).unwrap();
    std::os::unix::fs::symlink("../out", root.join("up")).unwrap();
    std::os::unix::fs::symlink(
        scratch.path().join("nothing.txt"),
        root.join("dangling.txt"),
    )
    .unwrap();
    let reader = FileReader::new(&root).unwrap();
    let expected =
        |path: &str| format!("{path:?} leads outside the root directory (through a symbolic link)");
    for path in [
        "outside/secret.txt",
        "outside/missing.txt",
        "outside/out/f.txt",
        "outside/missing/f.txt",
        "up/f.txt",
        "up/missing.txt",
        "dangling.txt",
    ] {
        assert_eq!(refusal(reader.read(path)), expected(path), "{path}");
        assert_eq!(
            refusal(reader.resolve(path).map(|p| p.display().to_string())),
            expected(path)
        );
    }
}

#[test]
fn file_reader_cuts_files_that_report_no_size() {
    // `/proc` files report size 0 and have content all the same.
    let reader = FileReader::new("/proc/self").unwrap().with_max_bytes(10);
    let text = reader.read("status").unwrap();
    assert_eq!(
        text.split_once('\n').map(|(head, tail)| (head.len(), tail)),
        Some((
            10,
            "[... cut: the file has more than 10 bytes, the first 10 are shown]"
        )),
        "{text:?}"
    );
    // Within the limit, nothing is said.
    let reader = FileReader::new("/proc/self").unwrap();
    let text = reader.read("status").unwrap();
    assert!(
        text.starts_with("Name:") && !text.contains("[... cut"),
        "{text:?}"
    );
}
