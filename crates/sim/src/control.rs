//! The `/_sim/…` control surface, for tests that drive the simulators from another process.
//!
//! Every provider server answers it, over the same shared state as [`SimHandle`]:
//! `GET /_sim/calls`, `DELETE /_sim/calls`, `POST /_sim/faults`, `DELETE /_sim/faults`,
//! `POST /_sim/latency` (`{"ms":N}`) and `GET /_sim/stats` (peak in-flight, 429 count,
//! revocations). These calls are not logged as provider calls.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::Shared;
use crate::wire::{Reply, Req};
use crate::{Fault, FaultKind, Provider, SimHandle, Step};

const JSON: &str = "application/json";

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindSpec {
    Status(u16),
    RateLimited {
        retry_after_secs: u64,
        #[serde(default)]
        http_date: bool,
    },
    SlowMs(u64),
    Drop,
}

#[derive(Deserialize)]
struct FaultSpec {
    provider: Provider,
    email: String,
    kind: KindSpec,
    #[serde(default = "any_step")]
    step: Step,
    #[serde(default)]
    times: Option<u32>,
}

fn any_step() -> Step {
    Step::Any
}

#[derive(Deserialize)]
struct LatencySpec {
    ms: u64,
}

pub(crate) fn handle(shared: &Arc<Shared>, req: &Req) -> Reply {
    let handle = SimHandle {
        shared: shared.clone(),
    };
    match (req.method.as_str(), req.segs().as_slice()) {
        ("GET", ["_sim", "calls"]) => Reply::json(200, JSON, &calls_json(shared, &handle)),
        ("DELETE", ["_sim", "calls"]) => {
            handle.reset_calls();
            Reply::empty(204)
        }
        ("POST", ["_sim", "faults"]) => match serde_json::from_slice::<FaultSpec>(&req.body) {
            Ok(spec) => {
                let kind = match spec.kind {
                    KindSpec::Status(s) => FaultKind::Status(s),
                    KindSpec::RateLimited {
                        retry_after_secs,
                        http_date,
                    } => FaultKind::RateLimited {
                        retry_after_secs,
                        http_date,
                    },
                    KindSpec::SlowMs(ms) => FaultKind::Slow(Duration::from_millis(ms)),
                    KindSpec::Drop => FaultKind::Drop,
                };
                let fault = Fault {
                    kind,
                    step: spec.step,
                    times: spec.times,
                };
                handle.set_fault(spec.provider, &spec.email, fault);
                Reply::empty(204)
            }
            Err(e) => bad_request(&e.to_string()),
        },
        ("DELETE", ["_sim", "faults"]) => {
            handle.clear_faults();
            Reply::empty(204)
        }
        ("POST", ["_sim", "latency"]) => match serde_json::from_slice::<LatencySpec>(&req.body) {
            Ok(spec) => {
                handle.set_latency(Duration::from_millis(spec.ms));
                Reply::empty(204)
            }
            Err(e) => bad_request(&e.to_string()),
        },
        ("GET", ["_sim", "stats"]) => {
            let revoked: serde_json::Map<String, Value> = Provider::ALL
                .iter()
                .map(|p| (p.key().to_string(), json!(handle.revoked(*p))))
                .collect();
            let body = json!({
                "peak_in_flight": handle.peak_in_flight(),
                "count_429": handle.count_429(),
                "revoked": revoked,
            });
            Reply::json(200, JSON, &body)
        }
        _ => Reply::json(
            404,
            JSON,
            &json!({"error": "unknown simulator control path"}),
        ),
    }
}

fn bad_request(message: &str) -> Reply {
    Reply::json(400, JSON, &json!({ "error": message }))
}

fn calls_json(shared: &Shared, handle: &SimHandle) -> Value {
    let ms = |t: std::time::Instant| {
        u64::try_from(t.saturating_duration_since(shared.epoch).as_millis()).unwrap_or(u64::MAX)
    };
    let calls: Vec<Value> = handle
        .calls()
        .into_iter()
        .map(|c| {
            json!({
                "provider": c.provider,
                "method": c.method,
                "path": c.path,
                "query": c.query,
                "auth_scheme": c.auth_scheme,
                "content_type": c.content_type,
                "body": c.body,
                "status": c.status,
                "step": c.step,
                "started_ms": ms(c.started),
                "finished_ms": ms(c.finished),
            })
        })
        .collect();
    Value::Array(calls)
}
