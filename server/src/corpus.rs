//! `medvision corpus`: fill and query the evidence index from the command
//! line (PubMed by query or from MEDLINE XML files, guideline folders).
//! It opens the same index the workers use; with the embedded index that
//! means the server must not be running on the same data directory (the
//! index lock says so), with a Qdrant server both can run.

use crate::knowledge::{Knowledge, KnowledgeConfig};
use crate::settings::Settings;
use anyhow::{bail, Context};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum CorpusCmd {
    /// Add documents to the index.
    #[command(subcommand)]
    Ingest(IngestCmd),
    /// Hybrid search, as the pipeline runs it for a study.
    Search {
        query: String,
        /// `[{"id", "source", "title", "year", "score", "passage"}]` on stdout.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Only passages for this modality (CT, MR, DX, …) or for any.
        #[arg(long)]
        modality: Option<String>,
        /// Only passages for this body part (head, chest, …) or for any.
        #[arg(long)]
        body_part: Option<String>,
        /// `pubmed` or `guideline` (repeatable; default both).
        #[arg(long = "source")]
        sources: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IngestCmd {
    /// Search PubMed through NCBI E-utilities and index the abstracts.
    Pubmed {
        #[arg(long)]
        query: String,
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// E-utilities base URL (a mirror, or a stand-in in tests).
        #[arg(long, hide = true)]
        eutils_url: Option<String>,
    },
    /// PubMed / MEDLINE XML files (`PubmedArticleSet` or `MedlineCitation`
    /// documents): every `*.xml` of a folder, or one file.
    Xml { path: PathBuf },
    /// A folder of guideline summaries (Markdown with `+++` TOML front matter).
    Guidelines { dir: PathBuf },
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn open(settings: &Settings) -> anyhow::Result<Knowledge> {
    let bar = spinner("opening the evidence index");
    let k = Knowledge::open(&KnowledgeConfig::from_settings(settings));
    bar.finish_and_clear();
    k.map_err(|why| anyhow::anyhow!("{why}"))
}

pub async fn command(settings: &Settings, cmd: CorpusCmd) -> anyhow::Result<()> {
    let settings = settings.clone();
    match cmd {
        CorpusCmd::Ingest(IngestCmd::Pubmed {
            query,
            max,
            eutils_url,
        }) => {
            if query.trim().is_empty() {
                bail!("the PubMed query is empty");
            }
            if !(1..=10_000).contains(&max) {
                bail!("--max must be 1 to 10000");
            }
            let mut cfg = evidence::pubmed::eutils::EutilsConfig {
                email: settings.pubmed_email.clone(),
                api_key: settings
                    .pubmed_api_key
                    .as_ref()
                    .map(|k| k.expose_secret().to_owned()),
                ..Default::default()
            };
            if let Some(u) = eutils_url {
                cfg.base_url = if u.ends_with('/') { u } else { format!("{u}/") };
            }
            let client = evidence::pubmed::eutils::EutilsClient::new(cfg)?;
            let bar = spinner("searching PubMed and fetching abstracts");
            let docs = client.fetch_query(&query, max).await;
            bar.finish_and_clear();
            let docs = docs.context("PubMed could not be reached")?;
            let counts = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let k = open(&settings)?;
                let bar = spinner("embedding and indexing");
                let mut total = evidence::IngestCounts::default();
                for (n, xml) in docs.iter().enumerate() {
                    total += k
                        .evidence
                        .ingest_pubmed_str(xml, &format!("efetch batch {}", n + 1))?;
                }
                bar.finish_and_clear();
                Ok(total)
            })
            .await??;
            print_counts(&counts);
            Ok(())
        }
        CorpusCmd::Ingest(IngestCmd::Xml { path }) => {
            let counts = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                if !path.exists() {
                    bail!("{} does not exist", path.display());
                }
                let k = open(&settings)?;
                let bar = spinner(&format!("indexing {}", path.display()));
                let r = if path.is_dir() {
                    k.evidence.ingest_pubmed_dir(&path)
                } else {
                    k.evidence.ingest_pubmed_xml(&path)
                };
                bar.finish_and_clear();
                Ok(r?)
            })
            .await??;
            print_counts(&counts);
            Ok(())
        }
        CorpusCmd::Ingest(IngestCmd::Guidelines { dir }) => {
            let counts = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                if !dir.is_dir() {
                    bail!("{} is not a folder", dir.display());
                }
                let k = open(&settings)?;
                let bar = spinner(&format!("indexing {}", dir.display()));
                let r = k.evidence.ingest_guidelines(&dir);
                bar.finish_and_clear();
                Ok(r?)
            })
            .await??;
            print_counts(&counts);
            Ok(())
        }
        CorpusCmd::Search {
            query,
            json,
            top,
            modality,
            body_part,
            sources,
        } => {
            let mut types = Vec::new();
            for s in &sources {
                types.push(match s.trim().to_ascii_lowercase().as_str() {
                    "pubmed" | "literature" => evidence::SourceType::Pubmed,
                    "guideline" | "guidelines" => evidence::SourceType::Guideline,
                    other => bail!("--source must be pubmed or guideline, not {other:?}"),
                });
            }
            let q = evidence::Query {
                text: query,
                modality: modality.map(|m| m.trim().to_ascii_lowercase()),
                body_part: body_part.map(|b| b.trim().to_ascii_lowercase()),
                source_types: types,
                top_k: top,
                ..Default::default()
            };
            let hits = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let k = open(&settings)?;
                Ok(k.evidence.search(&q)?)
            })
            .await??;
            if json {
                let out: Vec<serde_json::Value> = hits
                    .iter()
                    .map(|h| {
                        serde_json::json!({
                            "id": h.id,
                            "source": h.source.as_str(),
                            "title": h.title,
                            "year": h.year,
                            "score": h.score,
                            "passage": h.passage,
                            "section": h.section,
                            "url": h.url,
                            "why_matched": h.why_matched,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if hits.is_empty() {
                println!("no matches");
            } else {
                for (n, h) in hits.iter().enumerate() {
                    println!(
                        "{}. [{}] {}{} (score {:.4})",
                        n + 1,
                        h.id,
                        h.title,
                        h.year.map(|y| format!(", {y}")).unwrap_or_default(),
                        h.score
                    );
                    println!("   {}", h.why_matched);
                }
            }
            Ok(())
        }
    }
}

fn print_counts(c: &evidence::IngestCounts) {
    println!(
        "indexed {} document(s), {} chunk(s); {} removed, {} skipped",
        c.documents, c.chunks, c.deleted, c.skipped
    );
}
