//! OpenTelemetry export, end to end: `ratchet demo --otlp-endpoint URL`
//! sends the spans of its recoveries to an OTLP/HTTP receiver run by this
//! test, which decodes them as any collector would and checks their names,
//! attributes and parent links.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

type Received = Arc<Mutex<Vec<Span>>>;

/// `POST /v1/traces`: an OTLP/HTTP export request in protobuf.
async fn receive(State(received): State<Received>, body: axum::body::Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else { return StatusCode::BAD_REQUEST };
    let spans = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
    received.lock().unwrap().extend(spans);
    StatusCode::OK
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

/// An integer attribute; tracing-opentelemetry writes a `u64` field as a
/// decimal string.
fn int(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(Value::IntValue(v)) => *v,
        Some(Value::StringValue(v)) if v.parse::<i64>().is_ok() => v.parse().unwrap_or_default(),
        other => panic!("span `{}` has no integer `{key}`: {other:?}", span.name),
    }
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attribute(span, key) {
        Some(Value::StringValue(v)) => v,
        other => panic!("span `{}` has no string `{key}`: {other:?}", span.name),
    }
}

#[test]
fn a_recovery_exports_its_attempts_phases_and_plugin_calls_with_attributes_and_parents() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received: Received = Arc::default();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive)).with_state(received.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    let out = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .args(["--no-cache", "demo", "--writes", "200", "--otlp-endpoint", &endpoint])
        .output()
        .unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{output}");

    // The demo flushes its spans before it exits.
    let spans = received.lock().unwrap().clone();
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let parent = |span: &Span| by_id.get(span.parent_span_id.as_slice()).copied();

    let attempts: Vec<&Span> = spans.iter().filter(|s| s.name == "attempt").collect();
    assert!(attempts.len() >= 2, "the boot and the recovery after the kills: {} attempts in {} spans", attempts.len(), spans.len());
    for attempt in &attempts {
        assert!(int(attempt, "epoch") > 0 && int(attempt, "attempt") >= 1);
        assert!(attempt.end_time_unix_nano >= attempt.start_time_unix_nano);
    }

    let phases: Vec<&Span> = spans.iter().filter(|s| s.name == "phase").collect();
    let mut names: Vec<&str> = phases.iter().map(|p| text(p, "phase")).collect();
    names.sort_unstable();
    names.dedup();
    for expected in ["lock-services", "recruit-logs", "replay-logs", "persist-layout"] {
        assert!(names.contains(&expected), "no `{expected}` phase among {names:?}");
    }
    for phase in &phases {
        let attempt = parent(phase).unwrap_or_else(|| panic!("phase {} has no parent that arrived", text(phase, "phase")));
        assert_eq!(attempt.name, "attempt");
        assert_eq!(phase.trace_id, attempt.trace_id);
        assert_eq!((int(phase, "epoch"), int(phase, "attempt")), (int(attempt, "epoch"), int(attempt, "attempt")));
    }

    let calls: Vec<&Span> = spans.iter().filter(|s| s.name == "plugin_call").collect();
    let mut phase_calls = 0;
    for call in &calls {
        assert!(int(call, "version") >= 1, "the slot's version");
        let Some(phase) = parent(call).filter(|p| p.name == "phase") else { continue };
        assert_eq!(int(call, "epoch"), int(phase, "epoch"));
        if text(call, "slot") == text(phase, "phase") {
            phase_calls += 1;
        }
    }
    assert!(phase_calls >= phases.len() / 2, "{phase_calls} of {} phases have their plugin call under them", phases.len());
    assert!(calls.iter().any(|c| text(c, "slot") == "placement"), "the placement policy's calls are exported too");
}

#[test]
fn a_bad_endpoint_is_refused_with_its_reason() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_ratchet")).args(["--no-cache", "demo", "--otlp-endpoint", "127.0.0.1:4318"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--otlp-endpoint \"127.0.0.1:4318\": expected an http:// URL"), "{stderr}");
}
