use crate::helpers::*;
use crate::on_both;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn the_list_is_sorted_by_urgency_paged_by_cursor_and_filtered(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    app.user("rad@alpha.example", "radiologist", "Org alpha")
        .await;
    app.user("other@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let urgencies = [
        "routine", "stat", "urgent", "routine", "stat", "routine", "urgent",
    ];
    for (i, u) in urgencies.iter().enumerate() {
        let modality = if i % 2 == 0 { "CT" } else { "MR" };
        let r = doc
            .post_json("/api/v1/cases", &json!({ "patient_ref": format!("P{i} 100%_done"), "sex": "U", "modality": modality, "body_part": "head", "urgency": u, "history": format!("note {i}") }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let other = app.login("other@alpha.example").await;
    other.create_case("Not mine").await;

    // Page through three at a time.
    let mut seen = vec![];
    let mut url = "/api/v1/cases?limit=3".to_owned();
    loop {
        let page: Value = doc.get(&url).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().cloned());
        match page["next"].as_str() {
            Some(c) => url = format!("/api/v1/cases?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        7,
        "every case exactly once, and only the doctor's own"
    );
    let order: Vec<&str> = seen
        .iter()
        .map(|c| c["urgency"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["stat", "stat", "urgent", "urgent", "routine", "routine", "routine"]
    );
    // Newest first within an urgency.
    assert_eq!(seen[0]["patient_ref"], "P4 100%_done");
    assert_eq!(seen[1]["patient_ref"], "P1 100%_done");

    let f: Value = doc
        .get("/api/v1/cases?urgency=stat&modality=CT")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(f["items"].as_array().unwrap().len(), 1);
    assert_eq!(f["items"][0]["patient_ref"], "P4 100%_done");
    let q: Value = doc
        .get("/api/v1/cases?q=NOTE%205")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        q["items"].as_array().unwrap().len(),
        1,
        "search is case-insensitive"
    );
    let q: Value = doc
        .get("/api/v1/cases?q=100%25_")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        q["items"].as_array().unwrap().len(),
        7,
        "% and _ are literal"
    );
    let q: Value = doc.get("/api/v1/cases?q=1_0").await.json().await.unwrap();
    assert_eq!(
        q["items"].as_array().unwrap().len(),
        0,
        "_ is not a wildcard"
    );

    // The radiologist's worklist holds the whole organisation.
    let rad = app.login("rad@alpha.example").await;
    let all: Value = rad
        .get("/api/v1/cases?limit=200")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 8);

    // Closing moves a case out of the open filter.
    let first = seen[0]["id"].as_str().unwrap();
    let r = doc
        .patch_json(
            &format!("/api/v1/cases/{first}"),
            &json!({ "status": "closed" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let closed: Value = r.json().await.unwrap();
    assert!(closed["closed_at"].is_string());
    let open: Value = doc
        .get("/api/v1/cases?status=open")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["items"].as_array().unwrap().len(), 6);
}

async fn a_case_can_be_edited_through_api_and_form(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let c = doc.create_case("Editable").await;
    let id = c["id"].as_str().unwrap();
    let r = doc
        .patch_json(
            &format!("/api/v1/cases/{id}"),
            &json!({ "age": null, "body_part": "chest", "modality": "dx" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let c: Value = r.json().await.unwrap();
    assert!(c["age"].is_null());
    assert_eq!(c["modality"], "DX");
    assert_eq!(c["body_part"], "chest");
    assert_eq!(c["urgency"], "urgent", "absent fields are unchanged");

    let r = doc
        .post_form(
            "/sfn/save_case",
            &[
                ("id", id),
                ("patient_ref", "Edited"),
                ("age", "7"),
                ("sex", "M"),
                ("modality", "US"),
                ("body_part", "abdomen"),
                ("urgency", "stat"),
                ("history", "new"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = doc
        .get(&format!("/api/v1/cases/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["patient_ref"], "Edited");
    assert_eq!(got["age"], 7);
    assert_eq!(got["urgency"], "stat");

    // A form with a bad age reports it on that field.
    let r = doc
        .post_form(
            "/sfn/save_case",
            &[
                ("patient_ref", "Bad"),
                ("age", "forty"),
                ("sex", "M"),
                ("modality", "US"),
                ("body_part", "x"),
                ("urgency", "stat"),
                ("history", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["fields"][0]["field"], "age");
    let page = doc.page(&format!("/cases/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Edited") && html.contains("abdomen"));
}

on_both!(
    the_list_is_sorted_by_urgency_paged_by_cursor_and_filtered,
    a_case_can_be_edited_through_api_and_form
);
