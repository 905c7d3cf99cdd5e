//! The HTTP machinery every connector shares: one pooled client, the retry
//! loop, the error parser and the classifier.
//!
//! It exists so that the rules that matter during an incident hold for every
//! provider alike: retry only what can succeed on a retry (429, 5xx, Google's
//! quota 403s, timeouts, dropped connections), honour `Retry-After` and Okta's
//! reset header, never wait past the request deadline, record every attempt,
//! and turn a provider's answer into an [`ErrorClass`] plus one line a
//! responder can act on, without ever echoing a credential.

use std::time::{Duration, Instant};

use chrono::Utc;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, DATE, RETRY_AFTER};
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sever_core::{Attempt, CallContext, Check, ConnectorKey, ErrorClass, Failure, Step, Username};

use crate::config::ConfigError;
use crate::token::TokenSource;

/// Everything but RFC 3986 "unreserved" characters is escaped, so a value can
/// be used as one path segment or one query value (`@`, `#`, `'`, `/`, space...).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode `s` as a single path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Headers in which providers return their own request id (Okta, Graph,
/// Entra's token endpoint, Slack, Miro, Google's upload id), first match wins.
const REQUEST_ID_HEADERS: [&str; 6] = [
    "x-okta-request-id",
    "request-id",
    "x-ms-request-id",
    "x-slack-req-id",
    "x-request-id",
    "x-guploader-uploadid",
];

/// Google signals quota exhaustion with a 403 and one of these reasons.
const GOOGLE_RATE_REASONS: [&str; 3] = [
    "userRateLimitExceeded",
    "quotaExceeded",
    "rateLimitExceeded",
];

/// The one HTTP client of a Sever process: pooled connections, rustls, a
/// connect timeout and a `sever/<version>` user agent. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// A client with a 5 s connect timeout.
    pub fn new() -> Result<Self, ConfigError> {
        Self::with_connect_timeout(Duration::from_secs(5))
    }

    pub fn with_connect_timeout(connect_timeout: Duration) -> Result<Self, ConfigError> {
        let inner = reqwest::Client::builder()
            .user_agent(concat!("sever/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // A provider API that redirects means a wrong base_url; following it
            // would send credentials somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        Ok(Self { inner })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.inner
    }
}

/// An error answer of a provider, parsed from whichever envelope it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub step: Step,
    pub status: u16,
    /// Okta `errorCode`, Graph `error.code`, Google `errors[0].reason`, Slack
    /// `error`, Miro `code`, OAuth `error` (Entra: `AADSTS<n>`).
    pub code: Option<String>,
    /// The provider's own one-line explanation (first line, trimmed, bounded).
    pub message: Option<String>,
    /// Slack's `needed` scope on `missing_scope`.
    pub needed: Option<String>,
}

impl ApiError {
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// `": <provider message>"` without its final period, or nothing.
    pub fn said(&self) -> String {
        self.message
            .as_deref()
            .map(|m| format!(": {}", m.trim_end_matches('.')))
            .unwrap_or_default()
    }
}

/// An error answer that is an answer, not a failure (e.g. "no such user").
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    Code(&'static str),
    Status(u16),
}

/// A final answer from the provider: success, or an expected error answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Set when the answer was an expected error (see [`Expect`]).
    pub error: Option<ApiError>,
    pub request_id: Option<String>,
}

impl Response {
    pub fn code(&self) -> Option<&str> {
        self.error.as_ref().and_then(|e| e.code.as_deref())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Maps a provider's error answer to a class and a message, when the provider
/// module knows better than the generic rules.
pub(crate) type Explain = fn(&ApiError) -> Option<(ErrorClass, String)>;

/// How requests authenticate.
pub(crate) enum Auth {
    /// A static `Authorization` header value (`SSWS …`, `Bearer xoxp-…`), marked sensitive.
    Header(HeaderValue),
    /// A bearer token obtained (and cached) from a token endpoint.
    OAuth(Box<TokenSource>),
}

impl Auth {
    pub fn scheme(scheme: &str, token: &SecretString) -> Result<Self, String> {
        let mut v = HeaderValue::from_str(&format!("{scheme} {}", token.expose_secret().trim()))
            .map_err(|_| "contains characters that cannot go in an HTTP header".to_string())?;
        v.set_sensitive(true);
        Ok(Self::Header(v))
    }
}

/// One provider's API as a connector sees it: the shared client, how to
/// authenticate, and how to explain errors.
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub provider: ConnectorKey,
    /// Short name used in messages ("Okta", "Entra", ...).
    pub name: &'static str,
    pub auth: Auth,
    explain: Explain,
    /// Configured secrets, scrubbed from every message as a last line of defence.
    secrets: Vec<SecretString>,
    /// This connector instance's rate budget and bulk concurrency (issue 7).
    pacer: crate::pacing::Pacer,
}

enum Verdict {
    Done(Response),
    Fail {
        failure: Failure,
        retryable: bool,
        wait: Option<Duration>,
    },
}

impl Api {
    pub fn new(
        http: &crate::HttpClient,
        provider: ConnectorKey,
        name: &'static str,
        auth: Auth,
        explain: Explain,
        secrets: Vec<SecretString>,
    ) -> Self {
        Self {
            http: http.client().clone(),
            provider,
            name,
            auth,
            explain,
            secrets,
            pacer: crate::pacing::Pacer::new(Default::default(), crate::pacing::dialect(provider)),
        }
    }

    /// Pace this connector's calls with `config` (see [`crate::pacing`]).
    pub fn with_pacing(mut self, config: crate::pacing::PacingConfig) -> Self {
        self.pacer = crate::pacing::Pacer::new(config, crate::pacing::dialect(self.provider));
        self
    }

    /// The rate bucket a call counts against: Slack counts per method, the
    /// others per API, the token endpoint apart.
    fn bucket(&self, step: Step) -> &'static str {
        match (self.provider, step) {
            (_, Step::Token) => "token",
            (ConnectorKey::SlackEnterprise, s) => s.as_str(),
            _ => "api",
        }
    }

    /// An authenticated call. With an OAuth token that came from a cache, a 401
    /// drops the token and retries once with a freshly fetched one (the token
    /// may have been revoked or the cache may hold one from another key).
    pub async fn call<F>(
        &self,
        cx: &CallContext,
        step: Step,
        expect: &[Expect],
        make: F,
    ) -> Result<Response, Failure>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        self.call_as(&self.auth, cx, step, expect, make).await
    }

    /// [`Api::call`] authenticated with `auth` instead of the API's own
    /// (Google's group listing needs a token with another scope), in the
    /// same budget and retry loop.
    pub async fn call_as<F>(
        &self,
        auth: &Auth,
        cx: &CallContext,
        step: Step,
        expect: &[Expect],
        make: F,
    ) -> Result<Response, Failure>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        self.call_in(auth, cx, step, self.bucket(step), expect, make)
            .await
    }

    /// [`Api::call_as`] counted against rate bucket `bucket` rather than the
    /// step's (Slack's `admin.users.session.resetBulk` has its own limit).
    pub async fn call_in<F>(
        &self,
        auth: &Auth,
        cx: &CallContext,
        step: Step,
        bucket: &'static str,
        expect: &[Expect],
        make: F,
    ) -> Result<Response, Failure>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        match auth {
            Auth::Header(v) => {
                self.send_in(cx, step, bucket, expect, || {
                    make(&self.http).header(AUTHORIZATION, v.clone())
                })
                .await
            }
            Auth::OAuth(tokens) => {
                let (token, fresh) = tokens.get(cx, self).await?;
                let first = self
                    .send_in(cx, step, bucket, expect, || {
                        make(&self.http).bearer_auth(token.expose_secret())
                    })
                    .await;
                match first {
                    Err(f) if f.http_status == Some(401) && !fresh => {
                        tokens.forget(&token).await;
                        let (token, _) = tokens.get(cx, self).await?;
                        self.send_in(cx, step, bucket, expect, || {
                            make(&self.http).bearer_auth(token.expose_secret())
                        })
                        .await
                    }
                    other => other,
                }
            }
        }
    }

    /// Send with retries; `make` builds the request afresh for each attempt.
    /// Returns the answer when it is a success or matches `expect`, else a
    /// classified [`Failure`]. Every attempt is recorded in `cx`.
    pub async fn send<F>(
        &self,
        cx: &CallContext,
        step: Step,
        expect: &[Expect],
        make: F,
    ) -> Result<Response, Failure>
    where
        F: Fn() -> RequestBuilder,
    {
        self.send_in(cx, step, self.bucket(step), expect, make)
            .await
    }

    async fn send_in<F>(
        &self,
        cx: &CallContext,
        step: Step,
        bucket: &'static str,
        expect: &[Expect],
        make: F,
    ) -> Result<Response, Failure>
    where
        F: Fn() -> RequestBuilder,
    {
        // Attempt numbers run on across calls of the same step (e.g. a retry
        // after a 401 with a fresh token).
        let before = cx.attempts().iter().filter(|a| a.step == step).count() as u32;
        let max = cx.retry.max_attempts.max(1);
        let mut n = 0;
        loop {
            n += 1;
            let remaining = cx.remaining();
            if remaining.is_zero() {
                let mut f = Failure::new(
                    ErrorClass::Timeout,
                    format!("the request deadline passed before {} answered", self.name),
                );
                f.attempts = n - 1;
                return Err(f);
            }
            // Bulk calls wait their turn in the provider's budget; urgent ones never do.
            let grant = self
                .pacer
                .acquire(bucket, !sever_core::bulk::in_bulk())
                .await;
            let per_attempt = cx.retry.attempt_timeout.min(cx.remaining());
            let started_at = Utc::now();
            let t0 = Instant::now();
            let exchanged = tokio::time::timeout(per_attempt, exchange(make())).await;
            if let Ok(Ok((status, headers, body))) = &exchanged {
                let google_rate = self.provider == ConnectorKey::GoogleWorkspace
                    && *status == 403
                    && GOOGLE_RATE_REASONS
                        .iter()
                        .any(|r| body.windows(r.len()).any(|w| w == r.as_bytes()));
                self.pacer.observe(bucket, *status, headers, google_rate);
            }
            drop(grant);
            let verdict = match exchanged {
                Err(_) => Verdict::Fail {
                    failure: Failure::new(
                        ErrorClass::Timeout,
                        format!(
                            "{} did not answer within {} ms",
                            self.name,
                            per_attempt.as_millis()
                        ),
                    ),
                    retryable: true,
                    wait: None,
                },
                Ok(Err(e)) => self.transport_failure(&e),
                Ok(Ok((status, headers, body))) => self.judge(step, expect, status, headers, body),
            };
            let mut attempt = Attempt {
                step,
                number: before + n,
                started_at,
                duration_ms: t0.elapsed().as_millis() as u64,
                http_status: None,
                provider_code: None,
                provider_request_id: None,
                error_class: None,
            };
            let (mut failure, retryable, wait) = match verdict {
                Verdict::Done(resp) => {
                    attempt.http_status = Some(resp.status);
                    attempt.provider_code = resp.code().map(str::to_string);
                    attempt.provider_request_id = resp.request_id.clone();
                    cx.record(attempt);
                    return Ok(resp);
                }
                Verdict::Fail {
                    failure,
                    retryable,
                    wait,
                } => (failure, retryable, wait),
            };
            attempt.http_status = failure.http_status;
            attempt.provider_code = failure.provider_code.clone();
            attempt.provider_request_id = failure.provider_request_id.clone();
            attempt.error_class = Some(failure.class);
            cx.record(attempt);
            failure.attempts = n;
            failure.message = self.scrub(failure.message);
            if !retryable {
                return Err(failure);
            }
            if n >= max {
                failure.message = format!("{} (gave up after {n} attempts)", failure.message);
                return Err(failure);
            }
            let wait = wait.unwrap_or_else(|| cx.retry.backoff(n, rand::random::<f64>()));
            if Instant::now() + wait >= cx.deadline {
                failure.message = format!(
                    "{} (stopped after {n} attempts: waiting {} ms to retry would pass the request deadline)",
                    failure.message,
                    wait.as_millis()
                );
                return Err(failure);
            }
            tracing::debug!(provider = %self.provider, step = step.as_str(), attempt = n, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn transport_failure(&self, e: &reqwest::Error) -> Verdict {
        let (class, retryable) = if e.is_timeout() {
            (ErrorClass::Timeout, true)
        } else if e.is_builder() {
            (ErrorClass::BadConfig, false)
        } else {
            (ErrorClass::Network, true)
        };
        // The innermost cause ("connection refused", "unexpected EOF") without
        // the URL; the host is enough to act on.
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let host = e
            .url()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let what = if e.is_connect() {
            "could not connect to"
        } else if e.is_builder() {
            "could not build a request for"
        } else {
            "lost the connection to"
        };
        Verdict::Fail {
            failure: Failure::new(class, format!("{what} {} ({host}): {cause}", self.name)),
            retryable,
            wait: None,
        }
    }

    fn judge(
        &self,
        step: Step,
        expect: &[Expect],
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Verdict {
        let request_id = REQUEST_ID_HEADERS
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .map(str::to_string);
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let slack_refusal = self.provider == ConnectorKey::SlackEnterprise
            && json
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(Value::as_bool)
                == Some(false);
        if (200..300).contains(&status) && !slack_refusal {
            return Verdict::Done(Response {
                status,
                headers,
                body,
                error: None,
                request_id,
            });
        }
        let err = parse_error(step, status, json.as_ref(), &body);
        if expect.iter().any(|x| match x {
            Expect::Code(c) => err.code.as_deref() == Some(*c),
            Expect::Status(s) => *s == status,
        }) {
            return Verdict::Done(Response {
                status,
                headers,
                body,
                error: Some(err),
                request_id,
            });
        }
        let google_rate = self.provider == ConnectorKey::GoogleWorkspace
            && status == 403
            && GOOGLE_RATE_REASONS.contains(&err.code());
        let retryable = status == 429 || status >= 500 || google_rate;
        let wait = retry_after(&headers)
            .or_else(|| (status == 429).then(|| okta_reset_wait(&headers)).flatten());
        let mut failure = self.failure_of(&err);
        if google_rate {
            failure.class = ErrorClass::RateLimited;
        }
        failure.provider_request_id = request_id;
        Verdict::Fail {
            failure,
            retryable,
            wait,
        }
    }

    /// The failure an error answer stands for.
    pub fn failure_of(&self, err: &ApiError) -> Failure {
        let (class, message) = (self.explain)(err).unwrap_or_else(|| self.generic(err));
        Failure {
            class,
            http_status: Some(err.status),
            provider_code: err.code.clone(),
            provider_request_id: None,
            attempts: 1,
            message: self.scrub(message),
        }
    }

    /// The failure an expected-but-unhandled answer stands for.
    pub fn failure(&self, resp: &Response) -> Failure {
        match &resp.error {
            Some(err) => {
                let mut f = self.failure_of(err);
                f.provider_request_id = resp.request_id.clone();
                f
            }
            None => self.unexpected(resp, "a success where an error was expected"),
        }
    }

    /// A 2xx answer whose body is not what the API documents.
    pub fn unexpected(&self, resp: &Response, what: impl std::fmt::Display) -> Failure {
        let mut f = Failure::new(
            ErrorClass::ProviderError,
            format!("unexpected answer from {}: {what}", self.name),
        );
        f.http_status = Some(resp.status);
        f.provider_request_id = resp.request_id.clone();
        f.attempts = 1;
        f
    }

    pub fn json<T: DeserializeOwned>(&self, resp: &Response) -> Result<T, Failure> {
        serde_json::from_slice(&resp.body).map_err(|e| self.unexpected(resp, e))
    }

    fn generic(&self, e: &ApiError) -> (ErrorClass, String) {
        let p = self.name;
        let code = e
            .code
            .as_deref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let said = e.said();
        match e.status {
            401 => (
                ErrorClass::Unauthorized,
                format!("{p} rejected Sever's credentials (HTTP 401{code}){said}; check the configured secret"),
            ),
            403 => (ErrorClass::Forbidden, format!("{p} refused (HTTP 403{code}){said}")),
            429 => (
                ErrorClass::RateLimited,
                format!("{p} is rate limiting Sever (HTTP 429{code})"),
            ),
            s if s >= 500 => (
                ErrorClass::ProviderError,
                format!("{p} had a server error (HTTP {s}{code}){said}"),
            ),
            s => (ErrorClass::ProviderError, format!("{p} answered HTTP {s}{code}{said}")),
        }
    }

    fn scrub(&self, mut message: String) -> String {
        for s in &self.secrets {
            let s = s.expose_secret();
            if s.len() >= 4 && message.contains(s) {
                message = message.replace(s, "[redacted]");
            }
        }
        message
    }
}

/// One HTTP exchange, body included, so a connection dropped mid-body fails
/// the attempt (and is retried) instead of surfacing later.
async fn exchange(req: RequestBuilder) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?.to_vec();
    Ok((status, headers, body))
}

/// Parse whichever error envelope the body uses: Okta `{errorCode,errorSummary}`,
/// Graph `{error:{code,message}}`, Google `{error:{errors:[{reason}],message}}`,
/// Slack `{ok:false,error,needed}`, OAuth `{error,error_description,error_codes}`,
/// Miro `{status,code,message}`.
fn parse_error(step: Step, status: u16, json: Option<&Value>, body: &[u8]) -> ApiError {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let mut e = ApiError {
        step,
        status,
        code: None,
        message: None,
        needed: None,
    };
    match json {
        Some(v) if v.get("errorCode").is_some() => {
            e.code = v.get("errorCode").and_then(s);
            e.message = v.get("errorSummary").and_then(s);
        }
        Some(v) if v.get("error").is_some_and(Value::is_object) => {
            let err = &v["error"];
            e.code = err["errors"][0]["reason"]
                .as_str()
                .or(err["code"].as_str())
                .map(str::to_string);
            e.message = err.get("message").and_then(s);
        }
        Some(v) if v.get("error").is_some_and(Value::is_string) => {
            e.code = match v["error_codes"][0].as_u64() {
                Some(n) => Some(format!("AADSTS{n}")),
                None => v.get("error").and_then(s),
            };
            // Entra: "AADSTS7000215: <what>\r\nTrace ID: …" — keep only <what>.
            e.message = v.get("error_description").and_then(s).map(|d| {
                let d = d.split(" Trace ID:").next().unwrap_or(&d).to_string();
                match (&e.code, d.split_once(": ")) {
                    (Some(c), Some((head, rest))) if head == c => rest.to_string(),
                    _ => d,
                }
            });
            e.needed = v.get("needed").and_then(s);
        }
        Some(v) if v.get("code").is_some_and(Value::is_string) => {
            e.code = v.get("code").and_then(s);
            e.message = v.get("message").and_then(s);
        }
        Some(_) => {}
        None => {
            // Plain-text errors (proxies, gateways): show the start of it.
            let text = String::from_utf8_lossy(body);
            if !text.trim().is_empty() && !text.trim_start().starts_with('<') {
                e.message = Some(text.into_owned());
            }
        }
    }
    e.message = e.message.as_deref().map(one_line).filter(|m| !m.is_empty());
    e
}

/// First line, trimmed, at most 300 characters.
fn one_line(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// `Retry-After` as delta-seconds or an HTTP-date (compared with the
/// response's `Date` when present, so a skewed local clock does not matter).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let now = server_now(headers);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Okta's `X-Rate-Limit-Reset` (UTC epoch seconds), relative to the
/// response's `Date` header when present.
fn okta_reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-rate-limit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let at = std::time::UNIX_EPOCH + Duration::from_secs(reset);
    Some(
        at.duration_since(server_now(headers))
            .unwrap_or(Duration::ZERO),
    )
}

fn server_now(headers: &HeaderMap) -> std::time::SystemTime {
    headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or_else(std::time::SystemTime::now)
}

/// A next-page link a provider returned (Okta's `Link`, Graph's
/// `@odata.nextLink`), refused unless it stays under the configured base
/// URL: following it sends credentials.
pub(crate) fn next_link(api: &Api, base: &str, link: &str) -> Result<String, Failure> {
    let base = base.trim_end_matches('/');
    match link.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') || rest.starts_with('?') => Ok(link.to_string()),
        _ => Err(Failure::new(
            ErrorClass::ProviderError,
            format!(
                "{} returned a next-page link outside the configured base_url; not following it",
                api.name
            ),
        )),
    }
}

/// The `rel="next"` target of RFC 8288 `Link` headers, if any.
pub(crate) fn link_rel_next(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (target, params) = part.trim().split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
            });
            is_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

/// One check of `connectors test`: a success detail, or the failure's class and message.
pub(crate) fn check(name: &str, r: Result<String, Failure>) -> Check {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(f) => (false, format!("{}: {}", f.class, f.message)),
    };
    Check {
        name: name.to_string(),
        ok,
        detail,
    }
}

/// A login no directory holds, to prove lookups answer "not found" rather than 401/403.
pub(crate) fn absent_user() -> Result<Username, Failure> {
    Username::parse(&format!(
        "sever-test-{}@example.invalid",
        uuid::Uuid::new_v4().simple()
    ))
    .map_err(|e| Failure::new(ErrorClass::BadConfig, e.to_string()))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn the_next_link_is_read_from_any_link_header_and_kept_under_the_base() {
        let mut h = HeaderMap::new();
        h.append(
            "link",
            HeaderValue::from_static("<https://o.example/api/v1/users?limit=2>; rel=\"self\""),
        );
        assert_eq!(link_rel_next(&h), None);
        h.append(
            "link",
            HeaderValue::from_static(
                "<https://o.example/api/v1/users?after=00u2&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            link_rel_next(&h).as_deref(),
            Some("https://o.example/api/v1/users?after=00u2&limit=2")
        );
        let api = Api::new(
            &crate::HttpClient::new().unwrap(),
            ConnectorKey::Okta,
            "Okta",
            Auth::Header(HeaderValue::from_static("SSWS x")),
            |_| None,
            vec![],
        );
        assert!(next_link(
            &api,
            "https://o.example",
            "https://o.example/api/v1/users?after=1"
        )
        .is_ok());
        assert!(next_link(&api, "https://o.example", "https://o.example.evil/api").is_err());
        assert!(next_link(&api, "https://o.example", "https://elsewhere/api").is_err());
    }

    #[test]
    fn values_are_encoded_as_one_component() {
        assert_eq!(enc("a.b@x.com"), "a.b%40x.com");
        assert_eq!(enc("o'neil#EXT# x/y"), "o%27neil%23EXT%23%20x%2Fy");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_relative_to_the_date_header() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:02 GMT"),
        );
        h.insert(
            DATE,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.remove(RETRY_AFTER);
        assert_eq!(retry_after(&h), None);
        // 2015-10-21T07:28:05Z
        h.insert("x-rate-limit-reset", HeaderValue::from_static("1445412485"));
        assert_eq!(okta_reset_wait(&h), Some(Duration::from_secs(5)));
    }

    #[test]
    fn every_error_envelope_yields_its_code_and_first_line() {
        let p = |v: Value| parse_error(Step::Lookup, 400, Some(&v), b"");
        let e = p(serde_json::json!({"errorCode":"E0000007","errorSummary":"Not found: x"}));
        assert_eq!(
            (e.code(), e.message.as_deref()),
            ("E0000007", Some("Not found: x"))
        );
        let e = p(
            serde_json::json!({"error":{"code":"Authorization_RequestDenied","message":"Insufficient"}}),
        );
        assert_eq!(e.code(), "Authorization_RequestDenied");
        let e = p(
            serde_json::json!({"error":{"code":404,"message":"m","errors":[{"reason":"notFound"}]}}),
        );
        assert_eq!(e.code(), "notFound");
        let e =
            p(serde_json::json!({"ok":false,"error":"missing_scope","needed":"admin.users:write"}));
        assert_eq!(
            (e.code(), e.needed.as_deref()),
            ("missing_scope", Some("admin.users:write"))
        );
        let e = p(
            serde_json::json!({"error":"invalid_client","error_description":"AADSTS7000215: bad.\r\nTrace ID: 1","error_codes":[7000215]}),
        );
        assert_eq!(
            (e.code(), e.message.as_deref()),
            ("AADSTS7000215", Some("bad."))
        );
        let e = p(
            serde_json::json!({"error":"invalid_request","error_description":"AADSTS900144: The body must hold 'x'. Trace ID: 1 Correlation ID: 2","error_codes":[900144]}),
        );
        assert_eq!(e.message.as_deref(), Some("The body must hold 'x'."));
        let e =
            p(serde_json::json!({"status":404,"code":"notFound","message":"no","type":"error"}));
        assert_eq!(e.code(), "notFound");
        let e = parse_error(Step::Lookup, 502, None, b"<html>bad gateway</html>");
        assert_eq!(e.message, None);
    }
}
