//! From AI suggestion to signed report: a radiologist accepts, rejects and
//! edits findings, adds one the models missed, edits and signs the draft
//! (password asked again), then can only add addenda; every step audited
//! with before and after; the PDF carries it all. On SQLite and PostgreSQL.

use crate::helpers::{count, settings_for, start, Backend, PASSWORD};
use crate::on_both;
use crate::pipeline::{ct_study, tiny_ct_pack, upload};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Waits for the case's `jobs` analyses; each must have completed.
async fn settle(api: &crate::helpers::Api, case: &str, jobs: usize) {
    let list = crate::pipeline::settle_n(api, case, jobs).await;
    assert!(list.iter().all(|j| j["state"] == "completed"), "{list:?}");
}

async fn last_audit(db: &sea_orm::DatabaseConnection, action: &str) -> Value {
    use entity::audit_log;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let row = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(action))
        .order_by_desc(audit_log::Column::Seq)
        .one(db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no {action} audit row"));
    serde_json::from_str(&row.details).unwrap()
}

async fn audit_rows(db: &sea_orm::DatabaseConnection, action: &str) -> u64 {
    use entity::audit_log;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(action))
        .count(db)
        .await
        .unwrap()
}

fn pdftotext(pdf: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.pdf");
    std::fs::write(&p, pdf).unwrap();
    match std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&p)
        .arg("-")
        .output()
    {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => panic!("pdftotext failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("*** SKIPPED (PDF text checks): pdftotext is not installed: {e} ***");
            None
        }
    }
}

async fn review_sign_and_addend(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&backend, tmp.path());
    s.job_poll_ms = 50;
    s.evidence = false;
    tiny_ct_pack(&s.models_dir());
    let app = start(s).await;
    app.two_orgs().await;
    let doctor = app.login("doctor@alpha.example").await;
    let rad = app.login("radiologist@alpha.example").await;
    let other = app.login("radiologist@beta.example").await;
    let case = doctor.create_case("Zoë Ångström").await;
    let id = case["id"].as_str().unwrap();
    upload(&doctor, id, &ct_study(&tmp.path().join("a"), 1, 2)).await;
    settle(&doctor, id, 1).await;

    let findings: Vec<Value> = rad
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    let fid = |label: &str| {
        findings.iter().find(|f| f["label"] == label).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (iph, calc) = (fid("intraparenchymal"), fid("calcification"));
    assert!(findings.iter().all(|f| f["review"].is_null()));

    // Only radiologists decide; another organisation sees nothing.
    let path = format!("/api/v1/cases/{id}/findings/{iph}/review");
    let r = doctor
        .post_json(&path, &json!({"decision": "accept"}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = other.post_json(&path, &json!({"decision": "accept"})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(count(&app.db, "finding_reviews").await, 0);

    // Accept, reject (reason required), edit.
    let r = rad.post_json(&path, &json!({"decision": "accept"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["decision"], "accepted");
    assert_eq!(v["present"], true);
    let cpath = format!("/api/v1/cases/{id}/findings/{calc}/review");
    let r = rad.post_json(&cpath, &json!({"decision": "reject"})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = rad
        .post_json(
            &cpath,
            &json!({"decision": "reject", "reason": "punctate calcification in the pineal gland"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = rad.post_json(&cpath, &json!({"decision": "maybe"})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = rad
        .post_json(
            &path,
            &json!({"decision": "edit", "label": "subdural haematoma", "present": true, "location": "left convexity"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let audit = last_audit(&app.db, "finding.reviewed").await;
    assert_eq!(audit["before"]["decision"], "accepted", "{audit}");
    assert_eq!(audit["after"]["decision"], "edited");
    assert_eq!(audit["after"]["label"], "subdural haematoma");
    assert_eq!(audit_rows(&app.db, "finding.reviewed").await, 3);
    let findings: Vec<Value> = doctor
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    let b = findings
        .iter()
        .find(|f| f["label"] == "intraparenchymal")
        .unwrap();
    assert_eq!(b["review"]["decision"], "edited");
    assert_eq!(b["review"]["label"], "subdural haematoma");
    let c = findings
        .iter()
        .find(|f| f["label"] == "calcification")
        .unwrap();
    assert_eq!(c["review"]["decision"], "rejected");
    assert_eq!(
        c["review"]["present"], true,
        "rejecting a negative call means present"
    );

    // A finding the models missed; a hostile label is stored as typed and rendered inert.
    let xss = "<script>alert(1)</script>";
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/findings"),
            &json!({"label": "skull fracture", "location": "left parietal"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/findings"),
            &json!({"label": xss}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/findings"),
            &json!({"label": ""}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let reviews: Vec<Value> = doctor
        .get(&format!("/api/v1/cases/{id}/reviews"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reviews.len(), 5);
    assert!(reviews
        .iter()
        .any(|r| r["label"] == xss && r["decision"] == "added"));
    let page = rad
        .page(&format!("/cases/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains(xss), "the label must be escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("skull fracture"));

    // The draft: a doctor may read it, only a radiologist edits it.
    let rpath = format!("/api/v1/cases/{id}/report");
    let draft: Value = doctor.get(&rpath).await.json().await.unwrap();
    assert_eq!(draft["status"], "draft");
    let pdf = doctor.get(&format!("{rpath}.pdf")).await;
    assert_eq!(pdf.status(), StatusCode::OK);
    let draft_pdf = pdf.bytes().await.unwrap();
    if let Some(t) = pdftotext(&draft_pdf) {
        assert!(t.contains("DRAFT"), "a draft PDF carries the watermark");
    }
    let mut sections = draft["sections"].clone();
    sections["findings"] = json!(
        "Acute subdural haematoma along the left convexity, 6 mm. Punctate pineal calcification."
    );
    sections["impression"] = json!("Acute left subdural haematoma.");
    let r = doctor
        .put_json(&rpath, &json!({"sections": sections}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut long = sections.clone();
    long["findings"] = json!("x".repeat(20_001));
    let r = rad.put_json(&rpath, &json!({"sections": long})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = rad.put_json(&rpath, &json!({"sections": sections})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(
        edited["sections"]["impression"],
        "Acute left subdural haematoma."
    );
    assert!(edited["edited_by"].is_string());
    let audit = last_audit(&app.db, "report.edited").await;
    assert_eq!(
        audit["before"]["impression"],
        draft["sections"]["impression"]
    );
    assert_eq!(
        audit["after"]["impression"],
        "Acute left subdural haematoma."
    );

    // A second study is analysed; the pipeline leaves the reader's text alone.
    upload(&doctor, id, &ct_study(&tmp.path().join("b"), 2, 1)).await;
    settle(&doctor, id, 2).await;
    let after: Value = doctor.get(&rpath).await.json().await.unwrap();
    assert_eq!(
        after["sections"]["impression"],
        "Acute left subdural haematoma."
    );
    assert_eq!(after["revision"], edited["revision"]);

    // Signing asks for the password again.
    let spath = format!("{rpath}/sign");
    let r = rad
        .post_json(&spath, &json!({"password": "not my password"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(audit_rows(&app.db, "auth.reauth_failed").await, 1);
    let r = doctor
        .post_json(&spath, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let still: Value = doctor.get(&rpath).await.json().await.unwrap();
    assert_eq!(still["status"], "draft");
    let r = rad.post_json(&spath, &json!({"password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let signed: Value = r.json().await.unwrap();
    assert_eq!(signed["status"], "signed");
    assert_eq!(signed["label"], "Signed report (AI-assisted)");
    assert!(signed["signed_at"].is_string());
    let audit = last_audit(&app.db, "report.signed").await;
    assert_eq!(audit["before"]["status"], "draft");
    assert_eq!(
        audit["after"]["sections"]["impression"],
        "Acute left subdural haematoma."
    );

    // Signed is final: no edit, no second signature; addenda only.
    let r = rad.put_json(&rpath, &json!({"sections": sections})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = rad.post_json(&spath, &json!({"password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let apath = format!("{rpath}/addenda");
    let r = doctor.post_json(&apath, &json!({"text": "x"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = rad.post_json(&apath, &json!({"text": "   "})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = rad
        .post_json(
            &apath,
            &json!({"text": "Discussed with the neurosurgical registrar at 14:10."}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let with: Value = r.json().await.unwrap();
    assert_eq!(with["addenda"].as_array().unwrap().len(), 1);
    assert_eq!(
        with["sections"]["impression"],
        "Acute left subdural haematoma."
    );
    assert_eq!(audit_rows(&app.db, "report.addendum").await, 1);
    // A third study after signing: the signed report stays as it was.
    upload(&doctor, id, &ct_study(&tmp.path().join("c"), 3, 1)).await;
    settle(&doctor, id, 3).await;
    let fin: Value = doctor.get(&rpath).await.json().await.unwrap();
    assert_eq!(fin["status"], "signed");
    assert_eq!(fin["sections"], with["sections"]);

    // The filed PDF: no watermark, the pseudonym in full Unicode, the
    // decisions by name, the signature, the addendum, the disclaimer.
    let r = doctor.get(&format!("{rpath}.pdf")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment; filename=\"medvision-report-"));
    assert!(
        !disposition.contains("Zo"),
        "no patient data in the file name"
    );
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF"));
    if let Some(t) = pdftotext(&bytes) {
        assert!(!t.contains("DRAFT"), "a signed PDF has no watermark");
        assert!(t.contains("Zoë Ångström"), "pseudonym: {t}");
        assert!(t.contains("subdural haematoma"));
        assert!(t.contains("Accepted") || t.contains("Edited"), "{t}");
        assert!(t.contains("Rejected"));
        assert!(t.contains("skull fracture"));
        assert!(t.contains("neurosurgical registrar"));
        assert!(t.contains("not a diagnosis"), "the disclaimer");
        assert!(t.contains("test-ich-tiny"));
    }
    assert_eq!(
        other.get(&format!("{rpath}.pdf")).await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

on_both!(review_sign_and_addend);
