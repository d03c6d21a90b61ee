//! API errors in the Kubernetes `Status` shape: code, reason, message, and field causes.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use nanocl_api_types::manifest::{ErrorClass, ManifestError};
use serde_json::json;

use crate::store::StoreError;

/// One field-level cause of an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error answered as a `Status` object.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub code: StatusCode,
    /// A CamelCase word a client can branch on.
    pub reason: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Field causes, for validation errors.
    pub causes: Vec<Cause>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// 400: the request cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 403: allowed by nobody, e.g. deleting the `global` namespace.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 405: the path exists but not for this method.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    /// 409, reason AlreadyExists.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "AlreadyExists", message)
    }

    /// 409, reason Conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// 409, reason NamespaceTerminating: no new objects in a namespace being deleted.
    pub fn namespace_terminating(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "NamespaceTerminating", message)
    }

    /// 410: the requested revision is too old.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }

    /// 415.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// 422 with causes.
    pub fn invalid(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        ApiError {
            causes,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
        }
    }

    /// 503: the store is not answering.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// 507: the store has no room; nothing was written.
    pub fn store_full(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorage",
            message,
        )
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// Decoding errors of a request body: 422 when the object is well-formed but invalid,
    /// 400 otherwise; every error becomes a cause.
    pub fn from_manifest_errors(errors: &[ManifestError]) -> Self {
        let causes: Vec<Cause> = errors
            .iter()
            .map(|e| Cause {
                field: e
                    .field
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                message: format!(
                    "{} (line {}, column {})",
                    e.message, e.pos.line, e.pos.column
                ),
            })
            .collect();
        let summary = errors
            .iter()
            .map(|e| match &e.field {
                Some(f) if !f.is_root() => format!("{f}: {}", e.message),
                _ => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if errors.iter().all(|e| e.class == ErrorClass::Invalid) {
            ApiError::invalid(format!("the object is invalid: {summary}"), causes)
        } else {
            ApiError {
                causes,
                ..ApiError::bad_request(format!(
                    "the request body is not a valid object: {summary}"
                ))
            }
        }
    }

    /// The `Status` body.
    pub fn to_json(&self) -> serde_json::Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": self.code.as_u16(),
            "reason": self.reason,
            "message": self.message,
        });
        if !self.causes.is_empty() {
            status["details"] = json!({
                "causes": self.causes.iter().map(|c| json!({
                    "field": c.field,
                    "message": c.message,
                    "reason": "FieldValueInvalid",
                })).collect::<Vec<_>>()
            });
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_json().to_string() + "\n",
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::AlreadyExists { key, .. } => ApiError::already_exists(format!("{key} already exists")),
            StoreError::NotFound { key } => ApiError::not_found(format!("{key} not found")),
            StoreError::Conflict { .. } => ApiError::conflict(
                "the object has been modified since it was read; read it again and retry (resourceVersion mismatch)",
            ),
            StoreError::Gone { requested, oldest } => ApiError::gone(format!(
                "resourceVersion {requested} is too old (oldest available: {oldest}); list again and watch from the list's resourceVersion"
            )),
            StoreError::Full { .. } => ApiError::store_full(e.to_string()),
            _ if e.is_transient() => ApiError::unavailable(format!("the store is not answering: {}", error_chain(&e))),
            _ => ApiError::internal(format!("store failure: {}", error_chain(&e))),
        }
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
