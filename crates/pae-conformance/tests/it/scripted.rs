//! The suite against `ScriptedModel`: the reference responder passes every
//! check, and a scripted model that claims less gets those checks skipped.

use std::sync::Arc;

use pae_conformance::{Check, Options, Outcome, Report, reference_model, reference_reply};
use pae_core::test_util::ScriptedModel;
use pae_core::{Capabilities, ChatModel, ProviderError};

fn refused() -> ProviderError {
    ProviderError::connection(
        "connecting to http://127.0.0.1:9",
        std::io::Error::other("connection refused"),
    )
}

#[tokio::test]
async fn reference_scripted_model_passes_every_check() {
    let options = Options::default()
        .with_unreachable(ScriptedModel::from_fn(|_| refused().into()).with_name("closed port"));
    let report = pae_conformance::run(&reference_model(), &options).await;
    report.assert_all_passed();
    assert_eq!(report.model, "reference");
    assert_eq!(report.passed(), Check::ALL);
    assert_eq!(report.results.len(), Check::ALL.len());
}

#[tokio::test]
async fn suite_accepts_an_arc_dyn_chat_model() {
    let model: Arc<dyn ChatModel> = Arc::new(reference_model());
    let report = pae_conformance::run(&model, &Options::default()).await;
    report.assert_all_passed();
    assert_eq!(report.skipped(), [Check::UnreachableEndpoint]);
}

#[tokio::test]
async fn unclaimed_capabilities_are_skipped_not_failed() {
    let model = ScriptedModel::from_fn(reference_reply)
        .with_capabilities(Capabilities::default())
        .with_name("plain");
    let report = pae_conformance::run(&model, &Options::default()).await;
    report.assert_all_passed();
    assert_eq!(
        report.skipped(),
        [
            Check::StreamIncremental,
            Check::ToolCall,
            Check::StreamToolCall,
            Check::ToolResult,
            Check::JsonSchema,
            Check::UnreachableEndpoint,
        ]
    );
    assert_eq!(
        report.outcome(Check::ToolCall),
        Some(&Outcome::Skipped {
            reason: "the model does not claim native tool calls".into()
        })
    );
    // Without native tools an unknown forced tool is not part of the check.
    let invalid = report.result(Check::InvalidRequestRejected).unwrap();
    assert!(
        !invalid.detail.contains("unknown forced tool"),
        "{}",
        invalid.detail
    );
}

#[tokio::test]
async fn caller_skips_are_reported_with_their_reason() {
    let options = Options::default()
        .skip(Check::StopSequence, "the server ignores stop")
        .skip(Check::JsonSchema, "no grammar support");
    let report = pae_conformance::run(&reference_model(), &options).await;
    assert_eq!(
        report.outcome(Check::StopSequence),
        Some(&Outcome::Skipped {
            reason: "skipped by the caller: the server ignores stop".into()
        })
    );
    assert!(report.outcome(Check::JsonSchema).unwrap().is_skipped());
    // The streamed stop check still finds its own stop text.
    assert!(
        report
            .outcome(Check::StreamStopSequence)
            .unwrap()
            .is_passed()
    );
    report.assert_all_passed();
}

#[tokio::test]
async fn passing_checks_record_what_they_saw() {
    let report = pae_conformance::run(&reference_model(), &Options::default()).await;
    let detail = |check| report.result(check).unwrap().detail.clone();
    assert_eq!(
        detail(Check::PlainReply),
        "\"You said: Say hello in one short sentence.\" (finish Stop)"
    );
    assert!(
        detail(Check::StopSequence).starts_with("stop \""),
        "{}",
        detail(Check::StopSequence)
    );
    assert!(detail(Check::MaxTokens).contains("4 completion tokens, finish Length"));
    assert_eq!(detail(Check::JsonSchema), r#"{"answer":"yes","sure":true}"#);
    assert!(detail(Check::ToolCall).starts_with(r#"get_weather({"city":"example"}) id "#));
    assert!(
        detail(Check::InvalidRequestRejected).contains("no messages: InvalidRequest"),
        "{}",
        detail(Check::InvalidRequestRejected)
    );
}

#[test]
fn the_run_future_can_be_spawned_and_reports_shared() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    let model = reference_model();
    let options = Options::default();
    assert_send(&pae_conformance::run(&model, &options));
    assert_send_sync::<Report>();
    assert_send_sync::<Options>();
}
