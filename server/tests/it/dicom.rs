//! Studies pushed over DICOM by dcmtk's `storescu` into the running server:
//! accepted only from registered calling AE titles, de-identified, grouped
//! into one case per study, analysed, and a study sent in parts lands in
//! the same case.

use crate::helpers::{hang_guard, settings_for, start, Backend, PASSWORD};
use crate::on_both;
use crate::pipeline::{app_with, ct_study, settle, tiny_ct_pack, upload};
use medvision::dicom::{add_node, NewNode};
use reqwest::StatusCode;
use serde_json::json;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// dcmtk comes with `scripts/setup.sh --test`; CI sets
/// MEDVISION_REQUIRE_DCMTK so a missing peer fails instead of skipping.
fn dcmtk() -> bool {
    let ok = Command::new("storescu").arg("--version").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("MEDVISION_REQUIRE_DCMTK").is_none(),
            "dcmtk is required (MEDVISION_REQUIRE_DCMTK) but storescu is not on PATH"
        );
        eprintln!("*** SKIPPED: dcmtk (storescu, echoscu) is not installed ***");
    }
    ok
}

async fn dcmtk_run(cmd: &str, args: Vec<String>) -> std::process::Output {
    let cmd = cmd.to_owned();
    tokio::task::spawn_blocking(move || Command::new(&cmd).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn echo_args(ae: &str, port: u16) -> Vec<String> {
    [
        "-aet",
        ae,
        "-aec",
        "MEDVISION",
        "127.0.0.1",
        &port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn store(ae: &str, port: u16, files: &[std::path::PathBuf]) {
    let mut a = vec!["-R".to_string()];
    a.extend(echo_args(ae, port));
    a.extend(files.iter().map(|p| p.display().to_string()));
    let out = dcmtk_run("storescu", a).await;
    assert!(
        out.status.success(),
        "storescu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn dicom_cases(api: &crate::helpers::Api) -> Vec<Value> {
    let page: Value = api.get("/api/v1/cases").await.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["patient_ref"].as_str().unwrap().starts_with("DICOM-"))
        .cloned()
        .collect()
}

async fn received_over_dicom_becomes_an_analysed_case(backend: Backend) {
    if !dcmtk() {
        return;
    }
    let (app, tmp) = app_with(backend, |s| {
        s.scp_port = Some(0);
        s.scp_quiet_secs = 1;
    })
    .await;
    let port = app.dicom_port.expect("the SCP runs inside serve");

    // Not registered: refused at association.
    let out = dcmtk_run("echoscu", echo_args("CT_SCANNER_1", port)).await;
    assert!(
        !out.status.success(),
        "an unknown calling AE title is refused"
    );

    add_node(
        &app.db,
        NewNode {
            org: "Org alpha",
            ae_title: "CT_SCANNER_1",
            kind: "source",
            host: "",
            port: 0,
            owner_email: "doctor@alpha.example",
            send_on_sign: false,
        },
    )
    .await
    .unwrap();
    // The SCP learns of new nodes within seconds, without a restart.
    let echoed = hang_guard(async {
        loop {
            if dcmtk_run("echoscu", echo_args("CT_SCANNER_1", port))
                .await
                .status
                .success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(echoed.is_some(), "echoscu never succeeded");

    let all = ct_study(&tmp.path().join("in"), 1, 24);
    store("CT_SCANNER_1", port, &all[..20]).await;

    let api = app.login("doctor@alpha.example").await;
    let case = hang_guard(async {
        loop {
            if let Some(c) = dicom_cases(&api).await.pop() {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("no case was opened for the received study");
    let id = case["id"].as_str().unwrap().to_owned();
    assert_eq!(case["modality"], "CT");
    assert!(case["history"]
        .as_str()
        .unwrap()
        .contains("Received over DICOM from CT_SCANNER_1"));
    assert!(
        !case["patient_ref"].as_str().unwrap().contains("PHANTOM"),
        "the case list never shows the Patient ID"
    );

    let jobs = settle(&api, &id).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "completed", "{jobs:?}");
    let studies: Value = api
        .get(&format!("/api/v1/cases/{id}/studies"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(studies.as_array().unwrap().len(), 1);
    let sid = studies[0]["id"].as_str().unwrap();
    let inst: Value = api
        .get(&format!("/api/v1/studies/{sid}/instances"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inst.as_array().unwrap().len(), 20);
    let iid = inst[0]["id"].as_str().unwrap();
    let meta: Value = api
        .get(&format!("/api/v1/instances/{iid}/metadata"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["00120062"]["Value"][0], "YES", "de-identified");
    assert!(
        !meta.to_string().contains("PHANTOM^HEAD"),
        "no patient name in the stored header"
    );

    // The rest of the series arrives later: same case, one more handover.
    store("CT_SCANNER_1", port, &all[20..]).await;
    let grown = hang_guard(async {
        loop {
            let inst: Value = api
                .get(&format!("/api/v1/studies/{sid}/instances"))
                .await
                .json()
                .await
                .unwrap();
            if inst.as_array().unwrap().len() == 24 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(grown.is_some(), "the second part never joined the study");
    assert_eq!(dicom_cases(&api).await.len(), 1, "still one case");
    assert_eq!(crate::helpers::count(&app.db, "received_studies").await, 1);

    // The other organisation sees none of it.
    let beta = app.login("doctor@beta.example").await;
    assert!(dicom_cases(&beta).await.is_empty());
    let r = beta.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Nothing is left in the spool.
    let spool = app.settings.data_dir.join("spool/dicom");
    let left: Vec<_> = crate::helpers::files_under(&spool)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn sends_of(api: &crate::helpers::Api, case: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/cases/{case}/dicom/sends"))
        .await
        .json()
        .await
        .unwrap()
}

async fn signed_results_reach_the_pacs_as_a_structured_report(backend: Backend) {
    if !dcmtk() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&backend, tmp.path());
    s.job_poll_ms = 50;
    s.evidence = false;
    tiny_ct_pack(&s.models_dir());
    let app = start(s).await;
    app.two_orgs().await;

    // dcmtk's storescp is the PACS.
    let recv = tmp.path().join("pacs");
    std::fs::create_dir_all(&recv).unwrap();
    let pacs_port = free_port();
    let mut pacs = Command::new("storescp")
        .args(["-aet", "PACS_MAIN", "-od"])
        .arg(&recv)
        .arg(pacs_port.to_string())
        .spawn()
        .unwrap();
    for (ae, port, auto) in [
        ("PACS_MAIN", pacs_port, true),
        ("PACS_DOWN", free_port(), false),
    ] {
        add_node(
            &app.db,
            NewNode {
                org: "Org alpha",
                ae_title: ae,
                kind: "destination",
                host: "127.0.0.1",
                port,
                owner_email: "admin@alpha.example",
                send_on_sign: auto,
            },
        )
        .await
        .unwrap();
    }

    let doctor = app.login("doctor@alpha.example").await;
    let rad = app.login("radiologist@alpha.example").await;
    let beta = app.login("radiologist@beta.example").await;
    let case = doctor.create_case("PSEUDO-PACS").await;
    let id = case["id"].as_str().unwrap().to_owned();
    upload(&doctor, &id, &ct_study(&tmp.path().join("in"), 1, 3)).await;
    settle(&doctor, &id).await;
    let findings: Vec<Value> = rad
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    let iph = findings
        .iter()
        .find(|f| f["label"] == "intraparenchymal")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/findings/{iph}/review"),
            &json!({"decision": "reject", "reason": "beam-hardening artefact"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Only a signed report goes to the PACS.
    let send = format!("/api/v1/cases/{id}/dicom/send");
    let r = rad.post_json(&send, &json!({})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // The export works on a draft, whose SR says UNVERIFIED.
    let r = doctor.get(&format!("/api/v1/cases/{id}/dicom.zip")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let names: Vec<String> = z.file_names().map(str::to_owned).collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("IMAGES/")).count(),
        3,
        "{names:?}"
    );
    let sr_name = names.iter().find(|n| n.starts_with("SR/")).unwrap().clone();
    let mut sr = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name(&sr_name).unwrap(), &mut sr).unwrap();
    let draft_sr = tmp.path().join("draft-sr.dcm");
    std::fs::write(&draft_sr, &sr).unwrap();
    let dump = dcmtk_run("dsrdump", vec![draft_sr.display().to_string()]).await;
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(text.contains("UNVERIFIED"), "{text}");

    // Signing queues the automatic send; the outbox delivers it.
    let r = rad
        .post_json(
            &format!("/api/v1/cases/{id}/report/sign"),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let delivered = hang_guard(async {
        loop {
            let s = sends_of(&rad, &id).await;
            if s.iter().any(|x| x["state"] == "sent") {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the automatic send never completed");
    assert_eq!(
        delivered.len(),
        1,
        "only the send-on-sign destination: {delivered:?}"
    );
    assert_eq!(delivered[0]["destination"], "PACS_MAIN");
    assert_eq!(delivered[0]["attempts"], 1);
    let _ = pacs.kill();
    let _ = pacs.wait();
    let got: Vec<std::path::PathBuf> = std::fs::read_dir(&recv)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    // storescp names each file by its modality: one SR, and the key images
    // with their overlays as derived Secondary Captures.
    let name = |p: &std::path::PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let srs: Vec<_> = got.iter().filter(|p| name(p).starts_with("SR")).collect();
    assert_eq!(srs.len(), 1, "the PACS received one SR: {got:?}");
    for key in got.iter().filter(|p| !name(p).starts_with("SR")) {
        let d = dcmtk_run("dcmdump", vec!["+L".into(), key.display().to_string()]).await;
        let d = String::from_utf8_lossy(&d.stdout);
        assert!(d.contains("DERIVED\\SECONDARY"), "{d}");
        assert!(d.contains("AI suggestion"), "{d}");
    }
    let sr_file = srs[0].clone();
    let dump = dcmtk_run("dsrdump", vec!["+Pl".into(), sr_file.display().to_string()]).await;
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("VERIFIED"), "{text}");
    assert!(!text.contains("UNVERIFIED"), "{text}");
    assert!(text.contains("intraparenchymal"), "{text}");
    assert!(text.contains("beam-hardening artefact"), "{text}");
    assert!(
        text.contains("not for clinical use"),
        "demo models are labelled: {text}"
    );
    // It refers to the stored instances by UID.
    let dcm = dcmtk_run("dcmdump", vec![sr_file.display().to_string()]).await;
    let d = String::from_utf8_lossy(&dcm.stdout);
    let studies: Value = rad
        .get(&format!("/api/v1/cases/{id}/studies"))
        .await
        .json()
        .await
        .unwrap();
    let sid = studies[0]["id"].as_str().unwrap();
    let inst: Value = rad
        .get(&format!("/api/v1/studies/{sid}/instances"))
        .await
        .json()
        .await
        .unwrap();
    for i in inst.as_array().unwrap() {
        assert!(d.contains(i["sop_uid"].as_str().unwrap()), "{d}");
    }

    // A manual send to a PACS that is down fails, is kept with its reason
    // and is retried later.
    let r = doctor.post_json(&send, &json!({})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = beta.post_json(&send, &json!({})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = rad
        .post_json(&send, &json!({"destination": "NO_SUCH_AE"}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = rad
        .post_json(&send, &json!({"destination": "PACS_DOWN"}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let failed_once = hang_guard(async {
        loop {
            let s = sends_of(&rad, &id).await;
            if let Some(x) = s
                .iter()
                .find(|x| x["destination"] == "PACS_DOWN" && x["attempts"] == 1)
            {
                return x.clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the send to the down PACS was never tried");
    assert_eq!(
        failed_once["state"], "queued",
        "retried later: {failed_once}"
    );
    assert!(
        failed_once["last_error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{failed_once}"
    );
    {
        use entity::audit_log;
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        for (action, n) in [("dicom.send_queued", 2), ("dicom.sent", 1)] {
            let got = audit_log::Entity::find()
                .filter(audit_log::Column::Action.eq(action))
                .count(&app.db)
                .await
                .unwrap();
            assert_eq!(got, n, "{action}");
        }
    }
    app.stop().await;
}

on_both!(
    received_over_dicom_becomes_an_analysed_case,
    signed_results_reach_the_pacs_as_a_structured_report
);
