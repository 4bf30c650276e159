use crate::helpers::*;
use crate::on_both;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn signup_approval_signin_case_flow(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("admin@alpha.example", "admin", "Org alpha").await;

    // A visitor requests an account through the registration form.
    let visitor = Api::new(&app.url);
    let r = visitor
        .post_form(
            "/sfn/register",
            &[
                ("email", "New.Doc@Alpha.example"),
                ("name", "Dr New"),
                ("password", PASSWORD),
                ("org", "Org alpha"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);

    // Pending accounts cannot sign in, and the error does not say why.
    let r = visitor
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": "new.doc@alpha.example", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "bad_credentials");

    // The admin sees the request and approves it.
    let admin = app.login("admin@alpha.example").await;
    let users: Value = admin.get("/sfn/admin_users").await.json().await.unwrap();
    let pending = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "new.doc@alpha.example")
        .unwrap();
    assert_eq!(pending["pending"], true);
    assert_eq!(pending["role"], "doctor");
    let id = pending["id"].as_str().unwrap();
    let r = admin
        .post_form(
            "/sfn/admin_change_user",
            &[("id", id), ("action", "approve")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);

    // Now they sign in, open a case and see it.
    let doc = app.login("new.doc@alpha.example").await;
    let me: Value = doc.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["user"]["role"], "doctor");
    assert_eq!(me["user"]["org"], "Org alpha");
    let case = doc.create_case("Patient A").await;
    let list: Value = doc.get("/api/v1/cases").await.json().await.unwrap();
    assert_eq!(list["items"][0]["id"], case["id"]);
    assert!(list["next"].is_null());
    let page = doc.page("/cases").await.text().await.unwrap();
    assert!(page.contains("Patient A"), "case list page shows the case");
}

async fn session_survives_restart(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let (mut settings, tmp) = app.stop().await;
    settings.addr = "127.0.0.1:0".parse().unwrap();
    let app2 = start(settings).await;
    let doc = Api {
        base: app2.url.clone(),
        ..doc
    };
    let r = doc.get("/api/v1/me").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the session is kept in the database"
    );
    let case = doc.create_case("After restart").await;
    assert_eq!(case["patient_ref"], "After restart");
    app2.stop().await;
    drop(tmp);
}

async fn one_time_password_must_be_changed(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app::admin::ssr::add_user(
        &app.db,
        "first@alpha.example",
        None,
        PASSWORD,
        "admin",
        "Org alpha",
        true,
    )
    .await
    .unwrap();
    let api = app.login("first@alpha.example").await;
    let me: Value = api.get("/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["must_change_password"], true);
    let r = api.get("/api/v1/cases").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "password_change_required");
    let r = api
        .post_form(
            "/sfn/change_password",
            &[
                ("current", "wrong wrong wrong"),
                ("password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = api
        .post_form(
            "/sfn/change_password",
            &[
                ("current", PASSWORD),
                ("password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    assert_eq!(api.get("/api/v1/cases").await.status(), StatusCode::OK);
}

async fn api_tokens_are_shown_once_stored_hashed_and_revocable(b: Backend) {
    use sea_orm::EntityTrait;
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let r = doc
        .post_json("/api/v1/auth/tokens", &json!({ "name": "pacs script" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let t: Value = r.json().await.unwrap();
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mv_"));

    let stored = entity::api_token::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(
        stored[0].token_hash, token,
        "the secret itself is never stored"
    );
    assert_eq!(stored[0].token_hash, app::auth::ssr::token_hash(&token));
    let listed: Value = doc.get("/api/v1/auth/tokens").await.json().await.unwrap();
    assert!(
        !listed.to_string().contains(&token),
        "listing never shows the secret"
    );

    // A bearer client has no cookie and needs no CSRF token.
    let bearer = reqwest::Client::new();
    let r = bearer
        .post(format!("{}/api/v1/cases", app.url))
        .bearer_auth(&token)
        .json(&json!({ "patient_ref": "Via token", "sex": "M", "modality": "CR", "body_part": "chest", "urgency": "routine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let r = doc
        .post_form("/sfn/revoke_token", &[("id", t["id"].as_str().unwrap())])
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let r = bearer
        .get(format!("{}/api/v1/cases", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked token stops working"
    );
    let r = bearer
        .get(format!("{}/api/v1/cases", app.url))
        .bearer_auth("mv_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn disabling_a_user_ends_their_session(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("admin@alpha.example", "admin", "Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    assert_eq!(doc.get("/api/v1/cases").await.status(), StatusCode::OK);
    let admin = app.login("admin@alpha.example").await;
    let me: Value = doc.get("/api/v1/me").await.json().await.unwrap();
    let id = me["user"]["id"].as_str().unwrap();
    let r = admin
        .post_form(
            "/sfn/admin_change_user",
            &[("id", id), ("action", "disable")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        doc.get("/api/v1/cases").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The last admin cannot lock the organisation out.
    let me: Value = admin.get("/api/v1/me").await.json().await.unwrap();
    let admin_id = me["user"]["id"].as_str().unwrap();
    let r = admin
        .post_form(
            "/sfn/admin_change_user",
            &[("id", admin_id), ("action", "role:doctor")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

async fn logout_invalidates_the_session_and_login_rotates_its_id(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A page view starts an anonymous session.
    let r = http
        .get(format!("{}/login", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let pre = cookie(&r).expect("anonymous session cookie");
    let r = http
        .post(format!("{}/api/v1/auth/login", app.url))
        .header("cookie", format!("medvision_session={pre}"))
        .json(&json!({ "email": "doc@alpha.example", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    let post = cookie(&r).unwrap();
    assert_ne!(pre, post, "sign-in issues a new session id (no fixation)");
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = http
        .get(format!("{}/api/v1/me", app.url))
        .header("cookie", format!("medvision_session={pre}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the pre-login id is worthless"
    );

    let r = http
        .post(format!("{}/api/v1/auth/logout", app.url))
        .header("cookie", format!("medvision_session={post}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let replay = http
        .get(format!("{}/api/v1/me", app.url))
        .header("cookie", format!("medvision_session={post}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "a replayed cookie after logout is refused"
    );
}

fn cookie(r: &reqwest::Response) -> Option<String> {
    r.headers().get_all("set-cookie").iter().find_map(|v| {
        let s = v.to_str().ok()?;
        let kv = s.split(';').next()?;
        kv.strip_prefix("medvision_session=").map(str::to_owned)
    })
}

async fn sessions_expire_when_idle_and_after_their_absolute_lifetime(b: Backend) {
    for (idle, absolute) in [(0, 12), (30, 0)] {
        let tmp = tempfile::tempdir().unwrap();
        let settings = medvision::settings::Settings {
            session_idle_minutes: idle,
            session_absolute_hours: absolute,
            ..settings_for(&b, tmp.path())
        };
        let app = start(settings).await;
        let org = format!("Org {idle}-{absolute}");
        app.org(&org).await;
        let email = format!("doc{idle}{absolute}@alpha.example");
        app.user(&email, "doctor", &org).await;
        let api = Api::new(&app.url);
        let r = api
            .post_json(
                "/api/v1/auth/login",
                &json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let me = api.get("/api/v1/me").await;
        assert_eq!(
            me.status(),
            StatusCode::UNAUTHORIZED,
            "idle={idle} min, absolute={absolute} h: the session has expired"
        );
        app.stop().await;
    }
}

async fn sign_in_is_throttled_per_address_across_accounts(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let settings = medvision::settings::Settings {
        login_per_ip_per_minute: 3,
        ..settings_for(&b, tmp.path())
    };
    let app = start(settings).await;
    app.org("Org alpha").await;
    let api = Api::new(&app.url);
    for i in 0..3 {
        let r = api.post_json("/api/v1/auth/login", &json!({ "email": format!("user{i}@alpha.example"), "password": "wrong password here" })).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = api
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": "user9@alpha.example", "password": "wrong password here" }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a fourth account from the same address waits"
    );
    app.stop().await;
}

/// A new password ends every other session of the user at its next
/// request (a stolen session cookie dies with the old password); the
/// session that changed it stays.
async fn a_password_change_ends_the_users_other_sessions(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let here = app.login("doc@alpha.example").await;
    let elsewhere = app.login("doc@alpha.example").await;
    assert_eq!(elsewhere.get("/api/v1/me").await.status(), StatusCode::OK);
    let r = here
        .post_form(
            "/sfn/change_password",
            &[
                ("current", PASSWORD),
                ("password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    assert_eq!(here.get("/api/v1/me").await.status(), StatusCode::OK);
    let r = elsewhere.get("/api/v1/me").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // And it stays ended (the session was removed, not just refused once).
    assert_eq!(
        elsewhere.get("/api/v1/cases").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = Api::new(&app.url)
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": "doc@alpha.example", "password": "a brand new passphrase" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Registration spends the address's sign-in attempts: it hashes a
/// password and answers whether an organisation exists, so it must not be
/// free to repeat.
async fn registration_is_throttled_per_address(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let settings = medvision::settings::Settings {
        login_per_ip_per_minute: 3,
        ..settings_for(&b, tmp.path())
    };
    let app = start(settings).await;
    app.org("Org alpha").await;
    let api = Api::new(&app.url);
    let register = |i: usize| {
        let api = api.clone();
        async move {
            api.post_form(
                "/sfn/register",
                &[
                    ("email", &format!("new{i}@alpha.example")),
                    ("name", "New Doctor"),
                    ("password", "a long enough passphrase"),
                    ("org", "Org alpha"),
                ],
            )
            .await
        }
    };
    for i in 0..3 {
        let r = register(i).await;
        assert_eq!(r.status(), StatusCode::OK, "registration {i}");
    }
    let r = register(3).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        count(&app.db, "users").await,
        3,
        "the refused registration created nothing"
    );
    app.stop().await;
}

on_both!(
    a_password_change_ends_the_users_other_sessions,
    registration_is_throttled_per_address,
    sessions_expire_when_idle_and_after_their_absolute_lifetime,
    sign_in_is_throttled_per_address_across_accounts,
    signup_approval_signin_case_flow,
    session_survives_restart,
    one_time_password_must_be_changed,
    api_tokens_are_shown_once_stored_hashed_and_revocable,
    disabling_a_user_ends_their_session,
    logout_invalidates_the_session_and_login_rotates_its_id,
);
