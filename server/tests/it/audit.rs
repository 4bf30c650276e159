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
    assert_eq!(rows.last().unwrap().target_id.as_deref(), Some(id));
    let report = app::audit::ssr::verify(&app.db).await.unwrap();
    assert_eq!(report.first_broken, None);
}

on_both!(
    editing_an_audit_row_breaks_the_chain_at_that_row,
    deleting_an_audit_row_is_detected,
    case_changes_are_audited_with_before_and_after,
);
