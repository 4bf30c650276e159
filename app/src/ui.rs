//! Small shared components: form errors, the CSRF field, problems, header.

use crate::auth::{get_session, SessionInfo};
use crate::domain::Role;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::components::A;

/// The session's CSRF token: from the request on the server, from the page's
/// `<meta name="csrf-token">` in the browser.
pub fn csrf_token() -> String {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|p| {
                p.extensions
                    .get::<crate::ssr::CsrfToken>()
                    .map(|t| t.0.clone())
            })
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        #[cfg(feature = "hydrate")]
        {
            web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.query_selector("meta[name=csrf-token]").ok().flatten())
                .and_then(|e| e.get_attribute("content"))
                .unwrap_or_default()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            String::new()
        }
    }
}

/// Marks the document once hydration has finished (`<html data-hydrated>`):
/// browser tests wait for it before they click, and a page whose hydration
/// failed never gets it.
#[cfg(feature = "hydrate")]
pub fn mark_hydrated() {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-hydrated", "");
    }
}

/// Hidden form field carrying the CSRF token; every state-changing form has one.
#[component]
pub fn CsrfField() -> impl IntoView {
    view! { <input type="hidden" name="_csrf" value=csrf_token()/> }
}

/// A full page load (not client-side routing), used after sign-in and
/// sign-out so every part of the page reflects the new session.
pub fn navigate_full(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// The message of a failed action, unless it is a per-field error shown
/// next to its fields.
#[component]
pub fn FormError<V, T>(value: V) -> impl IntoView
where
    V: With<Value = Option<Result<T, AppError>>> + Copy + Send + Sync + 'static,
    T: 'static,
{
    move || {
        value.with(|v| match v {
            Some(Err(AppError::Invalid { fields, message })) if fields.len() > 1 => {
                Some(view! { <p class="error" role="alert">{message.clone()}</p> }.into_any())
            }
            Some(Err(AppError::Invalid { .. })) => None,
            Some(Err(e)) => {
                Some(view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any())
            }
            _ => None,
        })
    }
}

/// The error for one field, shown under it.
#[component]
pub fn FieldErr<V, T>(value: V, name: &'static str) -> impl IntoView
where
    V: With<Value = Option<Result<T, AppError>>> + Copy + Send + Sync + 'static,
    T: 'static,
{
    move || {
        value.with(|v| match v {
            Some(Err(e)) => e
                .field_message(name)
                .map(|m| view! { <span class="field-error" role="alert">{m}</span> }),
            _ => None,
        })
    }
}

/// Renders an error in place of a page's content.
#[component]
pub fn Problem(error: AppError) -> impl IntoView {
    match error {
        AppError::Unauthenticated => view! {
            <section class="card narrow"><h1>"Please sign in"</h1>
                <p><a href="/login">"Go to sign-in"</a></p></section>
        }
        .into_any(),
        AppError::PasswordChangeRequired => view! {
            <section class="card narrow"><h1>"Choose a new password"</h1>
                <p>"Your account has a one-time password. " <a href="/profile">"Set your own password"</a> " to continue."</p></section>
        }
        .into_any(),
        AppError::NotFound => view! { <NotFound/> }.into_any(),
        e => view! {
            <section class="card narrow"><h1>"Cannot show this page"</h1>
                <p class="error">{e.to_string()}</p></section>
        }
        .into_any(),
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
        r.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="card narrow">
            <h1>"Not found"</h1>
            <p>"There is nothing here, or you do not have access to it."</p>
            <A href="/cases">"Back to cases"</A>
        </section>
    }
}

/// The session, loaded once per page and shared through context.
pub type SessionResource = Resource<Result<SessionInfo, AppError>>;

/// Unread mentions, linking to the notifications page. The resource is
/// made by the header, outside its reactive closure: a resource created in
/// a closure that re-runs would shift the ids of every later resource and
/// break hydration.
#[component]
fn NotificationBadge(
    n: Resource<Result<(Vec<crate::chat::NotificationDto>, u64), AppError>>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || n.get().and_then(|r| r.ok()).map(|(_, unread)| view! {
                <A href="/notifications" attr:class="notifications-link" attr:aria-label=format!("{unread} unread notifications")>
                    "Mentions"{(unread > 0).then(|| view! { <span class="badge unread">{unread}</span> })}
                </A>
            })}
        </Transition>
    }
}

#[component]
pub fn Header() -> impl IntoView {
    let session = expect_context::<SessionResource>();
    let notes = Resource::new(|| (), |_| crate::chat::notifications());
    view! {
        <header class="topbar">
            <a class="brand" href="/cases">
                <span class="logo" aria-hidden="true">"◎"</span>" MedVision"
            </a>
            <Transition fallback=|| ()>
                {move || session.get().map(|s| match s.ok().and_then(|s| s.user) {
                    Some(u) => view! {
                        <nav class="nav">
                            <A href="/cases">"Cases"</A>
                            <A href="/cases/new">"New case"</A>
                            <A href="/analytics">"Analytics"</A>
                            {(u.role == Role::Admin).then(|| view! { <A href="/admin/users">"Users"</A><A href="/admin/audit">"Audit"</A> })}
                        </nav>
                        <div class="who">
                            <NotificationBadge n=notes/>
                            <A href="/profile">{u.name.clone()}</A>
                            <span class="badge">{u.role.label()}</span>
                            <span class="muted org">{u.org.clone()}</span>
                            <form method="post" action="/logout" class="inline">
                                <CsrfField/>
                                <button type="submit" class="link">"Sign out"</button>
                            </form>
                        </div>
                    }
                    .into_any(),
                    None => view! {
                        <div class="who"><A href="/login">"Sign in"</A><A href="/register">"Request account"</A></div>
                    }
                    .into_any(),
                })}
            </Transition>
        </header>
        <p class="disclaimer">"Decision support only. AI output is a suggestion and never a diagnosis; a clinician decides."</p>
    }
}

/// Formats a timestamp for tables (UTC, minutes).
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Loads the session into context for the header and the guards.
pub fn provide_session() {
    let session: SessionResource = Resource::new(|| (), |_| get_session());
    provide_context(session);
}
