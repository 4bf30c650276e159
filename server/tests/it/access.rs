//! The isolation matrix: every case route, page and server function, for
//! every kind of outsider.

use crate::helpers::*;
use crate::on_both;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// Every way to touch one case. Returns (what, response).
async fn touch_everything(
    api: &Api,
    id: &str,
    colleague_email: &str,
    colleague_id: &str,
) -> Vec<(String, Response)> {
    let fields = |id: &str| -> Vec<(String, String)> {
        vec![
            ("id".into(), id.into()),
            ("patient_ref".into(), "Hijacked".into()),
            ("age".into(), "1".into()),
            ("sex".into(), "M".into()),
            ("modality".into(), "MR".into()),
            ("body_part".into(), "knee".into()),
            ("urgency".into(), "routine".into()),
            ("history".into(), "changed".into()),
        ]
    };
    let f = fields(id);
    let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    vec![
        (
            "GET /api/v1/cases/{id}".into(),
            api.get(&format!("/api/v1/cases/{id}")).await,
        ),
        (
            "PATCH /api/v1/cases/{id}".into(),
            api.patch_json(
                &format!("/api/v1/cases/{id}"),
                &json!({ "history": "changed" }),
            )
            .await,
        ),
        (
            "PATCH status".into(),
            api.patch_json(
                &format!("/api/v1/cases/{id}"),
                &json!({ "status": "closed" }),
            )
            .await,
        ),
        (
            "POST members".into(),
            api.post_json(
                &format!("/api/v1/cases/{id}/members"),
                &json!({ "email": colleague_email }),
            )
            .await,
        ),
        (
            "page /cases/{id}".into(),
            api.page(&format!("/cases/{id}")).await,
        ),
        (
            "page /cases/{id}/edit".into(),
            api.page(&format!("/cases/{id}/edit")).await,
        ),
        (
            "sfn get_case".into(),
            api.http
                .get(api.url(&format!("/sfn/get_case?id={id}")))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap(),
        ),
        (
            "sfn save_case".into(),
            api.post_form("/sfn/save_case", &f).await,
        ),
        (
            "sfn set_case_status".into(),
            api.post_form("/sfn/set_case_status", &[("id", id), ("status", "closed")])
                .await,
        ),
        (
            "sfn add_case_member".into(),
            api.post_form(
                "/sfn/add_case_member",
                &[("id", id), ("user_id", colleague_id)],
            )
            .await,
        ),
    ]
}

async fn outsiders_get_404_everywhere_and_members_get_in(b: Backend) {
    let app = spawn_app(b).await;
    app.two_orgs().await;
    let owner = app.login("doctor@alpha.example").await;
    let case = owner.create_case("Secret Patient").await;
    let id = case["id"].as_str().unwrap().to_owned();
    let colleague = app.login("doctor2@alpha.example").await;
    let colleague_id = colleague
        .get("/api/v1/me")
        .await
        .json::<Value>()
        .await
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Other organisation (every role), the same organisation's admin and a
    // doctor who is not on the case: all see nothing, and learn nothing.
    for who in [
        "admin@beta.example",
        "radiologist@beta.example",
        "doctor@beta.example",
        "admin@alpha.example",
        "doctor2@alpha.example",
    ] {
        let api = app.login(who).await;
        for (what, r) in touch_everything(&api, &id, "doctor2@alpha.example", &colleague_id).await {
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{who}: {what}");
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("Secret Patient"),
                "{who}: {what} leaks the case"
            );
            assert!(
                !body.contains("headache"),
                "{who}: {what} leaks the history"
            );
        }
        let list: Value = api.get("/api/v1/cases").await.json().await.unwrap();
        assert!(
            list["items"].as_array().unwrap().is_empty(),
            "{who} lists no cases"
        );
        let sfn = api
            .http
            .get(api.url("/sfn/list_cases?query[limit]=50"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // A real answer, not an error that would trivially lack the name.
        assert!(sfn.contains("\"items\""), "{who}: {sfn}");
        assert!(
            !sfn.contains("Secret Patient"),
            "{who} sees nothing through the list server function"
        );
        let page = api.page("/cases").await.text().await.unwrap();
        assert!(
            !page.contains("Secret Patient"),
            "{who} sees nothing on the list page"
        );
    }
    let after: Value = owner
        .get(&format!("/api/v1/cases/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["history"], "headache", "no outsider changed the case");
    assert_eq!(after["status"], "open");
    assert_eq!(after["members"].as_array().unwrap().len(), 1);

    // The organisation's radiologist reads the worklist and may manage it.
    let rad = app.login("radiologist@alpha.example").await;
    assert_eq!(
        rad.get(&format!("/api/v1/cases/{id}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        rad.page(&format!("/cases/{id}")).await.status(),
        StatusCode::OK
    );

    // Once added, the colleague sees it everywhere, but may not close it.
    let r = owner
        .post_json(
            &format!("/api/v1/cases/{id}/members"),
            &json!({ "email": "doctor2@alpha.example" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        colleague.get(&format!("/api/v1/cases/{id}")).await.status(),
        StatusCode::OK
    );
    let page = colleague.page(&format!("/cases/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Secret Patient"));
    let r = colleague
        .patch_json(
            &format!("/api/v1/cases/{id}"),
            &json!({ "history": "seen by colleague" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = colleague
        .patch_json(
            &format!("/api/v1/cases/{id}"),
            &json!({ "status": "closed" }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "only the owner or a radiologist closes a case"
    );

    // A colleague from another organisation can never be added.
    let r = owner
        .post_json(
            &format!("/api/v1/cases/{id}/members"),
            &json!({ "email": "doctor@beta.example" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn anonymous_requests_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    app.two_orgs().await;
    let owner = app.login("doctor@alpha.example").await;
    let id = owner.create_case("Anon Target").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let anon = Api::new(&app.url);
    for path in [
        "/api/v1/cases".to_owned(),
        format!("/api/v1/cases/{id}"),
        "/api/v1/me".into(),
    ] {
        let r = anon.get(&path).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(error_code(r).await, "unauthenticated");
    }
    let page = anon
        .page(&format!("/cases/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Anon Target"));
    assert!(page.contains("Please sign in"));
    let r = anon
        .http
        .get(anon.url("/sfn/admin_users"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A doctor is not an admin.
    let r = owner
        .http
        .get(owner.url("/sfn/admin_users"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

async fn admins_manage_only_their_own_organisation(b: Backend) {
    let app = spawn_app(b).await;
    app.two_orgs().await;
    let beta_admin = app.login("admin@beta.example").await;
    let alpha_doc = app.login("doctor@alpha.example").await;
    let alpha_doc_id = alpha_doc
        .get("/api/v1/me")
        .await
        .json::<Value>()
        .await
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let users: Value = beta_admin
        .get("/sfn/admin_users")
        .await
        .json()
        .await
        .unwrap();
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["email"].as_str().unwrap().ends_with("@beta.example")));
    for action in ["disable", "role:admin", "approve"] {
        let r = beta_admin
            .post_form(
                "/sfn/admin_change_user",
                &[("id", &alpha_doc_id), ("action", action)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(
        alpha_doc.get("/api/v1/cases").await.status(),
        StatusCode::OK,
        "still active"
    );
}

on_both!(
    outsiders_get_404_everywhere_and_members_get_in,
    anonymous_requests_are_refused,
    admins_manage_only_their_own_organisation
);
