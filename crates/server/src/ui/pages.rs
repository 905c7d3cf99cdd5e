//! Small pages: the start page and unknown addresses.

use axum::response::{IntoResponse, Redirect, Response};
use sever_core::admin::Scope;

use super::{UiError, WebUser};

/// People who may revoke start on the Responder; everyone else on the Dashboard.
pub(crate) async fn home(user: WebUser) -> Response {
    if user.can(Scope::SessionsRevoke) {
        Redirect::to("/ui/responder").into_response()
    } else {
        Redirect::to("/ui/dashboard").into_response()
    }
}

pub(crate) async fn not_found(user: WebUser) -> UiError {
    UiError::not_found("There is no such page.").within(&user)
}
