//! The UI's static files, compiled into the binary so `sever serve` needs
//! nothing beside it and loads nothing from a CDN. URLs carry a digest of
//! the files (`?v=…`), so browsers may cache them for good and still get a
//! new version the moment the binary changes.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// npm `htmx.org` 2.0.11, `dist/htmx.min.js` (0BSD), unchanged.
const HTMX: &[u8] = include_bytes!("../../static/htmx.min.js");
const APP_JS: &[u8] = include_bytes!("../../static/app.js");
const CSS: &[u8] = include_bytes!("../../static/sever.css");

const FILES: [(&str, &str, &[u8]); 3] = [
    ("htmx.min.js", "text/javascript; charset=utf-8", HTMX),
    ("app.js", "text/javascript; charset=utf-8", APP_JS),
    ("sever.css", "text/css; charset=utf-8", CSS),
];

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (_, _, bytes) in FILES {
        h.update(bytes);
    }
    hex::encode(&h.finalize()[..6])
});

/// The digest the pages append to asset URLs.
pub(crate) fn version() -> &'static str {
    VERSION.as_str()
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
