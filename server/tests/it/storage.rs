//! Stored data: encryption at rest (sealed on disk, readable through the
//! app, key rotation by re-wrapping), and backup and restore into a fresh
//! data directory and database.

use crate::helpers::{case_org, files_under, settings_for, start, Backend, TestApp};
use crate::images::{corpus, part, upload};
use crate::on_both;
use medvision::blobs::Blobs;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use std::path::Path;

const K1: &str = "4d2f9a0c1b3e5d7f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";
const K2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A signed-in doctor's case with CT_small uploaded; the instance id.
async fn case_with_image(app: &TestApp, dir: &Path) -> (crate::helpers::Api, String, String) {
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("STORE-1").await;
    let id = case["id"].as_str().unwrap().to_owned();
    let ct = std::fs::read(dir.join("CT_small.dcm")).unwrap();
    let r = upload(&doc, &id, vec![part("CT_small.dcm", ct)]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let studies: Value = doc
        .get(&format!("/api/v1/cases/{id}/studies"))
        .await
        .json()
        .await
        .unwrap();
    let sid = studies[0]["id"].as_str().unwrap();
    let inst: Value = doc
        .get(&format!("/api/v1/studies/{sid}/instances"))
        .await
        .json()
        .await
        .unwrap();
    let iid = inst[0]["id"].as_str().unwrap().to_owned();
    (doc, id, iid)
}

async fn render(api: &crate::helpers::Api, iid: &str) -> reqwest::Response {
    api.get(&format!("/api/v1/instances/{iid}/render?size=32"))
        .await
}

async fn seed(app: &TestApp) {
    app.org("Org alpha").await;
    app.user("doctor@alpha.example", "doctor", "Org alpha")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_sealed_on_disk_and_keys_rotate_by_rewrapping() {
    let Some(dir) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&Backend::Sqlite, tmp.path());
    s.embedded_workers = false;
    s.encryption_key = Some(SecretString::from(K1.to_owned()));
    let app = start(s).await;
    seed(&app).await;
    let (doc, _case, iid) = case_with_image(&app, &dir).await;
    assert_eq!(render(&doc, &iid).await.status(), StatusCode::OK);

    let stored = files_under(&app.settings.data_dir.join("blobs"));
    assert!(!stored.is_empty());
    for f in &stored {
        let b = std::fs::read(f).unwrap();
        assert_eq!(&b[..8], b"MVBLOBE1", "sealed: {}", f.display());
        assert!(
            !b.windows(4).any(|w| w == b"DICM"),
            "no DICOM structure visible at rest"
        );
    }

    // Rotate: K2 current, K1 still accepted; the working copies are gone
    // so every read goes through the store.
    let (mut s, tmp_keep) = app.stop().await;
    let _ = std::fs::remove_dir_all(s.data_dir.join("cache"));
    s.encryption_key = Some(SecretString::from(K2.to_owned()));
    s.encryption_previous_keys = Some(SecretString::from(K1.to_owned()));
    let blobs = Blobs::from_settings(&s).unwrap();
    let r = blobs.rewrap().await.unwrap();
    assert_eq!(r.objects, stored.len());
    assert_eq!(r.rewrapped, stored.len());
    assert_eq!(r.sealed, 0);
    assert_eq!(blobs.rewrap().await.unwrap().rewrapped, 0, "idempotent");

    // The old key can go now.
    s.encryption_previous_keys = None;
    let (n, bad) = Blobs::from_settings(&s).unwrap().verify().await.unwrap();
    assert_eq!((n, bad.len()), (stored.len(), 0));
    let app = start(s.clone()).await;
    let doc2 = app.login("doctor@alpha.example").await;
    assert_eq!(render(&doc2, &iid).await.status(), StatusCode::OK);
    let (mut s, _) = app.stop().await;

    // Without the key nothing is readable, and nothing leaks saying why.
    let _ = std::fs::remove_dir_all(s.data_dir.join("cache"));
    s.encryption_key = None;
    let app = start(s).await;
    let doc3 = app.login("doctor@alpha.example").await;
    let r = render(&doc3, &iid).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let body = r.text().await.unwrap().to_lowercase();
    assert!(
        !body.contains("mvblobe1") && !body.contains("orgs/"),
        "{body}"
    );
    app.stop().await;
    drop(tmp_keep);
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_encryption_on_seals_what_was_stored_before() {
    let Some(dir) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&Backend::Sqlite, tmp.path());
    s.embedded_workers = false;
    let app = start(s).await;
    seed(&app).await;
    let (_doc, _case, iid) = case_with_image(&app, &dir).await;
    let (mut s, _) = app.stop().await;
    let plain = files_under(&s.data_dir.join("blobs"));
    assert!(plain
        .iter()
        .all(|f| !std::fs::read(f).unwrap().starts_with(b"MVBLOBE1")));

    s.encryption_key = Some(SecretString::from(K1.to_owned()));
    let r = Blobs::from_settings(&s).unwrap().rewrap().await.unwrap();
    assert_eq!(r.sealed, plain.len());
    for f in files_under(&s.data_dir.join("blobs")) {
        assert!(std::fs::read(&f).unwrap().starts_with(b"MVBLOBE1"));
    }
    let _ = std::fs::remove_dir_all(s.data_dir.join("cache"));
    let app = start(s).await;
    let doc = app.login("doctor@alpha.example").await;
    assert_eq!(render(&doc, &iid).await.status(), StatusCode::OK);
}

on_both!(backup_restores_into_a_fresh_data_dir_with_everything);

async fn backup_restores_into_a_fresh_data_dir_with_everything(b: Backend) {
    let Some(dir) = corpus() else { return };
    let pg = matches!(b, Backend::Postgres(_));
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&b, tmp.path());
    s.embedded_workers = false;
    s.evidence = false;
    s.encryption_key = Some(SecretString::from(K1.to_owned()));
    std::fs::create_dir_all(s.models_dir().join("demo-pack")).unwrap();
    std::fs::write(s.models_dir().join("demo-pack/model.toml"), b"name = \"x\"").unwrap();
    let app = start(s).await;
    seed(&app).await;
    let (doc, case_id, iid) = case_with_image(&app, &dir).await;
    let backup_dir = tmp.path().join("backup");
    let m = medvision::backup::backup(&app.settings, &app.db, &backup_dir)
        .await
        .unwrap();
    assert_eq!(m.rows["cases"], 1);
    assert_eq!(m.rows["instances"], 1);
    assert!(m.rows["audit_log"] > 0);
    assert_eq!(m.database, if pg { "postgres" } else { "sqlite" });
    assert!(m.files.contains_key("deid.key"));
    assert!(m.files.contains_key("models/demo-pack/model.toml"));
    // Sealed objects stay sealed in the backup.
    for k in &m.blobs {
        let b = std::fs::read(backup_dir.join("blobs").join(k)).unwrap();
        assert!(b.starts_with(b"MVBLOBE1"));
    }
    drop(doc);
    app.stop().await;

    // A damaged backup is refused before anything is written.
    let fresh = tempfile::tempdir().unwrap();
    let target_backend = if pg {
        Backend::postgres().await.unwrap()
    } else {
        Backend::Sqlite
    };
    let mut t = settings_for(&target_backend, fresh.path());
    t.embedded_workers = false;
    t.evidence = false;
    t.encryption_key = Some(SecretString::from(K1.to_owned()));
    let victim = backup_dir.join("blobs").join(&m.blobs[0]);
    let good = std::fs::read(&victim).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    std::fs::write(&victim, &bad).unwrap();
    let err = medvision::backup::restore(&t, &backup_dir)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum"), "{err}");
    assert!(!t.data_dir.join("medvision.db").exists(), "nothing written");
    std::fs::write(&victim, &good).unwrap();

    let r = medvision::backup::restore(&t, &backup_dir).await.unwrap();
    assert_eq!(r.rows["cases"], 1);
    assert_eq!(r.blobs, m.blobs.len());
    assert!(t.models_dir().join("demo-pack/model.toml").exists());
    assert_eq!(
        std::fs::read(t.data_dir.join("deid.key")).unwrap(),
        std::fs::read(tmp.path().join("data/deid.key")).unwrap(),
        "the de-identification key comes back, so UIDs map the same"
    );
    // Restoring again over it is refused.
    let again = medvision::backup::restore(&t, &backup_dir).await;
    assert!(again.is_err());

    // The restored server has the case, its image and its audit trail.
    let app = start(t).await;
    let doc = app.login("doctor@alpha.example").await;
    let cases: Value = doc.get("/api/v1/cases").await.json().await.unwrap();
    let list = cases["items"].as_array().unwrap();
    assert!(list.iter().any(|c| c["id"] == case_id.as_str()), "{cases}");
    assert_eq!(render(&doc, &iid).await.status(), StatusCode::OK);
    let chain = app::audit::ssr::verify(&app.db).await.unwrap();
    assert!(chain.rows as i64 >= m.rows["audit_log"]);
    assert!(
        chain.first_broken.is_none(),
        "the audit chain verifies after the restore"
    );
}

/// The image store refusing writes is an outage: the upload answers 503
/// with a sentence to act on, records nothing, and works again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_while_the_store_refuses_writes_is_503_and_records_nothing() {
    let Some(dir) = corpus() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&Backend::Sqlite, tmp.path());
    s.embedded_workers = false;
    let app = start(s).await;
    seed(&app).await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("STORE-DOWN").await;
    let id = case["id"].as_str().unwrap();
    let org = case_org(&app.db, id).await;
    // A file where the organisation's folder goes: refused even to root.
    let orgs = app.settings.data_dir.join("blobs").join("orgs");
    std::fs::create_dir_all(&orgs).unwrap();
    let blocker = orgs.join(org.to_string());
    std::fs::write(&blocker, b"not a folder").unwrap();
    let ct = std::fs::read(dir.join("CT_small.dcm")).unwrap();
    let r = upload(&doc, id, vec![part("CT_small.dcm", ct.clone())]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was added"));
    assert!(
        !body.to_string().contains("orgs/"),
        "no paths in the answer"
    );
    assert_eq!(crate::helpers::count(&app.db, "instances").await, 0);
    assert_eq!(crate::helpers::count(&app.db, "studies").await, 0);

    std::fs::remove_file(&blocker).unwrap();
    let r = upload(&doc, id, vec![part("CT_small.dcm", ct)]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(crate::helpers::count(&app.db, "instances").await, 1);
}
