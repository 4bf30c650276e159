//! Image upload through the real server: de-identified on ingest, stored,
//! listed, rendered, isolated per organisation, refused whole when bad.

use crate::helpers::{count, error_code, spawn_app, Backend};
use crate::on_both;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;

/// pydicom's test corpus, fetched by scripts/fixtures.sh.
pub fn corpus() -> Option<PathBuf> {
    let base = std::env::var("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/medvision/fixtures")
        });
    let dir = base.join("pydicom-3.0.2/pydicom/data/test_files");
    if dir.join("CT_small.dcm").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: pydicom test files not found under {} (run scripts/fixtures.sh)",
            base.display()
        );
        None
    }
}

pub fn part(name: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_owned())
}

pub async fn upload(api: &crate::helpers::Api, case: &str, parts: Vec<Part>) -> reqwest::Response {
    let mut form = Form::new();
    for p in parts {
        form = form.part("file", p);
    }
    api.http
        .post(api.url(&format!("/api/v1/cases/{case}/images")))
        .header("x-csrf-token", &api.csrf)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn upload_deidentify_list_render(backend: Backend) {
    let Some(dir) = corpus() else { return };
    let app = spawn_app(backend).await;
    app.two_orgs().await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("IMG-1").await;
    let id = case["id"].as_str().unwrap();
    let ct = std::fs::read(dir.join("CT_small.dcm")).unwrap();
    let mr = std::fs::read(dir.join("MR_small.dcm")).unwrap();
    let r = upload(
        &doc,
        id,
        vec![part("CT_small.dcm", ct.clone()), part("MR_small.dcm", mr)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["accepted"], 2, "{out}");
    assert_eq!(out["studies"].as_array().unwrap().len(), 2, "{out}");
    assert!(out["rejected"].as_array().unwrap().is_empty(), "{out}");

    let studies: Value = doc
        .get(&format!("/api/v1/cases/{id}/studies"))
        .await
        .json()
        .await
        .unwrap();
    let studies = studies.as_array().unwrap();
    assert_eq!(studies.len(), 2);
    let ct_study = studies
        .iter()
        .find(|s| s["modality"] == "CT")
        .expect("a CT study");
    // The stored UID is the remapped one, never the original.
    let original_uid = imaging::dicom::open(&dir.join("CT_small.dcm"))
        .unwrap()
        .study_instance_uid()
        .unwrap();
    assert_ne!(ct_study["study_uid"].as_str().unwrap(), original_uid);
    assert!(ct_study["study_uid"].as_str().unwrap().starts_with("2.25."));
    let series = &ct_study["series"][0];
    assert_eq!(series["rows"], 128);
    assert_eq!(series["columns"], 128);
    assert!(
        !series["deid"].as_array().unwrap().is_empty(),
        "the panel lists what changed"
    );

    let sid = ct_study["id"].as_str().unwrap();
    let inst: Value = doc
        .get(&format!("/api/v1/studies/{sid}/instances"))
        .await
        .json()
        .await
        .unwrap();
    let iid = inst[0]["id"].as_str().unwrap().to_owned();

    let r = doc.get(&format!("/api/v1/instances/{iid}/metadata")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let meta: Value = r.json().await.unwrap();
    assert_eq!(
        meta["00120062"]["Value"][0], "YES",
        "Patient Identity Removed"
    );
    let name = &meta["00100010"];
    assert!(
        name.is_null() || name.get("Value").is_none(),
        "patient name must be gone: {name}"
    );
    assert!(
        meta.get("7FE00010").is_none(),
        "no bulk pixel data in metadata"
    );

    let r = doc
        .get(&format!(
            "/api/v1/instances/{iid}/render?window=brain&size=64"
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let r = doc
        .get(&format!("/api/v1/instances/{iid}/render?window=nonsense"))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Sending the same study again files it once.
    let r = upload(&doc, id, vec![part("again.dcm", ct.clone())]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(count(&app.db, "instances").await, 2);

    // Another organisation sees none of it; a non-member colleague neither.
    for who in [
        "doctor@beta.example",
        "radiologist@beta.example",
        "doctor2@alpha.example",
    ] {
        let other = app.login(who).await;
        for path in [
            format!("/api/v1/cases/{id}/studies"),
            format!("/api/v1/studies/{sid}/instances"),
            format!("/api/v1/instances/{iid}/metadata"),
            format!("/api/v1/instances/{iid}/render"),
        ] {
            let r = other.get(&path).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{who} {path}");
        }
        let r = upload(&other, id, vec![part("x.dcm", ct.clone())]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{who} upload");
    }
    // The organisation's radiologist reads the worklist, images included.
    let rad = app.login("radiologist@alpha.example").await;
    assert_eq!(
        rad.get(&format!("/api/v1/instances/{iid}/metadata"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(count(&app.db, "instances").await, 2);
}

async fn bad_uploads_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.two_orgs().await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("IMG-2").await;
    let id = case["id"].as_str().unwrap();

    // Not an image: 422, with the file named and a reason.
    let r = upload(
        &doc,
        id,
        vec![part("notes.txt", b"patient John Smith".to_vec())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["accepted"], 0);
    assert_eq!(out["rejected"][0]["file"], "notes.txt");
    assert!(!out["rejected"][0]["reason"].as_str().unwrap().is_empty());

    // A truncated DICOM is refused, never half stored.
    if let Some(dir) = corpus() {
        let ct = std::fs::read(dir.join("CT_small.dcm")).unwrap();
        let r = upload(&doc, id, vec![part("cut.dcm", ct[..ct.len() / 2].to_vec())]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let out: Value = r.json().await.unwrap();
        assert_eq!(out["rejected"][0]["file"], "cut.dcm", "{out}");
    }

    // No parts, or a part with another name: 400.
    let r = doc
        .http
        .post(doc.url(&format!("/api/v1/cases/{id}/images")))
        .header("x-csrf-token", &doc.csrf)
        .multipart(Form::new().text("note", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Not multipart at all.
    let r = doc
        .post_json(
            &format!("/api/v1/cases/{id}/images"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without the CSRF token a cookie session cannot upload.
    let r = doc
        .http
        .post(doc.url(&format!("/api/v1/cases/{id}/images")))
        .multipart(Form::new().part("file", part("a.png", vec![1, 2, 3])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "csrf");
    // Unknown case.
    let r = upload(
        &doc,
        "00000000-0000-0000-0000-000000000000",
        vec![part("a.png", vec![1])],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    for t in ["studies", "series", "instances"] {
        assert_eq!(count(&app.db, t).await, 0, "{t}");
    }
    let blobs = app.settings.data_dir.join("blobs");
    let stored = crate::helpers::files_under(&blobs);
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

async fn oversized_upload_is_refused(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::settings_for(&backend, tmp.path());
    settings.max_upload_bytes = 64 * 1024;
    let app = crate::helpers::start(settings).await;
    app.two_orgs().await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("IMG-3").await;
    let id = case["id"].as_str().unwrap();
    let r = upload(&doc, id, vec![part("big.dcm", vec![0u8; 200 * 1024])]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "too_large");
    assert_eq!(count(&app.db, "instances").await, 0);
}

on_both!(
    upload_deidentify_list_render,
    bad_uploads_change_nothing,
    oversized_upload_is_refused
);
