use crate::helpers::*;
use crate::on_both;
use std::process::{Command, Output};

fn medvision(settings: &medvision::settings::Settings, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medvision"));
    cmd.args(args)
        .env("MEDVISION_DATA_DIR", &settings.data_dir)
        .env_remove("DATABASE_URL");
    if settings.is_postgres() {
        cmd.env("DATABASE_URL", settings.database_url());
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn operator_commands_follow_the_contract(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.settings.clone();
    let o = medvision(&s, &["org", "add", "St Mary's"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = medvision(&s, &["org", "add", "St Mary's"]);
    assert!(!o.status.success(), "duplicate organisation");

    let add = [
        "user",
        "add",
        "--email",
        "Chief@StMarys.example",
        "--password",
        PASSWORD,
        "--role",
        "admin",
        "--org",
        "St Mary's",
    ];
    let o = medvision(&s, &add);
    assert!(o.status.success(), "{}", text(&o));
    let o = medvision(&s, &add);
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "x@y.example",
            "--password",
            PASSWORD,
            "--role",
            "doctor",
            "--org",
            "Nowhere",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("no organisation"), "{}", text(&o));
    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "x@y.example",
            "--password",
            "short",
            "--role",
            "doctor",
            "--org",
            "St Mary's",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 12"), "{}", text(&o));
    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "x@y.example",
            "--password",
            PASSWORD,
            "--role",
            "janitor",
            "--org",
            "St Mary's",
        ],
    );
    assert!(!o.status.success());

    // The created user signs in through the running server.
    let api = app.login("chief@stmarys.example").await;
    assert_eq!(
        api.get("/api/v1/me").await.status(),
        reqwest::StatusCode::OK
    );

    let o = medvision(&s, &["user", "list"]);
    assert!(
        text(&o).contains("chief@stmarys.example\tadmin\tactive\tSt Mary's"),
        "{}",
        text(&o)
    );
    let o = medvision(&s, &["org", "list"]);
    assert!(text(&o).contains("St Mary's\t1 users"), "{}", text(&o));

    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "doc@stmarys.example",
            "--password",
            PASSWORD,
            "--role",
            "doctor",
            "--org",
            "St Mary's",
        ],
    );
    assert!(o.status.success());
    let o = medvision(
        &s,
        &["user", "set-role", "doc@stmarys.example", "radiologist"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = medvision(&s, &["token", "create", "--email", "doc@stmarys.example"]);
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(me["user"]["role"], "radiologist");

    let o = medvision(&s, &["user", "disable", "doc@stmarys.example"]);
    assert!(o.status.success());
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "a disabled user's token stops working"
    );

    let o = medvision(&s, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

on_both!(operator_commands_follow_the_contract);

#[test]
fn serve_bootstraps_a_demo_admin_with_a_one_time_password() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medvision"))
        .arg("serve")
        .env("MEDVISION_DATA_DIR", tmp.path())
        .env("MEDVISION_ADDR", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = vec![];
    while let Some(Ok(l)) = lines.next() {
        seen.push(l.clone());
        if l.contains("Password") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = seen.join("\n");
    assert!(
        all.contains("MedVision is running at http://127.0.0.1:"),
        "{all}"
    );
    let pw = seen
        .iter()
        .find(|l| l.contains("Password"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        pw.len() >= 16,
        "a random password, not a fixed default: {pw}"
    );
    assert!(all.contains("/login"));
}

// ---- medvision corpus -----------------------------------------------------

fn evidence_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/evidence/tests/fixtures/pubmed")
        .join(name)
}

/// (path, query parameters) of each request the stand-in received.
type Requests = Vec<(String, std::collections::BTreeMap<String, String>)>;

#[derive(Clone, Default)]
struct Eutils {
    seen: std::sync::Arc<std::sync::Mutex<Requests>>,
}

async fn eutils(
    axum::extract::State(st): axum::extract::State<Eutils>,
    uri: axum::http::Uri,
) -> String {
    let q: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    st.seen.lock().unwrap().push((uri.path().to_owned(), q));
    if uri.path().ends_with("esearch.fcgi") {
        "<?xml version=\"1.0\" ?><eSearchResult><Count>2</Count><RetMax>2</RetMax><RetStart>0</RetStart>\
         <IdList><Id>99000001</Id><Id>99000002</Id></IdList></eSearchResult>"
            .into()
    } else {
        std::fs::read_to_string(evidence_fixture("efetch-chest.xml")).unwrap()
    }
}

/// `corpus ingest xml|pubmed|guidelines` and `corpus search --json`, on the
/// embedded index of a fresh data directory; PubMed is a stand-in speaking
/// E-utilities, and the test checks what the command asked it.
#[tokio::test]
async fn corpus_commands_ingest_and_search() {
    if !embedder_available("corpus_commands_ingest_and_search") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = settings_for(&Backend::Sqlite, tmp.path());
    let run = |args: Vec<String>, env: Vec<(&'static str, String)>| {
        let s = s.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_medvision"));
            cmd.args(&args)
                .env("MEDVISION_DATA_DIR", &s.data_dir)
                .env_remove("DATABASE_URL");
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.output().unwrap()
        })
    };
    let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let xml = tmp.path().join("xml");
    std::fs::create_dir_all(&xml).unwrap();
    for f in ["efetch-chest.xml", "medline-citation.xml"] {
        std::fs::copy(evidence_fixture(f), xml.join(f)).unwrap();
    }
    let o = run(
        args(&["corpus", "ingest", "xml", xml.to_str().unwrap()]),
        vec![],
    )
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("indexed 3 document(s)"),
        "two articles and a citation, the book chapter skipped: {}",
        text(&o)
    );

    let o = run(
        args(&[
            "corpus",
            "search",
            "spot sign and haematoma expansion in intracerebral haemorrhage",
            "--json",
            "--top",
            "3",
        ]),
        vec![],
    )
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let hits: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3, "{hits:?}");
    assert_eq!(hits[0]["id"], "PMID:99000004", "{hits:?}");
    for h in &hits {
        for k in ["id", "source", "title", "year", "score", "passage"] {
            assert!(h.get(k).is_some(), "hit lacks {k}: {h}");
        }
    }

    // The starter guidelines are indexed on first open; a filter keeps to them.
    let o = run(
        args(&[
            "corpus",
            "search",
            "incidental pulmonary nodule follow-up interval",
            "--json",
            "--source",
            "guideline",
        ]),
        vec![],
    )
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let hits: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(hits[0]["id"], "GL:fleischner-2017", "{hits:?}");
    assert!(hits.iter().all(|h| h["source"] == "guideline"), "{hits:?}");

    // PubMed by query, through E-utilities.
    let st = Eutils::default();
    let router = axum::Router::new().fallback(eutils).with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/eutils/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let o = run(
        args(&[
            "corpus",
            "ingest",
            "pubmed",
            "--query",
            "pulmonary nodule follow-up",
            "--max",
            "2",
            "--eutils-url",
            &base,
        ]),
        vec![("MEDVISION_PUBMED_EMAIL", "ops@hospital.example".into())],
    )
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("indexed 2 document(s)"), "{}", text(&o));
    let seen = st.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one esearch, one efetch: {seen:?}");
    assert_eq!(seen[0].0, "/eutils/esearch.fcgi");
    assert_eq!(seen[0].1["term"], "pulmonary nodule follow-up");
    assert_eq!(seen[0].1["retmax"], "2");
    assert_eq!(seen[0].1["db"], "pubmed");
    assert_eq!(seen[0].1["tool"], "medvision");
    assert_eq!(seen[0].1["email"], "ops@hospital.example");
    assert_eq!(seen[1].0, "/eutils/efetch.fcgi");
    assert_eq!(seen[1].1["id"], "99000001,99000002");
    assert_eq!(seen[1].1["retmode"], "xml");

    // Bad input: a clear error, non-zero exit, nothing changed.
    let o = run(
        args(&["corpus", "ingest", "xml", "/no/such/folder"]),
        vec![],
    )
    .await
    .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("does not exist"), "{}", text(&o));
    let o = run(args(&["corpus", "search", "  ", "--json"]), vec![])
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("1 to 2000 characters"), "{}", text(&o));
    let o = run(
        args(&["corpus", "search", "nodule", "--source", "blog"]),
        vec![],
    )
    .await
    .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--source must be pubmed or guideline"),
        "{}",
        text(&o)
    );
}
