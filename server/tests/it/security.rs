use crate::helpers::*;
use crate::on_both;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn state_changes_without_the_csrf_token_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let body = json!({ "patient_ref": "X", "sex": "F", "modality": "CT", "body_part": "head", "urgency": "stat" });

    let no_token = doc
        .http
        .post(doc.url("/api/v1/cases"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(no_token).await, "csrf");
    let wrong = doc
        .http
        .post(doc.url("/api/v1/cases"))
        .header("x-csrf-token", "forged")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    // The same through a page's form / server function.
    let fields = [
        ("patient_ref", "X"),
        ("age", ""),
        ("sex", "F"),
        ("modality", "CT"),
        ("body_part", "head"),
        ("urgency", "stat"),
        ("history", ""),
    ];
    let r = doc
        .http
        .post(doc.url("/sfn/save_case"))
        .header("accept", "application/json")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let forged = Api {
        csrf: "forged".into(),
        ..doc.clone()
    };
    assert_eq!(
        forged.post_form("/sfn/save_case", &fields).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(count(&app.db, "cases").await, 0, "nothing was created");

    // With the token both work.
    assert_eq!(
        doc.post_json("/api/v1/cases", &body).await.status(),
        StatusCode::CREATED
    );
    let r = doc.post_form("/sfn/save_case", &fields).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    assert_eq!(count(&app.db, "cases").await, 2);
}

async fn the_sixth_wrong_password_in_a_minute_is_throttled(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let api = Api::new(&app.url);
    for i in 1..=5 {
        let r = api
            .post_json(
                "/api/v1/auth/login",
                &json!({ "email": "doc@alpha.example", "password": format!("guess number {i}") }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = api
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": "doc@alpha.example", "password": "guess number 6" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(r).await, "rate_limited");
    // Even the right password waits: the limiter runs before the check.
    let r = api
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": "doc@alpha.example", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // An unknown account answers exactly like a wrong password.
    let r = api
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": "nobody@alpha.example", "password": "whatever whatever" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "bad_credentials");
}

async fn bad_input_gets_a_clear_4xx_and_changes_nothing(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let case = doc.create_case("Original").await;
    let id = case["id"].as_str().unwrap();
    let audit_before = count(&app.db, "audit_log").await;
    let good = json!({ "patient_ref": "P", "age": 40, "sex": "F", "modality": "CT", "body_part": "head", "urgency": "routine" });

    let check = |mut v: Value, k: &str, bad: Value| {
        v[k] = bad;
        v
    };
    // Oversized, invalid enums, out-of-range numbers: 422 naming each field.
    let r = doc
        .post_json(
            "/api/v1/cases",
            &check(good.clone(), "patient_ref", json!("x".repeat(65))),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["fields"][0]["field"], "patient_ref");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 64"));
    let r = doc
        .post_json(
            "/api/v1/cases",
            &check(good.clone(), "urgency", json!("asap")),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("routine, priority, urgent, stat"));
    let mut many = check(good.clone(), "modality", json!("XR"));
    many["sex"] = json!("Q");
    many["age"] = json!(400);
    many["history"] = json!("h".repeat(4001));
    let e: Value = doc
        .post_json("/api/v1/cases", &many)
        .await
        .json()
        .await
        .unwrap();
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["age", "sex", "modality", "history"],
        "every problem is reported at once"
    );
    let r = doc
        .post_json("/api/v1/cases", &check(good.clone(), "surprise", json!(1)))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "unknown fields are refused, not ignored"
    );
    assert!(r.text().await.unwrap().contains("surprise"));

    // Malformed JSON and the wrong content type: 400 with a JSON error.
    let r = doc
        .http
        .post(doc.url("/api/v1/cases"))
        .header("x-csrf-token", &doc.csrf)
        .header("content-type", "application/json")
        .body("{\"patient_ref\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "bad_request");
    let r = doc
        .http
        .post(doc.url("/api/v1/cases"))
        .header("x-csrf-token", &doc.csrf)
        .body("patient_ref=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Unknown and malformed ids.
    let r = doc
        .get(&format!("/api/v1/cases/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "not_found");
    assert_eq!(
        doc.get("/api/v1/cases/../../etc/passwd").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        doc.get("/api/v1/cases/1%27%20OR%201=1").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        doc.patch_json(
            &format!("/api/v1/cases/{id}"),
            &json!({ "status": "deleted" })
        )
        .await
        .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        doc.get("/api/v1/cases?limit=100000").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        doc.get("/api/v1/cases?cursor=garbage").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        doc.get("/api/v1/nothing-here").await.status(),
        StatusCode::NOT_FOUND
    );

    let still: Value = doc
        .get(&format!("/api/v1/cases/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["patient_ref"], "Original");
    // A body over the limit (last: the server closes that connection
    // without reading the rest of the body).
    let huge = json!({ "patient_ref": "P", "sex": "F", "modality": "CT", "body_part": "head", "urgency": "routine", "history": "x".repeat(2 * 1024 * 1024) });
    let sent = doc
        .http
        .post(doc.url("/api/v1/cases"))
        .header("x-csrf-token", &doc.csrf)
        .json(&huge)
        .send()
        .await;
    match sent {
        Ok(r) => assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE),
        // The server may close the connection before the upload finishes.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    assert_eq!(
        count(&app.db, "cases").await,
        1,
        "no refused request created a case"
    );
    assert_eq!(
        count(&app.db, "audit_log").await,
        audit_before,
        "nor wrote an audit row"
    );
}

async fn html_in_text_fields_is_stored_as_typed_and_rendered_inert(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let payload = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let r = doc
        .post_json("/api/v1/cases", &json!({ "patient_ref": "<b>bold</b>", "sex": "F", "modality": "CT", "body_part": "head", "urgency": "routine", "history": payload }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["history"], payload, "stored exactly as typed");
    let html = doc
        .page(&format!("/cases/{}", c["id"].as_str().unwrap()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>alert"),
        "no executable markup in the page"
    );
    assert!(!html.contains("<img src=x"), "no injected elements");
    assert!(
        html.contains("&lt;script&gt;alert"),
        "the text is shown, escaped"
    );
    assert!(!html.contains("<b>bold</b>"));
}

async fn errors_never_leak_internals_and_responses_carry_security_headers(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    for r in [
        doc.get("/api/v1/cases/not-a-uuid").await,
        doc.get("/api/v1/cases?status=%27;DROP%20TABLE%20cases;--").await,
        doc.post_json("/api/v1/cases", &json!({ "patient_ref": "'; DROP TABLE cases; --", "sex": "F", "modality": "CT", "body_part": "head", "urgency": "x" })).await,
    ] {
        for h in ["x-content-type-options", "x-frame-options", "content-security-policy", "x-request-id"] {
            assert!(r.headers().contains_key(h), "missing {h}");
        }
        let body = r.text().await.unwrap().to_lowercase();
        for leak in ["sqlx", "select ", "panicked", "stack backtrace", "sea_orm", "syntax error"] {
            assert!(!body.contains(leak), "response leaks {leak}: {body}");
        }
    }
    assert_eq!(count(&app.db, "cases").await, 0);
    let r = doc.get("/api/v1/cases?q=%25%27%20OR%201%3D1%20--").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "SQL meta-characters in a search are just text"
    );
}

async fn health_readiness_and_openapi(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app.url);
    assert_eq!(api.get("/healthz").await.text().await.unwrap(), "ok");
    let ready: Value = api.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    let doc: Value = api.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/tokens",
        "/api/v1/me",
        "/api/v1/cases",
        "/api/v1/cases/{id}",
        "/api/v1/cases/{id}/members",
    ] {
        assert!(doc["paths"][p].is_object(), "openapi documents {p}");
    }
    assert!(doc["components"]["schemas"]["CaseDto"].is_object());
}

on_both!(
    state_changes_without_the_csrf_token_are_refused,
    the_sixth_wrong_password_in_a_minute_is_throttled,
    bad_input_gets_a_clear_4xx_and_changes_nothing,
    html_in_text_fields_is_stored_as_typed_and_rendered_inert,
    errors_never_leak_internals_and_responses_carry_security_headers,
    health_readiness_and_openapi,
);
