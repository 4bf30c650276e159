//! NCBI E-utilities client (esearch + efetch, XML) for PubMed.
//!
//! NCBI's usage rules: at most 3 requests a second without an API key and
//! 10 with one, every request naming the `tool` and a contact `email`. The
//! client spaces requests (retries included) by 1/3 s or 1/10 s, and retries
//! 429 and 5xx answers and network errors with back-off, honouring
//! `Retry-After`.

use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::Reader;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};

pub const NCBI_EUTILS: &str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/";
/// PMIDs per efetch request (NCBI suggests POST above 200).
const FETCH_BATCH: usize = 200;
/// esearch's own ceiling for one request.
const MAX_RETMAX: usize = 10_000;

#[derive(Clone)]
pub struct EutilsConfig {
    /// Ends with `/`; tests point it at a local stand-in.
    pub base_url: String,
    pub tool: String,
    pub email: Option<String>,
    pub api_key: Option<String>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Back-off before the first retry when the server gives no Retry-After;
    /// doubles each time.
    pub backoff: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for EutilsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EutilsConfig")
            .field("base_url", &self.base_url)
            .field("tool", &self.tool)
            .field("email", &self.email)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for EutilsConfig {
    fn default() -> Self {
        Self {
            base_url: NCBI_EUTILS.into(),
            tool: "medvision".into(),
            email: None,
            api_key: None,
            max_retries: 3,
            backoff: Duration::from_millis(1000),
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Matches in PubMed (may exceed `ids`).
    pub count: u64,
    pub ids: Vec<String>,
}

#[derive(Debug)]
pub struct EutilsClient {
    http: reqwest::Client,
    cfg: EutilsConfig,
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl EutilsClient {
    pub fn new(cfg: EutilsConfig) -> Result<Self> {
        if cfg.tool.trim().is_empty() || cfg.tool.contains(char::is_whitespace) {
            return Err(Error::InvalidInput(
                "E-utilities tool name must be one word".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(format!("{}/{}", cfg.tool, env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        let interval = if cfg.api_key.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(334)
        };
        Ok(Self {
            http,
            cfg,
            interval,
            next_slot: Mutex::new(None),
        })
    }

    /// The spacing NCBI's limit imposes on this client's requests.
    pub fn min_interval(&self) -> Duration {
        self.interval
    }

    /// PMIDs matching `term`, most relevant first, at most `max`.
    pub async fn esearch(&self, term: &str, max: usize) -> Result<SearchResult> {
        if term.trim().is_empty() {
            return Err(Error::InvalidInput("empty PubMed query".into()));
        }
        let retmax = max.min(MAX_RETMAX).to_string();
        let body = self
            .get(
                "esearch.fcgi",
                &[
                    ("db", "pubmed"),
                    ("term", term),
                    ("retmax", &retmax),
                    ("retstart", "0"),
                    ("sort", "relevance"),
                ],
            )
            .await?;
        parse_esearch(&body)
    }

    /// The PubMed XML (`PubmedArticleSet`) of the given PMIDs.
    pub async fn efetch(&self, pmids: &[String]) -> Result<String> {
        if pmids.is_empty() || pmids.len() > FETCH_BATCH {
            return Err(Error::InvalidInput(format!(
                "efetch takes 1 to {FETCH_BATCH} PMIDs"
            )));
        }
        if let Some(bad) = pmids
            .iter()
            .find(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::InvalidInput(format!("{bad:?} is not a PMID")));
        }
        let ids = pmids.join(",");
        self.get(
            "efetch.fcgi",
            &[
                ("db", "pubmed"),
                ("id", &ids),
                ("retmode", "xml"),
                ("rettype", "abstract"),
            ],
        )
        .await
    }

    /// esearch, then efetch in batches: one XML document per batch.
    pub async fn fetch_query(&self, term: &str, max: usize) -> Result<Vec<String>> {
        let found = self.esearch(term, max).await?;
        let mut docs = Vec::new();
        for batch in found.ids.chunks(FETCH_BATCH) {
            docs.push(self.efetch(batch).await?);
        }
        Ok(docs)
    }

    async fn wait_turn(&self) {
        let mut next = self.next_slot.lock().await;
        let now = Instant::now();
        let at = match *next {
            Some(t) if t > now => t,
            _ => now,
        };
        *next = Some(at + self.interval);
        drop(next);
        tokio::time::sleep_until(at).await;
    }

    async fn get(&self, endpoint: &str, params: &[(&str, &str)]) -> Result<String> {
        let url = format!("{}{}", self.cfg.base_url, endpoint);
        let mut query: Vec<(&str, &str)> = params.to_vec();
        query.push(("tool", &self.cfg.tool));
        if let Some(e) = &self.cfg.email {
            query.push(("email", e));
        }
        if let Some(k) = &self.cfg.api_key {
            query.push(("api_key", k));
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_turn().await;
            let retry_after = match self.http.get(&url).query(&query).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        return resp.text().await.map_err(|e| Error::Http(e.to_string()));
                    }
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    if !retryable || attempt > self.cfg.max_retries {
                        return Err(Error::HttpStatus {
                            status: status.as_u16(),
                            endpoint: endpoint.to_string(),
                            attempts: attempt,
                        });
                    }
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)))
                }
                Err(e) if attempt > self.cfg.max_retries => {
                    return Err(Error::Http(format!("{endpoint}: {e}")))
                }
                Err(_) => None,
            };
            let backoff = self.cfg.backoff * 2u32.saturating_pow(attempt - 1);
            tracing::warn!(endpoint, attempt, "E-utilities request failed; retrying");
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
        }
    }
}

/// Reads `Count` and the `IdList` of an esearch answer; an `ERROR` element
/// (bad query syntax, say) becomes an error.
pub fn parse_esearch(xml: &str) -> Result<SearchResult> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut count = None;
    let mut ids = Vec::new();
    let bad = |m: String| Error::Xml {
        origin: "esearch".into(),
        message: m,
    };
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into()),
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| bad(e.to_string()))?;
                let s = s.trim();
                let path: Vec<&str> = stack.iter().map(String::as_str).collect();
                match path.as_slice() {
                    ["eSearchResult", "Count"] => count = s.parse().ok(),
                    ["eSearchResult", "IdList", "Id"] => ids.push(s.to_string()),
                    ["eSearchResult", "ERROR"] => return Err(bad(format!("NCBI: {s}"))),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let count = count.ok_or_else(|| bad("no <Count> in the answer".into()))?;
    Ok(SearchResult { count, ids })
}
