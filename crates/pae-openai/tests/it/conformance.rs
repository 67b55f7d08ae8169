//! The `pae-conformance` suite against the adapter talking to
//! llama-cpp-python's server (`PAE_OPENAI_TEST_BASE_URL`,
//! `PAE_OPENAI_TEST_MODEL`; skipped with a reason when unset, failing when
//! `PAE_REQUIRE_SERVERS=1`), configured as a user of that server would.

use std::time::Duration;

use pae_conformance::Options;
use pae_conformance::env::{require_env, server_turn};
use pae_core::Capabilities;
use pae_openai::{OpenAiChat, SchemaMode};

fn configure(chat: OpenAiChat) -> OpenAiChat {
    chat.with_timeout(Duration::from_secs(600))
        .with_schema_mode(SchemaMode::JsonObjectWithSchema)
        .with_capabilities(Capabilities {
            native_tools: false,
            json_schema: true,
            streaming: true,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_adapter_passes_the_conformance_suite_on_llama_cpp_python() {
    let (Some(base_url), Some(name)) = (
        require_env("PAE_OPENAI_TEST_BASE_URL"),
        require_env("PAE_OPENAI_TEST_MODEL"),
    ) else {
        return;
    };
    let _turn = server_turn().await;
    let model = configure(OpenAiChat::new(&name).with_base_url(base_url));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        port
    };
    let unreachable =
        configure(OpenAiChat::new(&name).with_base_url(format!("http://127.0.0.1:{closed}/v1")));
    let options = Options::default().with_unreachable(unreachable);
    let report = pae_conformance::run(&model, &options).await;
    report.assert_all_passed();
}

/// llama-cpp-python returns structured tool calls when `tool_choice` names
/// the function, which is what the suite's tool checks force; claiming
/// native tools here puts that path (chat and stream) to the test too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tool_calls_pass_the_tool_checks_on_llama_cpp_python() {
    let (Some(base_url), Some(name)) = (
        require_env("PAE_OPENAI_TEST_BASE_URL"),
        require_env("PAE_OPENAI_TEST_MODEL"),
    ) else {
        return;
    };
    let _turn = server_turn().await;
    let model =
        configure(OpenAiChat::new(&name).with_base_url(base_url)).with_capabilities(Capabilities {
            native_tools: true,
            json_schema: true,
            streaming: true,
        });
    let report = pae_conformance::run(&model, &Options::default()).await;
    report.assert_all_passed();
}
