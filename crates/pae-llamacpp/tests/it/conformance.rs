//! The `pae-conformance` suite against `LlamaCppModel` with the tiny test
//! model (`PAE_TINY_MODEL`; skipped with a reason when unset, failing when
//! `PAE_REQUIRE_SERVERS=1`).

use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};

#[test]
fn llamacpp_model_passes_the_conformance_suite() {
    let Some(path) = pae_conformance::env::require_env("PAE_TINY_MODEL") else {
        return;
    };
    let model = LlamaCppModel::load(LlamaCppConfig::new(path).with_context_size(2048))
        .expect("the tiny model loads");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // Nothing to skip: in-process, so the unreachable-endpoint check does
    // not apply and is not enabled.
    let report = runtime.block_on(pae_conformance::run(
        &model,
        &pae_conformance::Options::default(),
    ));
    report.assert_all_passed();
}
