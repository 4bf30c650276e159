//! DICOMweb against the running server, speaking the wire format a PACS or
//! viewer would: STOW-RS multipart/related bodies in, QIDO-RS searches,
//! WADO-RS instances, frames (compared with the pixels that were sent),
//! rendered images and metadata out, all scoped to the organisation.

use crate::helpers::{settings_for, start, Api, Backend};
use crate::on_both;
use crate::pipeline::{ct_study, settle, tiny_ct_pack};
use reqwest::StatusCode;
use serde_json::Value;

fn stow_body(parts: &[Vec<u8>], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

async fn stow(api: &Api, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    api.http
        .post(api.url("/dicomweb/studies"))
        .header("x-csrf-token", &api.csrf)
        .header("content-type", content_type)
        .header("accept", "application/dicom+json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The parts of a multipart/related response, with their content types.
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(
        content_type.starts_with("multipart/related"),
        "{content_type}"
    );
    let b = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap()
        .trim_matches('"');
    let delim = format!("--{b}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = find(rest, delim.as_bytes()) {
        rest = &rest[i + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let ct = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap_or("")
            .to_owned();
        let data = &rest[head_end + 4..];
        let end = find(data, format!("\r\n{delim}").as_bytes()).unwrap();
        out.push((ct, data[..end].to_vec()));
        rest = &data[end + 2..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn pixel_bytes(dicom: &[u8]) -> Vec<u8> {
    let o = dicom_object::from_reader(std::io::Cursor::new(&dicom[128..])).unwrap();
    o.element(dicom_dictionary_std::tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

async fn json_of(api: &Api, path: &str) -> (StatusCode, Value) {
    let r = api.get(path).await;
    let st = r.status();
    let v = r.json().await.unwrap_or(Value::Null);
    (st, v)
}

async fn stow_qido_and_wado_round_trip(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&backend, tmp.path());
    s.job_poll_ms = 50;
    s.evidence = false;
    // Dates shifted per patient rather than removed, so StudyDate matches.
    s.deid_retain_dates = true;
    tiny_ct_pack(&s.models_dir());
    let app = start(s).await;
    app.two_orgs().await;
    let doctor = app.login("doctor@alpha.example").await;
    let beta = app.login("doctor@beta.example").await;

    let files = ct_study(&tmp.path().join("in"), 1, 3);
    let sent: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    // Wrong media types are refused before anything is stored.
    let r = stow(
        &doctor,
        "multipart/form-data; boundary=x",
        stow_body(&sent, "x"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = stow(
        &doctor,
        "multipart/related; type=\"application/dicom+json\"; boundary=x",
        stow_body(&sent, "x"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(crate::helpers::count(&app.db, "instances").await, 0);

    // Three slices and one part that is not DICOM: 202, each accounted for.
    let mut with_junk = sent.clone();
    with_junk.push(b"this is not a DICOM file at all".to_vec());
    let r = stow(
        &doctor,
        "multipart/related; type=\"application/dicom\"; boundary=mvtestboundary",
        stow_body(&with_junk, "mvtestboundary"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/dicom+json"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["00081199"]["Value"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["00081198"]["Value"].as_array().unwrap().len(), 1, "{v}");
    let retrieve = v["00081190"]["Value"][0].as_str().unwrap().to_owned();
    let study_uid = retrieve.rsplit('/').next().unwrap().to_owned();

    let page: Value = doctor.get("/api/v1/cases").await.json().await.unwrap();
    let case = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["history"].as_str().unwrap().contains("STOW-RS"))
        .expect("a case for the stored study")
        .clone();
    settle(&doctor, case["id"].as_str().unwrap()).await;

    // QIDO-RS.
    let (st, studies) = json_of(&doctor, "/dicomweb/studies").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(studies.as_array().unwrap().len(), 1);
    assert_eq!(studies[0]["0020000D"]["Value"][0], study_uid.as_str());
    assert_eq!(studies[0]["00201208"]["Value"][0], 3);
    assert_eq!(studies[0]["00080061"]["Value"][0], "CT");
    let (_, hit) = json_of(&doctor, "/dicomweb/studies?ModalitiesInStudy=CT").await;
    assert_eq!(hit.as_array().unwrap().len(), 1);
    let (_, miss) = json_of(&doctor, "/dicomweb/studies?ModalitiesInStudy=MR").await;
    assert!(miss.as_array().unwrap().is_empty());
    let (_, by_uid) = json_of(
        &doctor,
        &format!("/dicomweb/studies?StudyInstanceUID={study_uid}"),
    )
    .await;
    assert_eq!(by_uid.as_array().unwrap().len(), 1);
    let (_, by_patient) = json_of(&doctor, "/dicomweb/studies?PatientID=DICOM-*").await;
    assert_eq!(by_patient.as_array().unwrap().len(), 1);
    let (_, dated) = json_of(&doctor, "/dicomweb/studies?StudyDate=19000101-").await;
    assert_eq!(dated.as_array().unwrap().len(), 1);
    let (_, future) = json_of(&doctor, "/dicomweb/studies?StudyDate=20300101-20391231").await;
    assert!(future.as_array().unwrap().is_empty());
    let (st, err) = json_of(&doctor, "/dicomweb/studies?PatientBirthDate=19700101").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    let (_, series) = json_of(&doctor, &format!("/dicomweb/studies/{study_uid}/series")).await;
    assert_eq!(series.as_array().unwrap().len(), 1);
    assert_eq!(series[0]["00201209"]["Value"][0], 3);
    let series_uid = series[0]["0020000E"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, insts) = json_of(
        &doctor,
        &format!("/dicomweb/studies/{study_uid}/series/{series_uid}/instances"),
    )
    .await;
    assert_eq!(insts.as_array().unwrap().len(), 3);
    let (_, first) = json_of(&doctor, "/dicomweb/studies?limit=1").await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    let (_, past) = json_of(&doctor, "/dicomweb/studies?limit=1&offset=1").await;
    assert!(past.as_array().unwrap().is_empty(), "one study only");
    let (_, all) = json_of(&doctor, "/dicomweb/instances?Modality=CT&limit=2").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "limit applies");

    // WADO-RS: the instance (de-identified), its metadata, a frame equal to
    // the pixels sent, and a rendering.
    let url = insts[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let sop = insts[0]["00080018"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let r = doctor.get(&url).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    let got = parts(&ct, &body);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "application/dicom");
    let stored = &got[0].1;
    assert_eq!(&stored[128..132], b"DICM");
    assert!(
        !String::from_utf8_lossy(stored).contains("PHANTOM^HEAD"),
        "the retrieved instance is de-identified"
    );
    let (_, meta) = json_of(&doctor, &format!("{url}/metadata")).await;
    assert_eq!(meta[0]["00080018"]["Value"][0], sop.as_str());
    let r = doctor.get(&format!("{url}/frames/1")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    let frame = parts(&ct, &r.bytes().await.unwrap());
    assert_eq!(frame.len(), 1);
    assert!(frame[0].0.starts_with("application/octet-stream"));
    assert_eq!(frame[0].1, pixel_bytes(stored), "frame = stored pixels");
    let originals: Vec<Vec<u8>> = sent.iter().map(|b| pixel_bytes(b)).collect();
    assert!(
        originals.contains(&frame[0].1),
        "frame = the pixels that were sent"
    );
    let r = doctor.get(&format!("{url}/frames/2")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "one frame only");
    let r = doctor.get(&format!("{url}/frames/x")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = doctor.get(&format!("{url}/rendered")).await;
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(&r.bytes().await.unwrap()[..4], b"\x89PNG");
    let r = doctor
        .http
        .get(doctor.url(&format!("{url}/rendered")))
        .header("accept", "image/jpeg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(&r.bytes().await.unwrap()[..2], b"\xff\xd8");

    // Another organisation finds nothing and retrieves nothing.
    let (_, none) = json_of(&beta, "/dicomweb/studies").await;
    assert!(none.as_array().unwrap().is_empty());
    for p in [
        url.clone(),
        format!("{url}/frames/1"),
        format!("{url}/metadata"),
    ] {
        assert_eq!(beta.get(&p).await.status(), StatusCode::NOT_FOUND, "{p}");
    }
    let anon = Api::new(&app.url);
    assert_eq!(
        anon.get("/dicomweb/studies").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

on_both!(stow_qido_and_wado_round_trip);
