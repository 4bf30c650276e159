//! The E-utilities client against a local stand-in that speaks NCBI's wire
//! format (esearch / efetch XML over HTTP GET), recording every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use evidence::pubmed::{parse_str, EutilsClient, EutilsConfig};
use evidence::Error;

use crate::common::fixtures;

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: BTreeMap<String, String>,
    at: Instant,
}

#[derive(Clone)]
struct StandIn {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Status codes to answer efetch with before succeeding.
    efetch_failures: Arc<Mutex<Vec<u16>>>,
    efetch_body: Arc<String>,
}

const ESEARCH: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">
<eSearchResult><Count>3127</Count><RetMax>3</RetMax><RetStart>0</RetStart><IdList>
<Id>99000001</Id>
<Id>99000002</Id>
<Id>99000004</Id>
</IdList><TranslationSet/><QueryTranslation>"pulmonary nodule"[All Fields]</QueryTranslation></eSearchResult>
"#;

const ESEARCH_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<eSearchResult><ERROR>Invalid query: unbalanced parentheses</ERROR></eSearchResult>"#;

async fn handle(State(st): State<StandIn>, uri: Uri) -> Response {
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let path = uri.path().to_string();
    st.seen.lock().expect("lock").push(Seen {
        path: path.clone(),
        query: query.clone(),
        at: Instant::now(),
    });
    let xml = |body: String| ([("content-type", "text/xml; charset=UTF-8")], body).into_response();
    match path.as_str() {
        "/entrez/eutils/esearch.fcgi" if query.get("term").is_some_and(|t| t.contains('(')) => {
            xml(ESEARCH_ERROR.to_string())
        }
        "/entrez/eutils/esearch.fcgi" => xml(ESEARCH.to_string()),
        "/entrez/eutils/efetch.fcgi" => {
            let fail = {
                let mut f = st.efetch_failures.lock().expect("lock");
                (!f.is_empty()).then(|| f.remove(0))
            };
            match fail {
                Some(code) => (
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "{\"error\":\"API rate limit exceeded\"}",
                )
                    .into_response(),
                None => xml(st.efetch_body.to_string()),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn stand_in(efetch_failures: Vec<u16>) -> (String, StandIn) {
    let st = StandIn {
        seen: Default::default(),
        efetch_failures: Arc::new(Mutex::new(efetch_failures)),
        efetch_body: Arc::new(
            std::fs::read_to_string(fixtures().join("pubmed/efetch-chest.xml")).expect("fixture"),
        ),
    };
    let app = Router::new().fallback(handle).with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/entrez/eutils/"), st)
}

fn config(base_url: String, api_key: Option<&str>) -> EutilsConfig {
    EutilsConfig {
        base_url,
        tool: "medvision-test".into(),
        email: Some("dev@example.org".into()),
        api_key: api_key.map(String::from),
        max_retries: 2,
        backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(10),
    }
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn min_gap(seen: &[Seen]) -> Duration {
    seen.windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .min()
        .unwrap_or(Duration::MAX)
}

#[tokio::test]
async fn search_then_fetch_sends_ncbi_parameters_spaced_three_per_second_and_retries_429() {
    let (base, st) = stand_in(vec![429]).await;
    let client = EutilsClient::new(config(base, None)).expect("client");
    assert_eq!(client.min_interval(), Duration::from_millis(334));
    let docs = client
        .fetch_query("pulmonary nodule follow-up", 3)
        .await
        .expect("fetched");
    assert_eq!(docs.len(), 1);
    let set = parse_str(&docs[0], "efetch").expect("efetch answer parses");
    assert_eq!(set.articles.len(), 2);

    let seen = st.seen.lock().expect("lock").clone();
    let paths: Vec<_> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/entrez/eutils/esearch.fcgi",
            "/entrez/eutils/efetch.fcgi",
            "/entrez/eutils/efetch.fcgi"
        ]
    );
    assert_eq!(
        seen[0].query,
        params(&[
            ("db", "pubmed"),
            ("term", "pulmonary nodule follow-up"),
            ("retmax", "3"),
            ("retstart", "0"),
            ("sort", "relevance"),
            ("tool", "medvision-test"),
            ("email", "dev@example.org"),
        ])
    );
    let efetch = params(&[
        ("db", "pubmed"),
        ("id", "99000001,99000002,99000004"),
        ("retmode", "xml"),
        ("rettype", "abstract"),
        ("tool", "medvision-test"),
        ("email", "dev@example.org"),
    ]);
    assert_eq!(seen[1].query, efetch);
    assert_eq!(seen[2].query, efetch, "the retry repeats the request");
    // Three requests a second at most, the retry included. The stand-in
    // stamps arrival, so allow for a few ms of loopback jitter.
    let gap = min_gap(&seen);
    assert!(gap >= Duration::from_millis(320), "requests {gap:?} apart");
}

#[tokio::test]
async fn an_api_key_is_sent_and_allows_ten_requests_a_second() {
    let (base, st) = stand_in(vec![]).await;
    let client = EutilsClient::new(config(base, Some("k3y"))).expect("client");
    assert_eq!(client.min_interval(), Duration::from_millis(100));
    for _ in 0..4 {
        client.esearch("pulmonary nodule", 3).await.expect("search");
    }
    let seen = st.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4);
    assert!(seen
        .iter()
        .all(|s| s.query.get("api_key").map(String::as_str) == Some("k3y")));
    let gap = min_gap(&seen);
    assert!(gap >= Duration::from_millis(90), "requests {gap:?} apart");
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_retries_and_client_errors_at_once() {
    let (base, st) = stand_in(vec![503, 503, 503, 503]).await;
    let client = EutilsClient::new(config(base.clone(), Some("k"))).expect("client");
    let err = client
        .efetch(&["99000001".into()])
        .await
        .expect_err("fails");
    match err {
        Error::HttpStatus {
            status, attempts, ..
        } => {
            assert_eq!(status, 503);
            assert_eq!(attempts, 3, "first try and two retries");
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(st.seen.lock().expect("lock").len(), 3);

    let (base, st) = stand_in(vec![400]).await;
    let client = EutilsClient::new(config(base, Some("k"))).expect("client");
    let err = client
        .efetch(&["99000001".into()])
        .await
        .expect_err("fails");
    assert!(
        matches!(
            err,
            Error::HttpStatus {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(st.seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn bad_input_and_ncbi_errors_are_reported_without_requests_where_possible() {
    let (base, st) = stand_in(vec![]).await;
    let client = EutilsClient::new(config(base, Some("k"))).expect("client");
    assert!(matches!(
        client.esearch("  ", 5).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        client.efetch(&["12ab".into()]).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        client.efetch(&[]).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(st.seen.lock().expect("lock").len(), 0);
    let err = client.esearch("nodule (", 5).await.expect_err("NCBI error");
    assert!(
        matches!(&err, Error::Xml { message, .. } if message.contains("unbalanced")),
        "{err}"
    );
}
