//! The dashboard's numbers equal a hand computation on a seeded dataset,
//! on SQLite and PostgreSQL: counts, urgency, trend, positivity, and
//! sensitivity / specificity / AUROC / ECE against the radiologists'
//! latest decisions, overall and by stratum; tenants never mix.

use crate::helpers::{spawn_app, Api, Backend, TestApp};
use crate::on_both;
use chrono::Utc;
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::{json, Value};
use uuid::Uuid;

async fn case(api: &Api, patient: &str, age: u8, sex: &str, urgency: &str) -> (Uuid, Uuid) {
    let r = api
        .post_json(
            "/api/v1/cases",
            &json!({"patient_ref": patient, "age": age, "sex": sex, "modality": "CT",
                    "body_part": "head", "urgency": urgency, "history": ""}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let me: Value = api.get("/api/v1/me").await.json().await.unwrap();
    (
        v["id"].as_str().unwrap().parse().unwrap(),
        me["user"]["id"].as_str().unwrap().parse().unwrap(),
    )
}

async fn org_of(app: &TestApp, case: Uuid) -> Uuid {
    use sea_orm::EntityTrait;
    entity::case::Entity::find_by_id(case)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .org_id
}

/// A study uploaded `hours_ago`, one finding on it, and optionally the
/// radiologist's decision (with an older, opposite one that must not count).
#[allow(clippy::too_many_arguments)]
async fn seed(
    app: &TestApp,
    case: Uuid,
    by: Uuid,
    reviewer: Uuid,
    p: f64,
    truth: Option<bool>,
    label: &str,
) -> Uuid {
    let org = org_of(app, case).await;
    let study = Uuid::new_v4();
    entity::study::ActiveModel {
        id: Set(study),
        org_id: Set(org),
        case_id: Set(case),
        study_uid: Set(format!("2.25.{}", study.as_u128())),
        modality: Set("CT".into()),
        description: Set(None),
        uploaded_by: Set(by),
        created_at: Set(Utc::now() - chrono::Duration::hours(3)),
    }
    .insert(&app.db)
    .await
    .unwrap();
    let job = app::pipeline::ssr::insert_job(&app.db, org, case, Some(study), None, "analyse", 3)
        .await
        .unwrap();
    let f = Uuid::new_v4();
    entity::finding::ActiveModel {
        id: Set(f),
        org_id: Set(org),
        case_id: Set(case),
        study_id: Set(study),
        job_id: Set(job),
        kind: Set("classification".into()),
        label: Set(label.into()),
        probability: Set(p),
        raw_probability: Set(Some(p)),
        threshold: Set(0.5),
        positive: Set(p >= 0.5),
        urgency: Set("routine".into()),
        model: Set("ich-demo".into()),
        model_version: Set("1.2.0".into()),
        intended_use: Set("test".into()),
        volume_ml: Set(None),
        created_at: Set(Utc::now()),
    }
    .insert(&app.db)
    .await
    .unwrap();
    if let Some(t) = truth {
        for (present, ago) in [(!t, 60), (t, 1)] {
            entity::finding_review::ActiveModel {
                id: Set(Uuid::new_v4()),
                org_id: Set(org),
                case_id: Set(case),
                finding_id: Set(Some(f)),
                study_id: Set(Some(study)),
                decision: Set(if present == (p >= 0.5) {
                    "accepted"
                } else {
                    "rejected"
                }
                .into()),
                label: Set(label.into()),
                present: Set(present),
                location: Set(None),
                reason: Set(None),
                reviewer_id: Set(reviewer),
                created_at: Set(Utc::now() - chrono::Duration::minutes(ago)),
            }
            .insert(&app.db)
            .await
            .unwrap();
        }
    }
    study
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-9
}

fn wilson(x: f64, n: f64) -> (f64, f64) {
    let z: f64 = 1.96;
    let p = x / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    (c - h, c + h)
}

async fn dashboard_matches_a_hand_computation(b: Backend) {
    let app = spawn_app(b).await;
    app.two_orgs().await;
    let doctor = app.login("doctor@alpha.example").await;
    let rad = app.login("radiologist@alpha.example").await;
    let me: Value = rad.get("/api/v1/me").await.json().await.unwrap();
    let rad_id: Uuid = me["user"]["id"].as_str().unwrap().parse().unwrap();
    let (a, doc) = case(&doctor, "A", 30, "M", "routine").await;
    let (bb, _) = case(&doctor, "B", 70, "F", "stat").await;
    let (c, _) = case(&doctor, "C", 54, "F", "urgent").await;
    // (case, probability, radiologist's call)
    let data: [(Uuid, f64, Option<bool>); 11] = [
        (a, 0.9, Some(true)),
        (bb, 0.8, Some(true)),
        (c, 0.7, Some(true)),
        (a, 0.4, Some(true)),
        (bb, 0.6, Some(false)),
        (c, 0.3, Some(false)),
        (a, 0.2, Some(false)),
        (bb, 0.1, Some(false)),
        (c, 0.05, Some(false)),
        (a, 0.5, Some(false)),
        (a, 0.95, None),
    ];
    for (k, p, t) in data {
        seed(&app, k, doc, rad_id, p, t, "intraparenchymal").await;
    }
    // Another organisation's data never shows.
    let beta = app.login("doctor@beta.example").await;
    let (z, zdoc) = case(&beta, "Z", 40, "M", "stat").await;
    let beta_rad = Uuid::new_v4();
    seed(&app, z, zdoc, beta_rad, 0.99, None, "intraparenchymal").await;

    let admin = app.login("admin@alpha.example").await;
    let r = admin
        .get("/api/v1/analytics?scope=organisation&period=day")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["scope"], "organisation");
    let t = &d["totals"];
    assert_eq!(t["cases"], 3);
    assert_eq!(t["studies_analysed"], 11);
    assert_eq!(t["findings"], 11);
    assert_eq!(t["positive_findings"], 6, "0.95 0.9 0.8 0.7 0.6 0.5");
    assert_eq!(t["signed_reports"], 0);
    assert_eq!(t["mean_turnaround_hours"], Value::Null);
    let urg: Vec<(String, i64)> = d["urgency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["key"].as_str().unwrap().to_owned(),
                u["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        urg,
        [
            ("routine".into(), 1),
            ("urgent".into(), 1),
            ("stat".into(), 1)
        ]
    );
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(d["trend"], json!([{"key": today, "n": 3}]));
    let l = &d["labels"][0];
    assert_eq!(l["findings"], 11);
    assert_eq!(l["positives"], 6);
    let sum: f64 = data.iter().map(|d| d.1).sum();
    assert!(close(&l["mean_probability"], sum / 11.0));
    assert!(close(&l["positivity_rate"], 6.0 / 11.0));

    // Performance against the latest decision of each confirmed finding.
    let perf = d["performance"].as_array().unwrap();
    let row = |s: &str| {
        perf.iter()
            .find(|p| p["stratum"] == s)
            .unwrap_or_else(|| panic!("no {s}: {perf:?}"))
    };
    let all = row("all");
    assert_eq!(
        (
            all["confirmed"].as_i64(),
            all["tp"].as_i64(),
            all["fp"].as_i64(),
            all["tn"].as_i64(),
            all["fn"].as_i64()
        ),
        (Some(10), Some(3), Some(2), Some(4), Some(1))
    );
    assert!(close(&all["sensitivity"]["value"], 0.75));
    let (lo, hi) = wilson(3.0, 4.0);
    assert!(close(&all["sensitivity"]["low"], lo) && close(&all["sensitivity"]["high"], hi));
    assert!(close(&all["specificity"]["value"], 4.0 / 6.0));
    // 22 of the 24 (present, absent) pairs are ranked right.
    assert!(close(&all["auroc"]["value"], 22.0 / 24.0));
    // ECE over ten bins, by hand.
    let confirmed: Vec<(f64, bool)> = data.iter().filter_map(|d| d.2.map(|t| (d.1, t))).collect();
    let mut ece = 0.0;
    for bin in 0..10 {
        let inb: Vec<&(f64, bool)> = confirmed
            .iter()
            .filter(|(p, _)| ((p * 10.0).floor() as usize).min(9) == bin)
            .collect();
        if inb.is_empty() {
            continue;
        }
        let n = inb.len() as f64;
        let mean_p = inb.iter().map(|x| x.0).sum::<f64>() / n;
        let frac = inb.iter().filter(|x| x.1).count() as f64 / n;
        ece += (mean_p - frac).abs() * n / confirmed.len() as f64;
    }
    assert!(close(&all["ece"], ece), "{} vs {ece}", all["ece"]);
    // Women: cases B and C.
    let f = row("sex F");
    assert_eq!(
        (
            f["tp"].as_i64(),
            f["fp"].as_i64(),
            f["tn"].as_i64(),
            f["fn"].as_i64()
        ),
        (Some(2), Some(1), Some(3), Some(0))
    );
    assert!(close(&f["sensitivity"]["value"], 1.0));
    assert!(close(&f["specificity"]["value"], 0.75));
    let old = row("age 65+");
    assert_eq!(old["confirmed"], 3);
    let young = row("age 18-39");
    assert_eq!(young["confirmed"], 4);

    // CSV of the same numbers.
    let r = admin
        .get("/api/v1/analytics.csv?table=performance&scope=organisation")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("model,model_version,label,stratum,confirmed,tp,fp,tn,fn,sensitivity"));
    assert!(
        csv.contains("ich-demo,1.2.0,intraparenchymal,all,10,3,2,4,1,0.7500,"),
        "{csv}"
    );
    let r = admin.get("/api/v1/analytics.csv?table=secrets").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = admin.get("/api/v1/analytics?period=decade").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Scopes: a doctor asking for the organisation gets their own work; a
    // doctor with no cases sees zeros; the other organisation sees only its own.
    let mine: Value = doctor
        .get("/api/v1/analytics?scope=organisation")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["scope"], "me");
    assert_eq!(mine["totals"]["cases"], 3);
    let d2 = app.login("doctor2@alpha.example").await;
    let none: Value = d2.get("/api/v1/analytics").await.json().await.unwrap();
    assert_eq!(none["totals"]["cases"], 0);
    assert_eq!(none["performance"], json!([]));
    let badmin = app.login("admin@beta.example").await;
    let other: Value = badmin
        .get("/api/v1/analytics?scope=organisation")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["totals"]["cases"], 1);
    assert_eq!(other["totals"]["findings"], 1);
    let month: Value = admin
        .get("/api/v1/analytics?scope=organisation&period=month")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        month["trend"],
        json!([{"key": Utc::now().format("%Y-%m").to_string(), "n": 3}])
    );
    let page = admin
        .page("/analytics?scope=organisation")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Model performance against confirmed labels"));
    assert!(page.contains("<svg"));

    // Threshold tuning: the trade-off on confirmed findings, then a new
    // operating point for the organisation, audited.
    assert_eq!(
        doctor.get("/api/v1/admin/thresholds").await.status(),
        StatusCode::FORBIDDEN
    );
    let rows: Vec<Value> = admin
        .get("/api/v1/admin/thresholds")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["confirmed"], 10);
    assert_eq!(rows[0]["org_threshold"], Value::Null);
    let at = |rows: &Vec<Value>, t: f64| {
        rows[0]["curve"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| (p["threshold"].as_f64().unwrap() - t).abs() < 1e-9)
            .unwrap()
            .clone()
    };
    let p = at(&rows, 0.5);
    assert!(
        close(&p["sensitivity"], 0.75) && close(&p["specificity"], 4.0 / 6.0),
        "{p}"
    );
    // At 0.25 every present finding is called, and 0.3, 0.5 and 0.6 of the absent ones.
    let p = at(&rows, 0.25);
    assert!(
        close(&p["sensitivity"], 1.0) && close(&p["specificity"], 3.0 / 6.0),
        "{p}"
    );
    for bad in [
        json!({"model": "ich-demo", "label": "intraparenchymal", "positive_at": 1.5}),
        json!({"model": "ich-demo", "label": "no-such-label", "positive_at": 0.3}),
    ] {
        let r = admin.put_json("/api/v1/admin/thresholds", &bad).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let set = json!({"model": "ich-demo", "label": "intraparenchymal", "positive_at": 0.35});
    assert_eq!(
        doctor
            .put_json("/api/v1/admin/thresholds", &set)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = admin.put_json("/api/v1/admin/thresholds", &set).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rows: Vec<Value> = r.json().await.unwrap();
    assert_eq!(rows[0]["org_threshold"], 0.35);
    let audit: Vec<Value> = admin
        .get("/api/v1/admin/audit?action=threshold.set")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["details"]["before"]["positive_at"], Value::Null);
    assert_eq!(audit[0]["details"]["after"]["positive_at"], 0.35);
    app.stop().await;
}

async fn settled_findings(api: &Api, id: &str, n: usize) -> Vec<Value> {
    let jobs = crate::pipeline::settle_n(api, id, n).await;
    assert!(jobs.iter().all(|j| j["state"] == "completed"), "{jobs:?}");
    api.get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap()
}

/// The pipeline applies the organisation's threshold to new analyses.
async fn org_threshold_changes_the_models_call(b: Backend) {
    use crate::pipeline::{ct_study, tiny_ct_pack_constant, upload};
    let tmp = tempfile::tempdir().unwrap();
    let mut s = crate::helpers::settings_for(&b, tmp.path());
    s.job_poll_ms = 50;
    s.evidence = false;
    tiny_ct_pack_constant(&s.models_dir());
    let app = crate::helpers::start(s).await;
    app.two_orgs().await;
    let doctor = app.login("doctor@alpha.example").await;
    let admin = app.login("admin@alpha.example").await;
    let c = doctor.create_case("THRESH").await;
    let id = c["id"].as_str().unwrap();
    upload(&doctor, id, &ct_study(&tmp.path().join("a"), 1, 1)).await;
    let first = settled_findings(&doctor, id, 1).await;
    let f = first
        .iter()
        .find(|f| f["label"] == "intraparenchymal")
        .unwrap();
    assert_eq!(f["positive"], true);
    assert!((f["threshold"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    let c = first
        .iter()
        .find(|f| f["label"] == "calcification")
        .unwrap();
    assert_eq!(c["positive"], false);
    // This pack scores calcification exactly sigmoid(-12) ≈ 6.1e-6 on
    // every image: an operating point below that flips the call.
    let r = admin
        .put_json(
            "/api/v1/admin/thresholds",
            &json!({"model": "test-ich-tiny", "label": "calcification", "positive_at": 1e-6}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    upload(&doctor, id, &ct_study(&tmp.path().join("b"), 2, 1)).await;
    let both = settled_findings(&doctor, id, 2).await;
    let newer = both
        .iter()
        .find(|f| f["label"] == "calcification" && f["study_id"] != first[0]["study_id"])
        .unwrap_or_else(|| panic!("{both:?}"));
    assert_eq!(newer["positive"], true, "{newer}");
    assert!(
        (newer["threshold"].as_f64().unwrap() - 1e-6).abs() < 1e-9,
        "{newer}"
    );
    let older = both
        .iter()
        .find(|f| f["label"] == "calcification" && f["study_id"] == first[0]["study_id"])
        .unwrap();
    assert_eq!(
        older["positive"], false,
        "earlier results stay as they were"
    );
    app.stop().await;
}

on_both!(
    dashboard_matches_a_hand_computation,
    org_threshold_changes_the_models_call
);

/// Every CSV export goes through one writer: RFC 4180 quoting, and cells a
/// spreadsheet would run as a formula defused with a leading quote.
#[test]
fn csv_cells_are_quoted_and_formulas_defused() {
    let line = app::ssr::csv_line(&[
        "=HYPERLINK(\"http://x\")".into(),
        "a,b".into(),
        "say \"hi\"".into(),
        "@cmd".into(),
        "plain".into(),
    ]);
    assert_eq!(
        line,
        "\"'=HYPERLINK(\"\"http://x\"\")\",\"a,b\",\"say \"\"hi\"\"\",'@cmd,plain\r\n"
    );
}
