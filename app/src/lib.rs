//! The MedVision web application (Leptos). Pages, components and server
//! functions are grouped by feature; with the `ssr` feature each feature
//! also carries its data layer.

#![recursion_limit = "256"]

pub mod admin;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod chat;
pub mod domain;
pub mod error;
pub mod images;
pub mod pipeline;
pub mod report;
pub mod review;
pub mod sends;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::{path, SsrMode};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    ssr::content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="dark light"/>
                <meta name="csrf-token" content=ui::csrf_token()/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    ui::provide_session();
    view! {
        <Stylesheet id="leptos" href="/pkg/medvision.css"/>
        <Title text="MedVision"/>
        <Router>
            <ui::Header/>
            <main>
                <Routes fallback=|| view! { <ui::NotFound/> }>
                    <Route path=path!("/") view=|| view! { <Redirect path="/cases"/> }/>
                    <Route path=path!("/login") view=auth::LoginPage/>
                    <Route path=path!("/register") view=auth::RegisterPage/>
                    <Route path=path!("/profile") view=auth::ProfilePage/>
                    <Route path=path!("/cases") view=cases::CaseListPage/>
                    <Route path=path!("/cases/new") view=cases::NewCasePage/>
                    <Route path=path!("/cases/:id") view=cases::CaseRoute ssr=SsrMode::Async/>
                    <Route path=path!("/cases/:id/edit") view=cases::EditCasePage ssr=SsrMode::Async/>
                    <Route path=path!("/batches/:id") view=pipeline::BatchPage ssr=SsrMode::Async/>
                    <Route path=path!("/notifications") view=chat::NotificationsPage/>
                    <Route path=path!("/analytics") view=analytics::AnalyticsPage/>
                    <Route path=path!("/admin/audit") view=audit::AuditPage/>
                    <Route path=path!("/admin/users") view=admin::AdminUsersPage/>
                </Routes>
            </main>
        </Router>
    }
}
