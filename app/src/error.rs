//! The one error type of the application layer. Every variant has a stable
//! `code` that survives the network (REST bodies and server functions), and a
//! message that is safe to show: internal causes are logged once where they
//! are converted and never sent.

use crate::domain::FieldError;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// On the wire (server functions) an error is `{"code", "message",
/// "fields"?}`, the same shape as the REST body's `error`. serde cannot
/// tag the newtype variants internally, so it goes through [`WireError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(into = "WireError", from = "WireError")]
pub enum AppError {
    #[error("Please sign in.")]
    Unauthenticated,
    #[error("The e-mail or password is not correct, or the account is not active yet.")]
    BadCredentials,
    #[error("You do not have permission to do this.")]
    Forbidden,
    #[error("Not found.")]
    NotFound,
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("The request is larger than this server accepts ({0}).")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Too many attempts. Please wait a minute and try again.")]
    RateLimited,
    #[error(
        "The security token of this form is missing or expired. Reload the page and try again."
    )]
    Csrf,
    #[error("You must choose a new password before continuing.")]
    PasswordChangeRequired,
    #[error("Something went wrong on the server. The error has been logged.")]
    Internal,
    /// A service the request needs is down for now (the image store):
    /// nothing was changed, and trying again later is the right answer.
    #[error("{0}")]
    Unavailable(String),
    #[error("Could not reach the server: {0}")]
    Transport(String),
}

impl AppError {
    /// A validation error listing every refused field.
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            _ => "Some fields need attention.".to_owned(),
        };
        AppError::Invalid { message, fields }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "unauthenticated",
            AppError::BadCredentials => "bad_credentials",
            AppError::Forbidden => "forbidden",
            AppError::NotFound => "not_found",
            AppError::Invalid { .. } => "invalid",
            AppError::Conflict(_) => "conflict",
            AppError::BadRequest(_) => "bad_request",
            AppError::TooLarge(_) => "too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::RateLimited => "rate_limited",
            AppError::Csrf => "csrf",
            AppError::PasswordChangeRequired => "password_change_required",
            AppError::Internal => "internal",
            AppError::Unavailable(_) => "unavailable",
            AppError::Transport(_) => "transport",
        }
    }

    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AppError::Unauthenticated | AppError::BadCredentials => S::UNAUTHORIZED,
            AppError::Forbidden | AppError::Csrf | AppError::PasswordChangeRequired => S::FORBIDDEN,
            AppError::NotFound => S::NOT_FOUND,
            AppError::Invalid { .. } => S::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::BadRequest(_) => S::BAD_REQUEST,
            AppError::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => S::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited => S::TOO_MANY_REQUESTS,
            AppError::Internal => S::INTERNAL_SERVER_ERROR,
            AppError::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            AppError::Transport(_) => S::BAD_GATEWAY,
        }
    }

    /// The message for one field, for showing it next to that field.
    pub fn field_message(&self, name: &str) -> Option<String> {
        match self {
            AppError::Invalid { fields, .. } => fields
                .iter()
                .find(|f| f.field == name)
                .map(|f| f.message.clone()),
            _ => None,
        }
    }

    /// The `{"error": {...}}` body of REST responses.
    pub fn to_json(&self) -> serde_json::Value {
        let mut e = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let AppError::Invalid { fields, .. } = self {
            e["fields"] = serde_json::json!(fields);
        }
        serde_json::json!({ "error": e })
    }
}

#[derive(Serialize, Deserialize)]
struct WireError {
    code: String,
    message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldError>,
}

impl From<AppError> for WireError {
    fn from(e: AppError) -> Self {
        let code = e.code().to_owned();
        match e {
            AppError::Invalid { message, fields } => WireError {
                code,
                message,
                fields,
            },
            AppError::Conflict(m)
            | AppError::BadRequest(m)
            | AppError::TooLarge(m)
            | AppError::UnsupportedMediaType(m)
            | AppError::Transport(m) => WireError {
                code,
                message: m,
                fields: Vec::new(),
            },
            other => WireError {
                code,
                message: other.to_string(),
                fields: Vec::new(),
            },
        }
    }
}

impl From<WireError> for AppError {
    fn from(w: WireError) -> Self {
        match w.code.as_str() {
            "unauthenticated" => AppError::Unauthenticated,
            "bad_credentials" => AppError::BadCredentials,
            "forbidden" => AppError::Forbidden,
            "not_found" => AppError::NotFound,
            "invalid" => AppError::Invalid {
                message: w.message,
                fields: w.fields,
            },
            "conflict" => AppError::Conflict(w.message),
            "bad_request" => AppError::BadRequest(w.message),
            "too_large" => AppError::TooLarge(w.message),
            "unsupported_media_type" => AppError::UnsupportedMediaType(w.message),
            "rate_limited" => AppError::RateLimited,
            "csrf" => AppError::Csrf,
            "password_change_required" => AppError::PasswordChangeRequired,
            "transport" => AppError::Transport(w.message),
            "unavailable" => AppError::Unavailable(w.message),
            _ => AppError::Internal,
        }
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        AppError::invalid(vec![e])
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) => {
                AppError::BadRequest(format!("The request could not be read: {m}"))
            }
            ServerFnErrorErr::Request(m) | ServerFnErrorErr::Response(m) => AppError::Transport(m),
            other => {
                #[cfg(feature = "ssr")]
                tracing::error!(error = %other, "server function failed");
                #[cfg(not(feature = "ssr"))]
                let _ = other;
                AppError::Internal
            }
        }
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::AppError;

    const DB_DOWN: &str =
        "The database is not answering right now; nothing was changed. Try again in a moment.";

    impl From<sea_orm::DbErr> for AppError {
        fn from(e: sea_orm::DbErr) -> Self {
            tracing::error!(error = %e, "database error");
            match e {
                // Not a bug in the request: the database restarting or out
                // of connections. 503 tells clients (and proxies) to retry.
                sea_orm::DbErr::Conn(_) | sea_orm::DbErr::ConnectionAcquire(_) => {
                    AppError::Unavailable(DB_DOWN.into())
                }
                _ => AppError::Internal,
            }
        }
    }

    impl From<sea_orm::TransactionError<AppError>> for AppError {
        fn from(e: sea_orm::TransactionError<AppError>) -> Self {
            match e {
                sea_orm::TransactionError::Connection(db) => db.into(),
                sea_orm::TransactionError::Transaction(app) => app,
            }
        }
    }

    impl From<tower_sessions::session::Error> for AppError {
        fn from(e: tower_sessions::session::Error) -> Self {
            // Sessions live in the database: its failing (a restart, lost
            // connections) is an outage to retry, not a server bug.
            tracing::error!(error = %e, "session store error");
            AppError::Unavailable(DB_DOWN.into())
        }
    }

    /// The one place application errors become HTTP responses.
    impl axum::response::IntoResponse for AppError {
        fn into_response(self) -> axum::response::Response {
            (self.status(), axum::Json(self.to_json())).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Server functions send errors as JSON; each must come back as itself
    /// (a newtype variant once failed to serialize and became a 500).
    #[test]
    fn every_error_survives_the_wire() {
        let all = vec![
            AppError::Unauthenticated,
            AppError::BadCredentials,
            AppError::Forbidden,
            AppError::NotFound,
            AppError::invalid(vec![FieldError::new("age", "must be a whole number")]),
            AppError::Conflict("The case is closed.".into()),
            AppError::BadRequest("The request could not be read.".into()),
            AppError::TooLarge("limit for uploads".into()),
            AppError::RateLimited,
            AppError::Csrf,
            AppError::PasswordChangeRequired,
            AppError::Internal,
            AppError::Transport("connection reset".into()),
        ];
        for e in all {
            let text = serde_json::to_string(&e).expect("serializes");
            let v: serde_json::Value = serde_json::from_str(&text).expect("json");
            assert_eq!(v["code"], e.code(), "{text}");
            let back: AppError = serde_json::from_str(&text).expect("deserializes");
            assert_eq!(back, e, "{text}");
        }
    }
}
