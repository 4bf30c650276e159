use crate::helpers::*;
use crate::on_both;
use sea_orm::{ConnectionTrait, Statement};
use std::process::Command;

fn verify(settings: &medvision::settings::Settings) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medvision"));
    cmd.arg("audit")
        .arg("verify")
        .env("MEDVISION_DATA_DIR", &settings.data_dir)
        .env_remove("DATABASE_URL");
    if settings.is_postgres() {
        cmd.env("DATABASE_URL", settings.database_url());
    }
    cmd.output().unwrap()
}

async fn editing_an_audit_row_breaks_the_chain_at_that_row(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    for i in 0..3 {
        doc.create_case(&format!("Case {i}")).await;
    }
    let rows = count(&app.db, "audit_log").await;
    assert!(
        rows >= 6,
        "org, user, login and three cases are audited ({rows})"
    );
    let ok = verify(&app.settings);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("{rows} rows verified")));

    // Someone with database access rewrites history in row 4.
    let be = app.db.get_database_backend();
    app.db
        .execute(Statement::from_string(
            be,
            "UPDATE audit_log SET details = '{\"tampered\":true}' WHERE seq = 4",
        ))
        .await
        .unwrap();
    let bad = verify(&app.settings);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("row 4"), "names the row: {err}");
    assert!(err.contains("altered"), "{err}");
}

async fn deleting_an_audit_row_is_detected(b: Backend) {
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    doc.create_case("One").await;
    doc.create_case("Two").await;
    let be = app.db.get_database_backend();
    app.db
        .execute(Statement::from_string(
            be,
            "DELETE FROM audit_log WHERE seq = 2",
        ))
        .await
        .unwrap();
    let bad = verify(&app.settings);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("row 3"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

async fn case_changes_are_audited_with_before_and_after(b: Backend) {
    use sea_orm::{EntityTrait, QueryOrder};
    let app = spawn_app(b).await;
    app.org("Org alpha").await;
    app.user("doc@alpha.example", "doctor", "Org alpha").await;
    let doc = app.login("doc@alpha.example").await;
    let c = doc.create_case("Audited").await;
    let id = c["id"].as_str().unwrap();
    doc.patch_json(
        &format!("/api/v1/cases/{id}"),
        &serde_json::json!({ "urgency": "stat" }),
    )
    .await;
    doc.patch_json(
        &format!("/api/v1/cases/{id}"),
        &serde_json::json!({ "status": "closed" }),
    )
    .await;
    let rows = entity::audit_log::Entity::find()
        .order_by_asc(entity::audit_log::Column::Seq)
        .all(&app.db)
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert!(
        actions.ends_with(&["case.create", "case.update", "case.close"]),
        "{actions:?}"
    );
    let upd: serde_json::Value = serde_json::from_str(&rows[rows.len() - 2].details).unwrap();
    assert_eq!(upd["before"]["urgency"], "urgent");
    assert_eq!(upd["after"]["urgency"], "stat");
    assert_eq!(upd["changed"], serde_json::json!(["updated_at", "urgency"]));
    // Administrators read the log: it says that patient fields exist and
    // changed, never what they say.
    for row in &rows {
        assert!(!row.details.contains("Audited"), "{}", row.details);
        assert!(!row.details.contains("headache"), "{}", row.details);
    }
    let created: serde_json::Value = serde_json::from_str(&rows[rows.len() - 3].details).unwrap();
    assert_eq!(created["after"]["patient_ref"], "[redacted]");
    assert_eq!(created["after"]["history"], "[redacted]");
    assert_eq!(created["after"]["modality"], "CT");
    assert_eq!(rows.last().unwrap().target_id.as_deref(), Some(id));
    let report = app::audit::ssr::verify(&app.db).await.unwrap();
    assert_eq!(report.first_broken, None);
}

/// The admin's audit page API: only admins, only their organisation's rows,
/// filters by user, case and action, CSV, and the chain check over HTTP.
async fn admins_read_and_verify_their_organisations_audit(b: Backend) {
    use reqwest::StatusCode;
    use serde_json::{json, Value};
    let app = spawn_app(b).await;
    app.two_orgs().await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("AUDIT-1").await;
    let id = case["id"].as_str().unwrap();
    let r = doc
        .patch_json(&format!("/api/v1/cases/{id}"), &json!({"urgency": "stat"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let beta = app.login("doctor@beta.example").await;
    beta.create_case("AUDIT-BETA").await;

    assert_eq!(
        doc.get("/api/v1/admin/audit").await.status(),
        StatusCode::FORBIDDEN
    );
    let admin = app.login("admin@alpha.example").await;
    let all: Vec<Value> = admin.get("/api/v1/admin/audit").await.json().await.unwrap();
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|r| !r["details"].to_string().contains("AUDIT-BETA")
                && r["actor"] != "doctor@beta.example"),
        "another organisation's rows leak: {all:?}"
    );
    let seqs: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");

    let by_case: Vec<Value> = admin
        .get(&format!("/api/v1/admin/audit?case={id}"))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = by_case
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"case.create") && actions.contains(&"case.update"),
        "{actions:?}"
    );
    assert!(by_case
        .iter()
        .all(|r| r["target_id"] == id || r["details"].to_string().contains(id)));
    let by_user: Vec<Value> = admin
        .get("/api/v1/admin/audit?user=doctor@alpha.example&action=case.")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_user.len(), 2, "{by_user:?}");
    assert!(by_user.iter().all(|r| r["actor"] == "doctor@alpha.example"));
    let nobody: Vec<Value> = admin
        .get("/api/v1/admin/audit?user=doctor@beta.example")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        nobody.is_empty(),
        "users of another organisation match nothing"
    );

    let r = admin
        .get(&format!("/api/v1/admin/audit.csv?case={id}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("seq,at,actor,action,target_type,target_id,details\r\n"));
    assert_eq!(csv.lines().count(), by_case.len() + 1);

    let v: Value = admin
        .post_json("/api/v1/admin/audit/verify", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["first_broken"], Value::Null, "{v}");
    let be = app.db.get_database_backend();
    app.db
        .execute(Statement::from_string(
            be,
            "UPDATE audit_log SET action = 'case.viewed' WHERE seq = 2",
        ))
        .await
        .unwrap();
    let v: Value = admin
        .post_json("/api/v1/admin/audit/verify", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["first_broken"]["seq"], 2, "{v}");
    let page = admin.page("/admin/audit").await.text().await.unwrap();
    assert!(page.contains("Audit trail") && page.contains("Verify the chain"));
}

on_both!(
    admins_read_and_verify_their_organisations_audit,
    editing_an_audit_row_breaks_the_chain_at_that_row,
    deleting_an_audit_row_is_detected,
    case_changes_are_audited_with_before_and_after,
);
