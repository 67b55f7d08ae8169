//! The environment protocol of real-server and local-model tests: a test
//! that needs a server or a model file reads its address or path from an
//! environment variable; when the variable is missing the test is skipped
//! with a reason, unless `PAE_REQUIRE_SERVERS=1` (set by `cargo xtask
//! test`), which makes it fail.

use std::sync::OnceLock;

/// A value from the environment for a real-server test. When it is missing
/// the test is skipped with a reason on stderr, unless
/// `PAE_REQUIRE_SERVERS=1`, in which case it fails.
///
/// # Panics
/// When the variable is missing and `PAE_REQUIRE_SERVERS=1`: failing the
/// test is the point.
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            if std::env::var("PAE_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("{name} is not set but PAE_REQUIRE_SERVERS=1: the server must be running");
            }
            eprintln!("skipping: {name} is not set (start the test server; see the crate README)");
            None
        }
    }
}

/// Real-server tests take turns. llama-cpp-python's server cuts a running
/// stream short when another request arrives (its `interrupt_requests`
/// setting), and one small model on two cores answers one request at a time
/// anyway.
pub async fn server_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    TURN.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}
