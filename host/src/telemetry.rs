//! OpenTelemetry export: the spans of recovery attempts, phases and plugin
//! calls, sent over OTLP/HTTP (protobuf) to a collector.
//!
//! The spans are the `tracing` spans the director and the runtime open
//! (`attempt`, `phase`, `plugin_call`, with `epoch`, `attempt`, `phase`,
//! `slot` and `version` among their fields); [`otlp_layer`] turns them into
//! OpenTelemetry spans with those fields as attributes and the spans they
//! ran in as parents.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

/// Where the OTLP endpoint comes from when `--otlp-endpoint` is not given.
pub const ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How long a batch of spans may wait before it is sent: short, so that a
/// recovery shows up in the collector while the operator looks.
const EXPORT_EVERY: Duration = Duration::from_millis(500);

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The endpoint is not an `http://` URL.
    #[error(
        "--otlp-endpoint {0:?}: expected an http:// URL such as http://127.0.0.1:4318 (spans are sent in the clear, to a collector on loopback or a trusted network)"
    )]
    BadEndpoint(String),
    /// The exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
}

/// The URL spans are posted to: the signal path `/v1/traces` below `base`,
/// as `OTEL_EXPORTER_OTLP_ENDPOINT` is read by every OpenTelemetry SDK.
pub fn traces_url(base: &str) -> Result<String, TelemetryError> {
    let base = base.trim();
    let rest = base.strip_prefix("http://");
    if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
        return Err(TelemetryError::BadEndpoint(base.to_string()));
    }
    Ok(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// Sends spans while it lives; dropped, it flushes what is pending.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("warning: OTLP export did not finish: {err}");
        }
    }
}

/// A `tracing` layer exporting every span it sees to the OTLP/HTTP
/// collector at `base` (its traces go to `base/v1/traces`), and the
/// exporter to keep alive for as long as spans should be sent.
pub fn otlp_layer<S>(
    base: &str,
) -> Result<(tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>, Exporter), TelemetryError>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(base)?)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Build(e.to_string()))?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(EXPORT_EVERY).build())
        .build();
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("ratchet").build();
    let provider = SdkTracerProvider::builder().with_span_processor(batches).with_resource(resource).build();
    let tracer = provider.tracer("ratchet");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), Exporter { provider }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url_below_which_traces_go() {
        assert_eq!(traces_url("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://otel.example/").unwrap(), "http://otel.example/v1/traces");
        for bad in ["127.0.0.1:4318", "ftp://x", "https://otel.example", "http://", "http:///x", ""] {
            assert!(matches!(traces_url(bad), Err(TelemetryError::BadEndpoint(_))), "{bad}");
        }
    }
}
