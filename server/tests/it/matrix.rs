//! The access-control matrix, generated from the source: every REST,
//! DICOMweb and FHIR route (read from the `.route(…)` calls), every page
//! and every server function, for anonymous callers and for every kind of
//! outsider to a case (other organisation in each role, the same
//! organisation's admin, a doctor not on the case). What is not allowed
//! answers 401/403/404 and leaks nothing of the case in its body. A route
//! or server function added without a place in this matrix fails it.

use crate::helpers::*;
use crate::images::{corpus, part, upload};
use crate::on_both;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const SECRET: &str = "Matrix Secret Patient";
const HISTORY: &str = "sudden thunderclap headache";
const MESSAGE: &str = "please review the bleed";

/// Files that define routers, and where each is mounted. A new file with
/// routes must be added here (and so to the matrix).
const MOUNTS: &[(&str, &str)] = &[
    ("src/api.rs", "/api/v1"),
    ("src/images.rs", "/api/v1"),
    ("src/reports.rs", "/api/v1"),
    ("src/chat.rs", "/api/v1"),
    ("src/analytics.rs", "/api/v1"),
    ("src/audit_api.rs", "/api/v1"),
    ("src/dicom_results.rs", "/api/v1"),
    ("src/pipeline/api.rs", "/api/v1"),
    ("src/dicomweb.rs", "/dicomweb"),
    ("src/fhir.rs", "/fhir"),
    ("src/lib.rs", ""),
];

/// Served on the metrics listener, not the public one (tested in ops.rs).
const ELSEWHERE: &[&str] = &["src/telemetry.rs"];

/// Answer anyone, by design.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/fhir/metadata"),
    // Signing in and out need no session (a bad body is refused as such).
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/logout"),
];

/// The Rust sources under a folder.
fn rs_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect()
}

/// (method, full path) of every route in the server's source.
fn routes() -> BTreeSet<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rs_files(&root.join("src"));
    let mut out = BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let calls: Vec<&str> = text.split(".route(").skip(1).collect();
        if calls.is_empty() || ELSEWHERE.contains(&rel.as_str()) {
            continue;
        }
        let prefix = MOUNTS
            .iter()
            .find(|(file, _)| *file == rel)
            .unwrap_or_else(|| panic!("{rel} defines routes: add it to MOUNTS in matrix.rs"))
            .1;
        for call in calls {
            let path = call.split('"').nth(1).unwrap();
            // The call's arguments: up to its closing parenthesis.
            let mut depth = 0i32;
            let end = call
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth < 0
                })
                .map_or(call.len(), |(i, _)| i);
            let handlers = &call[..end];
            let mut found = false;
            for m in ["get", "post", "put", "patch", "delete"] {
                let direct =
                    handlers.contains(&format!(" {m}(")) || handlers.contains(&format!("({m}("));
                let chained = handlers.contains(&format!(".{m}("));
                let qualified = handlers.contains(&format!("routing::{m}("));
                if direct || chained || qualified {
                    out.insert((m.to_uppercase(), format!("{prefix}{path}")));
                    found = true;
                }
            }
            assert!(found, "no method found for {path} in {rel}");
        }
    }
    out
}

/// Every server function's endpoint, from the `#[server]` attributes.
fn server_functions() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src");
    let files = rs_files(&root);
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for attr in text.split("#[server(").skip(1) {
            let endpoint = attr
                .split("endpoint = \"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| {
                    panic!("a server function without an endpoint in {}", f.display())
                });
            out.insert(endpoint.to_owned());
        }
    }
    out
}

/// What the fixture made in organisation alpha.
struct Ids {
    case: String,
    study: String,
    instance: String,
    message: String,
    study_uid: String,
    series_uid: String,
    sop_uid: String,
}

impl Ids {
    /// What must never reach an outsider. `ids`: the case's ids count
    /// too (the same organisation's admin legitimately sees them in the
    /// audit log, never the case's content).
    fn secrets(&self, ids: bool) -> Vec<&str> {
        let mut v = vec![SECRET, HISTORY, MESSAGE, &self.study_uid, &self.sop_uid];
        if ids {
            v.extend([self.case.as_str(), &self.study, &self.instance]);
        }
        v
    }

    /// The same route for things that do not exist.
    fn fill_unknown(template: &str) -> String {
        let unknown = Ids {
            case: uuid::Uuid::new_v4().to_string(),
            study: uuid::Uuid::new_v4().to_string(),
            instance: uuid::Uuid::new_v4().to_string(),
            message: "987654321".into(),
            study_uid: format!("2.25.{}", uuid::Uuid::new_v4().as_u128()),
            series_uid: format!("2.25.{}", uuid::Uuid::new_v4().as_u128()),
            sop_uid: format!("2.25.{}", uuid::Uuid::new_v4().as_u128()),
        };
        unknown.fill(template)
    }

    /// A concrete path for a route template.
    fn fill(&self, template: &str) -> String {
        let rand = uuid::Uuid::new_v4().to_string();
        let mut out = String::new();
        let segs: Vec<&str> = template.split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            let prev = if i > 0 { segs[i - 1] } else { "" };
            let v = match *seg {
                "{id}" => match prev {
                    "cases" => self.case.clone(),
                    "studies" => self.study.clone(),
                    "instances" => self.instance.clone(),
                    "ImagingStudy" => self.study.clone(),
                    "DiagnosticReport" | "Observation" => self.case.clone(),
                    _ => rand.clone(),
                },
                "{message}" => self.message.clone(),
                "{study}" => self.study_uid.clone(),
                "{series}" => self.series_uid.clone(),
                "{sop}" => self.sop_uid.clone(),
                "{frames}" => "1".into(),
                "{finding}" => rand.clone(),
                s if s.starts_with('{') => {
                    panic!("no value for {s} in {template}: extend Ids::fill")
                }
                s => s.to_owned(),
            };
            out.push_str(&v);
        }
        out
    }
}

async fn fixture(app: &TestApp, dir: &Path) -> Ids {
    let owner = app.login("doctor@alpha.example").await;
    let r = owner
        .post_json(
            "/api/v1/cases",
            &serde_json::json!({ "patient_ref": SECRET, "age": 61, "sex": "F", "modality": "CT", "body_part": "head", "urgency": "stat", "history": HISTORY }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let case = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ct = std::fs::read(dir.join("CT_small.dcm")).unwrap();
    let r = upload(&owner, &case, vec![part("CT_small.dcm", ct)]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let studies: Value = owner
        .get(&format!("/api/v1/cases/{case}/studies"))
        .await
        .json()
        .await
        .unwrap();
    let study = studies[0]["id"].as_str().unwrap().to_owned();
    let study_uid = studies[0]["study_uid"].as_str().unwrap().to_owned();
    let instances: Value = owner
        .get(&format!("/api/v1/studies/{study}/instances"))
        .await
        .json()
        .await
        .unwrap();
    let instance = instances[0]["id"].as_str().unwrap().to_owned();
    let meta: Value = owner
        .get(&format!("/api/v1/instances/{instance}/metadata"))
        .await
        .json()
        .await
        .unwrap();
    let series_uid = meta["0020000E"]["Value"][0].as_str().unwrap().to_owned();
    let sop_uid = meta["00080018"]["Value"][0].as_str().unwrap().to_owned();
    let r = owner
        .post_json(
            &format!("/api/v1/cases/{case}/messages"),
            &serde_json::json!({ "body": MESSAGE }),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let message = r.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    // The owner really reaches every case route: the refusals below are
    // about who asks, not about broken ids.
    let ids = Ids {
        case,
        study,
        instance,
        message,
        study_uid,
        series_uid,
        sop_uid,
    };
    for p in [
        format!("/api/v1/cases/{}", ids.case),
        format!("/api/v1/instances/{}/render", ids.instance),
        ids.fill("/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata"),
        format!("/fhir/ImagingStudy/{}", ids.study),
    ] {
        let r = owner.get(&p).await;
        assert_eq!(r.status(), StatusCode::OK, "owner: {p}");
    }
    ids
}

async fn call(api: &Api, method: &str, path: &str) -> reqwest::Response {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = api
        .http
        .request(m.clone(), api.url(path))
        .header("x-csrf-token", &api.csrf)
        .header("accept", "application/json");
    if m != Method::GET {
        req = req.json(&serde_json::json!({}));
    }
    if path.ends_with("/chat") {
        // Ask for the websocket upgrade the page makes.
        req = api
            .http
            .get(api.url(path))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    }
    req.send().await.unwrap()
}

fn leaks<'a>(body: &str, ids: &'a Ids, with_ids: bool) -> Option<&'a str> {
    ids.secrets(with_ids).into_iter().find(|s| body.contains(s))
}

/// A page names the case id its address carries (the caller typed it);
/// anything else of the case is a leak.
fn page_leaks<'a>(body: &str, ids: &'a Ids, with_ids: bool) -> Option<&'a str> {
    ids.secrets(with_ids)
        .into_iter()
        .filter(|s| *s != ids.case)
        .find(|s| body.contains(s))
}

/// The same organisation's admin reads the audit log, which names cases.
fn audit_reader(who: &str, what: &str) -> bool {
    who == "admin@alpha.example" && what.contains("audit")
}

/// Server function arguments, by endpoint. Every server function must
/// have a row: the test fails on one that is missing.
/// (endpoint, case-scoped: an outsider must be refused, form fields)
type SfnRow = (&'static str, bool, Vec<(&'static str, String)>);

fn sfn_args(ids: &Ids) -> Vec<SfnRow> {
    let c = ids.case.clone();
    let r = uuid::Uuid::new_v4().to_string();
    // (endpoint, case-scoped: an outsider must be refused, fields)
    vec![
        ("list_cases", false, vec![("query[limit]", "50".into())]),
        ("get_case", true, vec![("id", c.clone())]),
        ("colleagues", false, vec![]),
        (
            "save_case",
            true,
            vec![
                ("id", c.clone()),
                ("patient_ref", "x".into()),
                ("age", "1".into()),
                ("sex", "M".into()),
                ("modality", "CT".into()),
                ("body_part", "head".into()),
                ("urgency", "routine".into()),
                ("history", "x".into()),
            ],
        ),
        (
            "set_case_status",
            true,
            vec![("id", c.clone()), ("status", "closed".into())],
        ),
        (
            "add_case_member",
            true,
            vec![("id", c.clone()), ("user_id", r.clone())],
        ),
        ("session", false, vec![]),
        (
            "login",
            false,
            vec![
                ("email", "x@y.z".into()),
                ("password", "wrong password!".into()),
            ],
        ),
        ("register", false, vec![]),
        ("change_password", false, vec![]),
        ("tokens", false, vec![]),
        ("create_token", false, vec![("name", "t".into())]),
        ("revoke_token", false, vec![("id", r.clone())]),
        ("case_jobs", true, vec![("id", c.clone())]),
        ("case_findings", true, vec![("id", c.clone())]),
        ("get_batch", false, vec![("id", r.clone())]),
        ("cancel_batch", false, vec![("id", r.clone())]),
        ("retry_batch", false, vec![("id", r.clone())]),
        ("audit_rows", false, vec![("filter[case]", c.clone())]),
        ("audit_verify", false, vec![]),
        ("case_studies", true, vec![("id", c.clone())]),
        ("study_instances", true, vec![("id", ids.study.clone())]),
        ("case_messages", true, vec![("case_id", c.clone())]),
        (
            "post_message",
            true,
            vec![("case_id", c.clone()), ("body", "hello".into())],
        ),
        ("notifications", false, vec![]),
        ("case_report", true, vec![("id", c.clone())]),
        (
            "save_report",
            true,
            vec![
                ("case_id", c.clone()),
                ("clinical_information", "x".into()),
                ("technique", "x".into()),
                ("findings", "x".into()),
                ("impression", "x".into()),
                ("recommendations", "x".into()),
            ],
        ),
        (
            "sign_report",
            true,
            vec![("case_id", c.clone()), ("password", PASSWORD.into())],
        ),
        (
            "add_addendum",
            true,
            vec![("case_id", c.clone()), ("text", "x".into())],
        ),
        ("case_dicom_sends", true, vec![("case_id", c.clone())]),
        ("send_to_pacs", true, vec![("case_id", c.clone())]),
        (
            "review_finding",
            true,
            vec![("case_id", c.clone()), ("finding_id", r.clone())],
        ),
        ("add_finding", true, vec![("case_id", c.clone())]),
        ("case_reviews", true, vec![("case_id", c.clone())]),
        (
            "analytics",
            false,
            vec![("organisation", "true".into()), ("period", "all".into())],
        ),
        ("thresholds", false, vec![]),
        ("set_threshold", false, vec![]),
        ("admin_users", false, vec![]),
        (
            "admin_change_user",
            false,
            vec![("id", r.clone()), ("action", "disable".into())],
        ),
    ]
}

/// Server functions that read with GET (the `GetUrl` codec).
fn sfn_is_get(endpoint: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src");
    let files = rs_files(&root);
    files.iter().any(|f| {
        let text = std::fs::read_to_string(f).unwrap();
        text.split("#[server(").skip(1).any(|attr| {
            let head = attr.split(')').next().unwrap_or("");
            head.contains(&format!("endpoint = \"{endpoint}\"")) && head.contains("GetUrl")
        })
    })
}

async fn call_sfn(api: &Api, endpoint: &str, fields: &[(&str, String)]) -> reqwest::Response {
    let url = api.url(&format!("/sfn/{endpoint}"));
    if sfn_is_get(endpoint) {
        api.http
            .get(url)
            .query(fields)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
    } else {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        api.post_form(&format!("/sfn/{endpoint}"), &f).await
    }
}

on_both!(every_route_page_and_server_function_refuses_outsiders);

async fn every_route_page_and_server_function_refuses_outsiders(b: Backend) {
    let Some(dir) = corpus() else { return };
    let all_routes = routes();
    assert!(
        all_routes.len() >= 50,
        "the parser found the routes: {all_routes:?}"
    );
    // Spot checks that the parser reads methods and mounts right.
    for r in [
        ("GET", "/api/v1/cases/{id}"),
        ("PATCH", "/api/v1/cases/{id}"),
        ("POST", "/dicomweb/studies"),
        ("PUT", "/api/v1/cases/{id}/report"),
        ("GET", "/fhir/DiagnosticReport/{id}"),
    ] {
        assert!(
            all_routes.contains(&(r.0.to_owned(), r.1.to_owned())),
            "{r:?} not found"
        );
    }
    let fns = server_functions();

    let app = spawn_app(b).await;
    app.two_orgs().await;
    let ids = fixture(&app, &dir).await;
    let rows = sfn_args(&ids);
    let table: BTreeSet<String> = rows.iter().map(|r| r.0.to_owned()).collect();
    assert_eq!(
        table, fns,
        "every server function has a row in sfn_args, and only those"
    );

    // Anonymous: everything but the public routes asks for sign-in.
    let anon = Api::new(&app.url);
    for (method, template) in &all_routes {
        let path = ids.fill(template);
        let r = call(&anon, method, &path).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        if let Some(s) = leaks(&body, &ids, true) {
            panic!("anonymous {method} {path} leaks {s}");
        }
        if PUBLIC.contains(&(method.as_str(), template.as_str())) {
            continue;
        }
        assert!(
            matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "anonymous {method} {template}: {status} {body}"
        );
    }
    for (endpoint, _, fields) in &rows {
        let r = call_sfn(&anon, endpoint, fields).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(
            leaks(&body, &ids, true).is_none(),
            "anonymous sfn {endpoint}"
        );
        if ["login", "register", "session"].contains(endpoint) {
            continue;
        }
        assert!(
            !status.is_success(),
            "anonymous sfn {endpoint} answered {status}: {body}"
        );
    }
    for page in [
        format!("/cases/{}", ids.case),
        format!("/cases/{}/edit", ids.case),
        "/cases".into(),
        "/admin/audit".into(),
        "/admin/users".into(),
        "/analytics".into(),
    ] {
        let body = anon.page(&page).await.text().await.unwrap();
        assert!(
            page_leaks(&body, &ids, true).is_none(),
            "anonymous page {page}"
        );
    }

    // Outsiders: refused on every route that names the case or its data,
    // and nothing of it in any answer.
    for who in [
        "admin@beta.example",
        "radiologist@beta.example",
        "doctor@beta.example",
        "admin@alpha.example",
        "doctor2@alpha.example",
    ] {
        let api = app.login(who).await;
        for (method, template) in &all_routes {
            if template.ends_with("/auth/logout") || template == "/logout" {
                continue; // would end this caller's session
            }
            let path = ids.fill(template);
            let r = call(&api, method, &path).await;
            let status = r.status();
            let body = r.text().await.unwrap();
            if let Some(s) = leaks(&body, &ids, !audit_reader(who, template)) {
                panic!("{who}: {method} {path} leaks {s}: {body}");
            }
            let names_the_case = path.contains(&ids.case)
                || path.contains(&ids.study)
                || path.contains(&ids.instance)
                || path.contains(&ids.study_uid);
            // QIDO-RS searches scoped to a study answer a search: an empty
            // result, the same as for a study that does not exist.
            let search = template.starts_with("/dicomweb/")
                && (template.ends_with("/series") || template.ends_with("/instances"));
            if search && status.is_success() {
                assert!(
                    body.trim().is_empty() || body.trim() == "[]",
                    "{who}: {method} {template}: {body}"
                );
                continue;
            }
            if names_the_case {
                // Refused, and refused exactly as for a case that does not
                // exist: the answer is no oracle of what is there.
                let unknown = call(&api, method, &Ids::fill_unknown(template)).await;
                let unknown_status = unknown.status();
                assert!(
                    !status.is_success() && status == unknown_status,
                    "{who}: {method} {template}: {status} (unknown ids: {unknown_status}) {body}"
                );
            }
        }
        for (endpoint, scoped, fields) in &rows {
            if *endpoint == "login" || *endpoint == "change_password" {
                continue;
            }
            let r = call_sfn(&api, endpoint, fields).await;
            let status = r.status();
            let body = r.text().await.unwrap();
            if let Some(s) = leaks(&body, &ids, !audit_reader(who, endpoint)) {
                panic!("{who}: sfn {endpoint} leaks {s}: {body}");
            }
            if *scoped {
                assert!(
                    !status.is_success(),
                    "{who}: sfn {endpoint} answered {status}: {body}"
                );
            }
        }
        for page in [
            format!("/cases/{}", ids.case),
            format!("/cases/{}/edit", ids.case),
            "/cases".into(),
            "/notifications".into(),
            "/analytics".into(),
            "/admin/audit".into(),
            "/admin/users".into(),
        ] {
            let body = api.page(&page).await.text().await.unwrap();
            assert!(
                page_leaks(&body, &ids, !audit_reader(who, &page)).is_none(),
                "{who}: page {page} leaks"
            );
        }
    }

    // Nothing an outsider sent changed the case.
    let owner = app.login("doctor@alpha.example").await;
    let case: Value = owner
        .get(&format!("/api/v1/cases/{}", ids.case))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(case["patient_ref"], SECRET);
    assert_eq!(case["history"], HISTORY);
    assert_eq!(case["status"], "open");
    assert_eq!(count(&app.db, "messages").await, 1);
}
