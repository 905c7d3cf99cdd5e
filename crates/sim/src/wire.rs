//! Plain request and reply values, so provider modules stay synchronous and free of hyper.
//!
//! A [`Req`] is the whole request already read (raw path and query kept for the call log,
//! decoded segments and parameters for routing); a [`Reply`] is status, headers and bytes.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::Value;

pub(crate) struct Req {
    pub method: String,
    /// Raw path as received.
    pub path: String,
    /// Raw query as received, without `?`.
    pub query: Option<String>,
    /// Percent-decoded, non-empty path segments.
    pub segments: Vec<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn new(
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Req {
        Req {
            method: method.to_string(),
            path: path.to_string(),
            query: query.map(str::to_string),
            segments: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
                .collect(),
            headers,
            body,
        }
    }

    pub fn segs(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(scheme, credential)` from the `Authorization` header.
    pub fn auth(&self) -> Option<(&str, &str)> {
        let v = self.header("authorization")?.trim();
        let (scheme, cred) = v.split_once(' ')?;
        Some((scheme, cred.trim()))
    }

    pub fn bearer(&self) -> Option<&str> {
        match self.auth() {
            Some((scheme, cred)) if scheme.eq_ignore_ascii_case("bearer") => Some(cred),
            _ => None,
        }
    }

    /// The auth scheme for the call log: a known scheme name, never the credential.
    pub fn auth_scheme(&self) -> Option<String> {
        let scheme = self.header("authorization")?.split_whitespace().next()?;
        ["SSWS", "Bearer", "Basic", "DPoP"]
            .into_iter()
            .find(|s| s.eq_ignore_ascii_case(scheme))
            .map(str::to_string)
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    pub fn is_json(&self) -> bool {
        self.content_type()
            .is_some_and(|ct| ct.trim_start().starts_with("application/json"))
    }

    pub fn query_params(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(parse_urlencoded)
            .unwrap_or_default()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_urlencoded(&String::from_utf8_lossy(&self.body))
    }

    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `http://host:port` as the client addressed this server, for links in answers.
    pub fn base(&self) -> String {
        format!("http://{}", self.header("host").unwrap_or("127.0.0.1"))
    }
}

pub(crate) fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// First value of `name` in decoded pairs.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, content_type: &'static str, v: &Value) -> Reply {
        Reply::text(status, content_type, v.to_string())
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", content_type.to_string())],
            body: body.into_bytes(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.headers.push((name, value.into()));
    }

    pub fn into_response(self) -> Response<Body> {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value.as_str());
        }
        builder.body(Body::from(self.body)).unwrap_or_else(|_| {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

/// Random ASCII letters and digits, for ids that only need to look right.
pub(crate) fn random_alnum(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

/// RFC 6749 error code and a description for an injected status at a token endpoint.
pub(crate) fn oauth_error_for(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "invalid_request",
            "The request is missing a required parameter or is otherwise malformed.",
        ),
        401 => ("invalid_client", "Client authentication failed."),
        403 => (
            "access_denied",
            "The client is not allowed to request an access token.",
        ),
        429 => ("slow_down", "Too many requests."),
        503 => (
            "temporarily_unavailable",
            "The authorization server is temporarily unavailable.",
        ),
        _ => (
            "server_error",
            "The authorization server encountered an unexpected condition.",
        ),
    }
}
