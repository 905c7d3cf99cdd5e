//! What `GET /metrics` reports, in the Prometheus (OpenMetrics) text format:
//! HTTP answers by status, connector outcomes, provider call latency and
//! retries, finished requests, webhook rejections by reason, and the work in
//! flight.
//!
//! Outcomes and attempts are counted where the engine records them (an
//! [`EngineObserver`] on every tenant's engine, see [`crate::registry`]), so
//! a number here always matches a row in the database; HTTP answers are
//! counted by the middleware that wraps every route ([`crate::ops`]).
//! Labels are bounded: route templates rather than paths, provider keys
//! rather than instance names or tenants, error codes rather than messages.
//! Nothing here is secret or names a person.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sever_core::engine::EngineObserver;
use sever_core::{ConnectorResult, Outcome, RequestStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route template (`/api/v1/revocations/{id}`), or `unmatched`.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    provider: String,
    outcome: String,
    /// For `failed`: the error class (`rate_limited`, `timeout`, ...); else empty.
    error_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: String,
    /// `token`, `lookup` or `revoke`.
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// The process's metrics; cheap to share (every family is reference-counted).
pub struct Metrics {
    registry: Registry,
    http: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    outcomes: Family<OutcomeLabels, Counter>,
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
    retries: Family<CallLabels, Counter>,
    finished: Family<StatusLabels, Counter>,
    webhook_rejections: Family<ReasonLabels, Counter>,
    in_flight: Gauge,
    released: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sever");
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http.clone(),
        );
        let http_duration: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by method, route template and status",
            Unit::Seconds,
            http_duration.clone(),
        );
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "connector_outcomes",
            "Connector outcomes recorded, by provider, outcome and (for failures) error class",
            outcomes.clone(),
        );
        let calls: Family<CallLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "provider_call_duration",
            "Duration of each provider call attempt, by provider and step",
            Unit::Seconds,
            calls.clone(),
        );
        let retries = Family::<CallLabels, Counter>::default();
        registry.register(
            "provider_retries",
            "Provider call attempts after the first (retries), by provider and step",
            retries.clone(),
        );
        let finished = Family::<StatusLabels, Counter>::default();
        registry.register(
            "revocations_finished",
            "Revocation requests that reached a final status, by status",
            finished.clone(),
        );
        let webhook_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "webhook_rejections",
            "Webhook calls refused, by reason (missing_signature, bad_signature, stale_timestamp, channel_disabled, ...)",
            webhook_rejections.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "executions_in_flight",
            "Revocation requests this process is running now",
            in_flight.clone(),
        );
        let released = Counter::default();
        registry.register(
            "leases_released",
            "Requests given back unfinished at shutdown, for another process to finish",
            released.clone(),
        );
        Self {
            registry,
            http,
            http_duration,
            outcomes,
            calls,
            retries,
            finished,
            webhook_rejections,
            in_flight,
            released,
        }
    }

    /// One HTTP answer.
    pub fn http_answered(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.http.get_or_create(&labels).inc();
        self.http_duration.get_or_create(&labels).observe(seconds);
    }

    /// One webhook call refused, for `reason`.
    pub fn webhook_rejected(&self, reason: &str) {
        self.webhook_rejections
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub(crate) fn execution_started(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn execution_ended(&self) {
        self.in_flight.dec();
    }

    pub(crate) fn lease_released(&self) {
        self.released.inc();
    }

    /// The whole exposition, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        out
    }
}

impl EngineObserver for Metrics {
    fn connector_recorded(&self, r: &ConnectorResult) {
        let provider = r.provider.as_str().to_string();
        if let Some(outcome) = &r.outcome {
            let error_class = match outcome {
                Outcome::Failed(f) => f.class.as_str().to_string(),
                _ => String::new(),
            };
            self.outcomes
                .get_or_create(&OutcomeLabels {
                    provider: provider.clone(),
                    outcome: outcome.label().to_string(),
                    error_class,
                })
                .inc();
        }
        for a in &r.attempts {
            let labels = CallLabels {
                provider: provider.clone(),
                step: a.step.as_str().to_string(),
            };
            self.calls
                .get_or_create(&labels)
                .observe(a.duration_ms as f64 / 1000.0);
            if a.number > 1 {
                self.retries.get_or_create(&labels).inc();
            }
        }
    }

    fn request_finished(&self, status: RequestStatus) {
        self.finished
            .get_or_create(&StatusLabels {
                status: status.as_str().to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use sever_core::{
        Attempt, ConnectorKey, ErrorClass, Failure, InstanceName, RequestStatus, Step,
    };

    fn attempt(step: Step, number: u32, ms: u64) -> Attempt {
        Attempt {
            step,
            number,
            started_at: Utc::now(),
            duration_ms: ms,
            http_status: Some(200),
            provider_code: None,
            provider_request_id: None,
            error_class: None,
        }
    }

    #[test]
    fn recorded_outcomes_attempts_and_rejections_appear_in_the_exposition() {
        let m = Metrics::new();
        m.connector_recorded(&ConnectorResult {
            instance: InstanceName::parse("okta").unwrap(),
            provider: ConnectorKey::Okta,
            outcome: Some(Outcome::Failed(Failure::new(ErrorClass::RateLimited, "x"))),
            subject_id: None,
            finished_at: None,
            attempts: vec![
                attempt(Step::Lookup, 1, 20),
                attempt(Step::Revoke, 1, 30),
                attempt(Step::Revoke, 2, 3000),
            ],
        });
        m.request_finished(RequestStatus::Failed);
        m.webhook_rejected("bad_signature");
        m.http_answered("POST", "/api/v1/revocations", 200, 0.01);
        let text = m.render();
        for line in [
            r#"sever_connector_outcomes_total{provider="okta",outcome="failed",error_class="rate_limited"} 1"#,
            r#"sever_provider_retries_total{provider="okta",step="revoke"} 1"#,
            r#"sever_provider_call_duration_seconds_count{provider="okta",step="revoke"} 2"#,
            r#"sever_provider_call_duration_seconds_bucket{le="5.0",provider="okta",step="revoke"} 2"#,
            r#"sever_revocations_finished_total{status="failed"} 1"#,
            r#"sever_webhook_rejections_total{reason="bad_signature"} 1"#,
            r#"sever_http_requests_total{method="POST",route="/api/v1/revocations",status="200"} 1"#,
            "# TYPE sever_executions_in_flight gauge",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
