//! FHIR R4 reads of a case's results, validated against the base structure
//! definitions (the fhir.resources models, in the Python environment
//! `scripts/setup.sh --test` makes), scoped to the caller's organisation.

use crate::helpers::{settings_for, start, Backend, PASSWORD};
use crate::on_both;
use crate::pipeline::{ct_study, settle, tiny_ct_pack, upload};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;

/// The validator's interpreter: MEDVISION_FHIR_PYTHON, or the venv set-up
/// makes. CI sets MEDVISION_REQUIRE_FHIR so its absence fails the test.
fn validator() -> Option<PathBuf> {
    let p = std::env::var_os("MEDVISION_FHIR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/medvision/fhir-venv/bin/python")
        });
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("MEDVISION_REQUIRE_FHIR").is_none(),
        "MEDVISION_REQUIRE_FHIR is set but {} does not exist",
        p.display()
    );
    eprintln!(
        "*** SKIPPED the FHIR structure validation: no fhir.resources venv ({}) ***",
        p.display()
    );
    None
}

async fn fhir(api: &crate::helpers::Api, path: &str) -> (StatusCode, Value) {
    let r = api.get(path).await;
    let status = r.status();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "{path}"
    );
    (status, r.json().await.unwrap())
}

fn validate(python: &std::path::Path, dir: &std::path::Path, docs: &[(&str, &Value)]) {
    let mut files = Vec::new();
    for (name, v) in docs {
        let p = dir.join(format!("{name}.json"));
        std::fs::write(&p, v.to_string()).unwrap();
        files.push(p);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/fhir_validate.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "FHIR validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn reports_studies_and_findings_as_fhir_r4(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&backend, tmp.path());
    s.job_poll_ms = 50;
    s.evidence = false;
    tiny_ct_pack(&s.models_dir());
    let app = start(s).await;
    app.two_orgs().await;
    let doctor = app.login("doctor@alpha.example").await;
    let rad = app.login("radiologist@alpha.example").await;
    let beta = app.login("radiologist@beta.example").await;
    let case = doctor.create_case("PSEUDO-FHIR").await;
    let id = case["id"].as_str().unwrap().to_owned();
    upload(&doctor, &id, &ct_study(&tmp.path().join("in"), 1, 2)).await;
    settle(&doctor, &id).await;

    // Found by the case id, as a draft: preliminary.
    let (st, bundle) = fhir(
        &doctor,
        &format!("/fhir/DiagnosticReport?identifier=urn:medvision:case|{id}"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["total"], 1);
    let draft = bundle["entry"][0]["resource"].clone();
    assert_eq!(draft["status"], "preliminary");
    let rid = draft["id"].as_str().unwrap().to_owned();

    let findings: Vec<Value> = rad
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    let fid = findings[0]["id"].as_str().unwrap().to_owned();
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/findings/{fid}/review"),
            &json!({"decision": "reject", "reason": "motion artefact"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/report/sign"),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let (st, report) = fhir(&doctor, &format!("/fhir/DiagnosticReport/{rid}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(report["status"], "final");
    assert_eq!(report["identifier"][0]["value"], id.as_str());
    assert_eq!(report["code"]["coding"][0]["code"], "18748-4");
    assert!(report["resultsInterpreter"][0]["display"].is_string());
    assert_eq!(
        report["result"].as_array().unwrap().len(),
        findings.len(),
        "every finding is a result"
    );
    let study_ref = report["imagingStudy"][0]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, imaging) = fhir(&doctor, &format!("/fhir/{study_ref}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(imaging["numberOfInstances"], 2);
    assert_eq!(imaging["series"][0]["modality"]["code"], "CT");
    assert!(imaging["identifier"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("urn:oid:"));
    let (st, obs) = fhir(&doctor, &format!("/fhir/Observation/{fid}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(obs["status"], "final");
    assert_eq!(obs["interpretation"][0]["coding"][0]["code"], "NEG");
    assert!(obs["note"][0]["text"]
        .as_str()
        .unwrap()
        .contains("motion artefact"));
    assert!(obs["method"]["text"]
        .as_str()
        .unwrap()
        .contains("not for clinical use"));
    let (_, meta) = fhir(&doctor, "/fhir/metadata").await;
    assert_eq!(meta["fhirVersion"], "4.0.1");

    // Another organisation and anonymous callers get OperationOutcomes.
    for path in [
        format!("/fhir/DiagnosticReport/{rid}"),
        format!("/fhir/{study_ref}"),
        format!("/fhir/Observation/{fid}"),
    ] {
        let (st, oo) = fhir(&beta, &path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert!(!oo.to_string().contains("PSEUDO-FHIR"));
    }
    let (_, none) = fhir(
        &beta,
        &format!("/fhir/DiagnosticReport?identifier=urn:medvision:case|{id}"),
    )
    .await;
    assert_eq!(none["total"], 0);
    let anon = crate::helpers::Api::new(&app.url);
    let (st, oo) = fhir(&anon, &format!("/fhir/DiagnosticReport/{rid}")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(oo["resourceType"], "OperationOutcome");

    if let Some(py) = validator() {
        validate(
            &py,
            tmp.path(),
            &[
                ("bundle", &bundle),
                ("report", &report),
                ("imaging", &imaging),
                ("observation", &obs),
                ("capabilities", &meta),
                ("outcome", &oo),
                ("empty-bundle", &none),
            ],
        );
    }
    app.stop().await;
}

on_both!(reports_studies_and_findings_as_fhir_r4);
