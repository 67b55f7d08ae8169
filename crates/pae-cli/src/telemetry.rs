//! Where the library crates' `tracing` spans and log events go: stderr
//! under `-v`/`-vv`/`-vvv` or `RUST_LOG`, and an OpenTelemetry collector
//! over OTLP (HTTP/protobuf) with `--otlp-endpoint` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`. With neither, no subscriber is installed
//! and the spans cost next to nothing.
//!
//! The exporter runs on its own thread with a blocking HTTP client, so it
//! is set up before the async runtime starts and shut down (flushing what
//! is left) after it stops.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

use crate::cli::TelemetryArgs;
use crate::exit::{Failure, FailureKind};

/// The crates whose spans and events are pae's own.
const PAE_TARGETS: &[&str] = &[
    "pae_core",
    "pae_planner",
    "pae_executor",
    "pae_llamacpp",
    "pae_openai",
    "pae_ollama",
    "pae_http",
    "pae_cli",
];

/// llama.cpp's own log lines, routed to `tracing` by `llama-cpp-2`.
const LLAMA_CPP_TARGET: &str = "llama-cpp-2";

/// The stderr filter for a verbosity: `-v` shows pae's spans (as they
/// close, with their attributes and times) and llama.cpp's INFO lines;
/// `-vv` adds DEBUG (repairs, fallbacks, llama.cpp's details); `-vvv`
/// TRACE. Warnings of every crate show from `-v` on.
fn verbosity_filter(verbose: u8) -> String {
    let level = match verbose {
        0 => return String::new(),
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut directives = vec!["warn".to_owned()];
    directives.extend(
        PAE_TARGETS
            .iter()
            .chain([&LLAMA_CPP_TARGET])
            .map(|target| format!("{target}={level}")),
    );
    directives.join(",")
}

/// The collector's traces URL from `--otlp-endpoint`: like
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, a base URL that `/v1/traces` is added to
/// (unless it already ends with it).
pub(crate) fn traces_url(endpoint: &str) -> Result<String, Failure> {
    let endpoint = endpoint.trim();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(Failure::new(
            FailureKind::Usage,
            format!("--otlp-endpoint {endpoint:?} is not an http:// or https:// URL"),
        ));
    }
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}/v1/traces"))
    }
}

/// Whether the environment names a collector.
fn otlp_from_env() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// Whether log lines go to stderr.
static LOGS_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// Whether log lines go to stderr (progress then writes plain lines,
/// without a spinner to interleave with).
pub(crate) fn logs_on_stderr() -> bool {
    LOGS_ON_STDERR.load(Ordering::Relaxed)
}

/// What was installed; [`shutdown`](Self::shutdown) flushes the exporter.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the subscriber the flags and the environment ask for, if
    /// any. Call before the async runtime starts.
    ///
    /// # Errors
    /// A usage failure for a bad endpoint or `RUST_LOG`.
    pub(crate) fn init(args: &TelemetryArgs) -> Result<Self, Failure> {
        let rust_log = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let stderr_filter = match (&rust_log, args.verbose) {
            (Some(filter), _) => Some(filter.clone()),
            (None, 0) => None,
            (None, verbose) => Some(verbosity_filter(verbose)),
        };
        let endpoint = match &args.otlp_endpoint {
            Some(endpoint) => Some(Some(traces_url(endpoint)?)),
            None if otlp_from_env() => Some(None),
            None => None,
        };
        if stderr_filter.is_none() && endpoint.is_none() {
            return Ok(Self::default());
        }
        let stderr_layer = match &stderr_filter {
            Some(filter) => {
                let filter = EnvFilter::try_new(filter).map_err(|err| {
                    Failure::new(FailureKind::Usage, format!("RUST_LOG {filter:?}: {err}"))
                })?;
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::stderr().is_terminal())
                        .with_span_events(FmtSpan::CLOSE)
                        .with_filter(filter),
                )
            }
            None => None,
        };
        let (provider, otel_layer) = match endpoint {
            Some(url) => {
                let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
                if let Some(url) = url {
                    builder = builder.with_endpoint(url);
                }
                let exporter = builder.build().map_err(|err| {
                    Failure::new(
                        FailureKind::Usage,
                        format!("cannot set up the OTLP exporter: {err}"),
                    )
                })?;
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name("pae")
                            .build(),
                    )
                    .build();
                let tracer = provider.tracer("pae");
                // pae's spans only: the exporter's own HTTP client must not
                // trace itself into the export.
                let filter = EnvFilter::new(
                    PAE_TARGETS
                        .iter()
                        .map(|t| format!("{t}=info"))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(filter);
                (Some(provider), Some(layer))
            }
            None => (None, None),
        };
        let subscriber = Registry::default().with(stderr_layer).with(otel_layer);
        // A subscriber set already (only in tests) keeps its place.
        if tracing::subscriber::set_global_default(subscriber).is_ok() {
            LOGS_ON_STDERR.store(stderr_filter.is_some(), Ordering::Relaxed);
        }
        Ok(Self { provider })
    }

    /// Sends the spans not yet exported and stops the exporter. Call after
    /// the async runtime stopped.
    pub(crate) fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            crate::term::err(&format!("warning: the OTLP exporter: {err}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_base_urls() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c/v1/traces").unwrap(),
            "https://c/v1/traces"
        );
        assert_eq!(
            traces_url("collector:4318").unwrap_err().kind,
            FailureKind::Usage
        );
    }

    #[test]
    fn verbosity_widens_the_filter() {
        assert_eq!(verbosity_filter(0), "");
        let one = verbosity_filter(1);
        assert!(one.starts_with("warn,"), "{one}");
        assert!(one.contains("pae_core=info"), "{one}");
        assert!(one.contains("llama-cpp-2=info"), "{one}");
        assert!(verbosity_filter(2).contains("pae_executor=debug"));
        assert!(EnvFilter::try_new(verbosity_filter(3)).is_ok());
    }
}
