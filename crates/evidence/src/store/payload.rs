//! The payload and filter shape both engines share: a chunk is stored as its
//! JSON form, and a [`Filter`] becomes a list of conditions that must all
//! hold, which each engine translates into its own filter type.

use serde_json::{Map, Value};

use super::{Chunk, Collection, Filter};
use crate::error::{Error, Result};

/// Payload keys filtered on; each gets a payload index.
pub(crate) const KEYWORD_FIELDS: [&str; 5] =
    ["doc_id", "source", "modalities", "body_parts", "org"];
pub(crate) const INTEGER_FIELDS: [&str; 1] = ["year"];

/// Reciprocal rank fusion constant: 60 as in Cormack et al. (2009), so a
/// passage ranked well by both retrievers beats one ranked first by one.
pub(crate) const RRF_K: usize = 60;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Is {
        key: &'static str,
        value: String,
    },
    AnyOf {
        key: &'static str,
        values: Vec<String>,
    },
    /// The field contains `value` or has no value at all.
    IsOrEmpty {
        key: &'static str,
        value: String,
    },
    YearIn {
        from: i32,
        to: i32,
    },
}

/// The conditions a filter means in `collection`. The organisation applies
/// to reports only, and is mandatory there: callers have checked it.
pub(crate) fn conditions(collection: Collection, f: &Filter) -> Vec<Cond> {
    let mut c = Vec::new();
    if collection == Collection::Reports {
        if let Some(org) = &f.org {
            c.push(Cond::Is {
                key: "org",
                value: org.as_str().to_string(),
            });
        }
    }
    if let Some(m) = &f.modality {
        c.push(Cond::IsOrEmpty {
            key: "modalities",
            value: m.to_ascii_lowercase(),
        });
    }
    if let Some(b) = &f.body_part {
        c.push(Cond::IsOrEmpty {
            key: "body_parts",
            value: b.to_ascii_lowercase(),
        });
    }
    if !f.source_types.is_empty() {
        c.push(Cond::AnyOf {
            key: "source",
            values: f
                .source_types
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        });
    }
    if let Some((from, to)) = f.year_range {
        c.push(Cond::YearIn { from, to });
    }
    c
}

pub(crate) fn doc_conditions(
    collection: Collection,
    org: Option<&super::OrgId>,
    doc_ids: &[String],
) -> Vec<Cond> {
    let mut c = vec![Cond::AnyOf {
        key: "doc_id",
        values: doc_ids.to_vec(),
    }];
    if collection == Collection::Reports {
        if let Some(org) = org {
            c.push(Cond::Is {
                key: "org",
                value: org.as_str().to_string(),
            });
        }
    }
    c
}

pub(crate) fn to_payload(chunk: &Chunk) -> Result<Map<String, Value>> {
    match serde_json::to_value(chunk) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::InvalidInput(
            "chunk did not serialise to an object".into(),
        )),
        Err(e) => Err(Error::InvalidInput(format!("chunk payload: {e}"))),
    }
}

pub(crate) fn from_payload(backend: &'static str, m: Map<String, Value>) -> Result<Chunk> {
    serde_json::from_value(Value::Object(m)).map_err(|e| Error::Store {
        backend,
        message: format!("stored payload is not a chunk: {e}"),
    })
}
