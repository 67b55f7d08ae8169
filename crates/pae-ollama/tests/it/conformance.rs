//! The `pae-conformance` suite against the adapter talking to an Ollama-API
//! server (the stand-in in `tests/fixtures`; `PAE_OLLAMA_TEST_HOST`,
//! `PAE_OLLAMA_TEST_MODEL`; skipped with a reason when unset, failing when
//! `PAE_REQUIRE_SERVERS=1`).

use std::time::Duration;

use pae_conformance::Options;
use pae_conformance::env::{require_env, server_turn};
use pae_ollama::OllamaChat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_adapter_passes_the_conformance_suite() {
    let (Some(host), Some(name)) = (
        require_env("PAE_OLLAMA_TEST_HOST"),
        require_env("PAE_OLLAMA_TEST_MODEL"),
    ) else {
        return;
    };
    let _turn = server_turn().await;
    let model = OllamaChat::new(&name)
        .with_host(host)
        .with_timeout(Duration::from_secs(600));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        port
    };
    let unreachable = OllamaChat::new(&name)
        .with_host(format!("127.0.0.1:{closed}"))
        .with_timeout(Duration::from_secs(30));
    let options = Options::default().with_unreachable(unreachable);
    let report = pae_conformance::run(&model, &options).await;
    report.assert_all_passed();
}
