//! Errors as HTTP responses in OpenAI's error shape, through `harken_api::ErrorInfo`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use harken_core::ErrorKind;

/// A request failure: its kind decides the status; `message` is shown to the client for 4xx.
#[derive(Debug)]
pub struct ApiError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// One line for the client.
    pub message: String,
    /// Overrides the code of the kind (e.g. `invalid_api_key`).
    pub code: Option<&'static str>,
    /// Overrides the status of the kind (e.g. 401).
    pub status: Option<StatusCode>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into(), code: None, status: None }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// 401 for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        ApiError {
            kind: ErrorKind::InvalidInput,
            message: "missing or invalid API key (send Authorization: Bearer <key>)".into(),
            code: Some("invalid_api_key"),
            status: Some(StatusCode::UNAUTHORIZED),
        }
    }
}

impl ApiError {
    /// The OpenAI error object (`{message, type, code, param}`), for event streams where the
    /// status line has already gone.
    pub fn to_json(&self) -> serde_json::Value {
        let info = harken_api::ErrorInfo::of(self.kind);
        let message = if self.kind == ErrorKind::Internal {
            tracing::error!(error = %self.message, "internal error");
            "internal error; see the server log"
        } else {
            &self.message
        };
        serde_json::json!({"message": message, "type": info.openai_type, "code": self.code.unwrap_or(info.code), "param": null})
    }
}

impl From<harken_engine::Error> for ApiError {
    fn from(e: harken_engine::Error) -> Self {
        ApiError::new(e.kind(), format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = harken_api::ErrorInfo::of(self.kind);
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(info.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let message = if status.is_server_error() && self.kind == ErrorKind::Internal {
            tracing::error!(error = %self.message, "internal error");
            "internal error; see the server log".to_owned()
        } else {
            self.message
        };
        let body = serde_json::json!({
            "error": {"message": message, "type": info.openai_type, "code": self.code.unwrap_or(info.code), "param": null}
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(s) = info.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
