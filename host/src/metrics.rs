//! The coordinator's metrics, served at `/metrics` in Prometheus text
//! format: recovery attempts by outcome, phase durations, plugin calls by
//! slot, version and outcome, swaps and rollbacks, and the current epoch.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::director::RecoveryReport;
use crate::registry::{CallObserver, CallOutcome};

/// Every metric the coordinator keeps.
pub struct Metrics {
    registry: Registry,
    attempts: IntCounterVec,
    phase_seconds: HistogramVec,
    plugin_calls: IntCounterVec,
    swaps: IntCounterVec,
    rollbacks: IntCounterVec,
    epoch: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry.register(Box::new(counter.clone())).expect("registered once");
            counter
        };
        let attempts = counter("ratchet_recovery_attempts_total", "Recovery attempts, by how they ended.", &["outcome"]);
        let plugin_calls = counter(
            "ratchet_plugin_calls_total",
            "Plugin calls, by slot, version and outcome (ok, trap, timeout).",
            &["slot", "version", "outcome"],
        );
        let swaps = counter("ratchet_plugin_swaps_total", "Swaps asked for, by slot and result (activated, refused).", &["slot", "result"]);
        let rollbacks = counter("ratchet_plugin_rollbacks_total", "Rollbacks, by slot and trigger.", &["slot", "trigger"]);
        // Phases take from tens of microseconds (in process) to seconds.
        let buckets = vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
        let phase_seconds = HistogramVec::new(
            HistogramOpts::new("ratchet_phase_duration_seconds", "Wall time of each recovery phase.").buckets(buckets),
            &["phase"],
        )
        .expect("a valid metric");
        registry.register(Box::new(phase_seconds.clone())).expect("registered once");
        let epoch = IntGauge::new("ratchet_epoch", "The epoch of the persisted layout.").expect("a valid metric");
        registry.register(Box::new(epoch.clone())).expect("registered once");
        Metrics { registry, attempts, phase_seconds, plugin_calls, swaps, rollbacks, epoch }
    }

    /// Counts the attempts of a recovery and times its phases; a completed
    /// recovery sets the epoch.
    pub fn record_recovery(&self, report: &RecoveryReport) {
        for attempt in &report.attempts {
            self.attempts.with_label_values(&[attempt.outcome.label()]).inc();
            for phase in &attempt.timeline {
                self.phase_seconds.with_label_values(&[phase.phase.as_str()]).observe(phase.duration.as_secs_f64());
            }
        }
        if let Some(layout) = report.layout() {
            self.epoch.set(layout.epoch as i64);
        }
    }

    /// Counts a swap of `slot` that was `activated` or `refused`.
    pub fn swap(&self, slot: &str, result: &str) {
        self.swaps.with_label_values(&[slot, result]).inc();
    }

    /// Counts a rollback of `slot`, asked by `trigger`.
    pub fn rollback(&self, slot: &str, trigger: &str) {
        self.rollbacks.with_label_values(&[slot, trigger]).inc();
    }

    /// The epoch of the persisted layout.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.set(epoch as i64);
    }

    /// Every metric, in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into memory cannot fail for these metric types.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl CallObserver for Metrics {
    fn call_ended(&self, slot: &str, version: u32, outcome: CallOutcome) {
        self.plugin_calls.with_label_values(&[slot, &version.to_string(), outcome.label()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_in_prometheus_text() {
        let metrics = Metrics::new();
        metrics.call_ended("placement", 2, CallOutcome::Trap);
        metrics.swap("placement", "refused");
        metrics.rollback("placement", "admin");
        metrics.set_epoch(7);
        let text = metrics.render();
        assert!(text.contains("# TYPE ratchet_plugin_calls_total counter"), "{text}");
        assert!(text.contains(r#"ratchet_plugin_calls_total{outcome="trap",slot="placement",version="2"} 1"#), "{text}");
        assert!(text.contains(r#"ratchet_plugin_swaps_total{result="refused",slot="placement"} 1"#), "{text}");
        assert!(text.contains(r#"ratchet_plugin_rollbacks_total{slot="placement",trigger="admin"} 1"#), "{text}");
        assert!(text.contains("ratchet_epoch 7"), "{text}");
    }
}
