//! Request pipeline: who is asking (session or bearer token), CSRF, and the
//! response headers every page carries.

use app::auth::ssr::{
    actor_for_session, actor_for_token, SESSION_CSRF, SESSION_LOGIN_AT, SESSION_STAMP, SESSION_USER,
};
use app::error::AppError;
use app::ssr::{random_token, Actor, AppState, ClientIp, CsrfToken};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::Method;
use std::net::{IpAddr, SocketAddr};
use tower_sessions::Session;
use uuid::Uuid;

/// Marks a request authenticated by `Authorization: Bearer`: it carries no
/// ambient credential, so it needs no CSRF token.
#[derive(Clone, Copy)]
pub struct BearerAuth;

fn client_ip(req: &Request, trust_forwarded: bool) -> Option<IpAddr> {
    if trust_forwarded {
        // The right-most entry is the one our own proxy appended.
        let fwd = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        if fwd.is_some() {
            return fwd;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn wants_html(req: &Request) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// Resolves the acting user once per request and puts it, the CSRF token
/// and the client address into the request extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req, state.auth.trust_forwarded_for);
    req.extensions_mut().insert(ClientIp(ip));

    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(str::trim)
        });
    match bearer {
        Some(Some(token)) => match actor_for_token(&state.db, &state.auth, token).await {
            Ok(Some(actor)) => {
                req.extensions_mut().insert(actor);
                req.extensions_mut().insert(BearerAuth);
                return next.run(req).await;
            }
            Ok(None) => return AppError::Unauthenticated.into_response(),
            Err(e) => return e.into_response(),
        },
        Some(None) => {
            return AppError::BadRequest("Only Bearer tokens are accepted in Authorization.".into())
                .into_response()
        }
        None => {}
    }

    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return next.run(req).await;
    };
    match session_actor(&state, &session).await {
        Ok(Some(actor)) => {
            req.extensions_mut().insert(actor);
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    // A token exists for every signed-in session and every page view, so
    // forms rendered on a page can always post.
    let signed_in = req.extensions().get::<Actor>().is_some();
    let csrf = match session.get::<String>(SESSION_CSRF).await {
        Ok(Some(t)) => t,
        Ok(None) if signed_in || wants_html(&req) => {
            let t = random_token(32);
            if let Err(e) = session.insert(SESSION_CSRF, &t).await {
                return AppError::from(e).into_response();
            }
            t
        }
        Ok(None) => String::new(),
        Err(e) => return AppError::from(e).into_response(),
    };
    req.extensions_mut().insert(CsrfToken(csrf));
    next.run(req).await
}

async fn session_actor(state: &AppState, session: &Session) -> Result<Option<Actor>, AppError> {
    let Some(uid) = session.get::<Uuid>(SESSION_USER).await? else {
        return Ok(None);
    };
    let login_at = session.get::<i64>(SESSION_LOGIN_AT).await?.unwrap_or(0);
    let age = chrono::Utc::now().timestamp().saturating_sub(login_at);
    // Valid while younger than the absolute lifetime, however active.
    if age < 0 || age as u64 >= state.auth.absolute_session.as_secs() {
        session.flush().await?;
        return Ok(None);
    }
    let stamp = session.get::<String>(SESSION_STAMP).await?;
    match actor_for_session(&state.db, uid).await? {
        Some((a, current)) if stamp.as_deref() == Some(current.as_str()) => Ok(Some(a)),
        _ => {
            // Disabled or deleted since sign-in, or the password changed
            // (here or by an administrator): the session ends now.
            session.flush().await?;
            Ok(None)
        }
    }
}

/// Routes that start a session and so cannot have a token yet.
const CSRF_EXEMPT: &[&str] = &["/api/v1/auth/login", "/sfn/login", "/sfn/register"];

/// Refuses cookie-authenticated state changes without the session's token,
/// given as `X-CSRF-Token` or as the `_csrf` field of a urlencoded form.
pub async fn csrf(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.extensions().get::<BearerAuth>().is_some()
        || CSRF_EXEMPT.contains(&req.uri().path())
    {
        return next.run(req).await;
    }
    let expected = req
        .extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    if expected.is_empty() {
        return AppError::Csrf.into_response();
    }
    if let Some(h) = req.headers().get("x-csrf-token") {
        return if ct_eq(h.as_bytes(), expected.as_bytes()) {
            next.run(req).await
        } else {
            AppError::Csrf.into_response()
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return AppError::Csrf.into_response();
    }
    let limit = req.extensions().get::<BodyLimit>().map_or(1 << 20, |l| l.0);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return AppError::TooLarge("limit for forms".into()).into_response(),
    };
    let given = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.into_owned());
    match given {
        Some(t) if ct_eq(t.as_bytes(), expected.as_bytes()) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => AppError::Csrf.into_response(),
    }
}

/// The body limit in force, for middleware that has to read a body.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Headers every response carries. `hsts`: the public URL is https, so
/// browsers are told to use nothing else.
pub async fn security_headers(State(hsts): State<bool>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    // Pages and API answers hold patient data: no shared or disk cache
    // keeps them (rendered images and the wasm set their own policy).
    let dynamic = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("text/html") || t.starts_with("application/json") || t.contains("+json")
        });
    if dynamic && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // Pages set their own policy with a nonce; everything else (files,
    // JSON, errors) runs no inline script at all.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{}; script-src 'self' 'wasm-unsafe-eval'",
            app::ssr::CSP_BASE
        )) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
}

/// The signed-in user of a REST request (401 otherwise; 403 while a
/// one-time password is still to be changed).
pub struct User(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let a = parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(AppError::Unauthenticated)?;
        if a.must_change_password {
            return Err(AppError::PasswordChangeRequired);
        }
        Ok(User(a))
    }
}

/// Like [`User`] but also accepts an account that must change its password.
pub struct AnyUser(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for AnyUser {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(AnyUser)
            .ok_or(AppError::Unauthenticated)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for AnyUser {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Actor>().cloned().map(AnyUser))
    }
}
