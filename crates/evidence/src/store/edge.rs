//! Qdrant Edge: one in-process shard per collection under a directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qdrant_edge::{
    CountRequest, CreateIndex, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldIndexOperations,
    Filter as QFilter, Fusion, JsonPath, Modifier, NamedQuery, PayloadFieldSchema,
    PayloadSchemaType, PointInsertOperations, PointOperations, PointStruct, Prefetch, QueryEnum,
    QueryRequest, ScoringQuery, SearchParams, UpdateOperation, Vector, VectorInternal,
    VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};
use serde_json::{json, Value};

use super::payload::{self, Cond};
use super::{
    point_id, prefetch_limit, validate_points, validate_query, Collection, Mode, OrgId, Point,
    StoreHit, StoreQuery, VectorStore, DENSE, SPARSE,
};
use crate::error::{Error, Result};

const BACKEND: &str = "qdrant-edge";

pub struct EdgeStore {
    dir: PathBuf,
    shards: HashMap<Collection, EdgeShard>,
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore").field("dir", &self.dir).finish()
    }
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store {
        backend: BACKEND,
        message: e.to_string(),
    }
}

impl EdgeStore {
    /// Opens the shards under `dir`, creating any that do not exist yet.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut shards = HashMap::new();
        for c in Collection::ALL {
            let path = dir.join(c.name());
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            shards.insert(c, open_shard(&path)?);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shards,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn shard(&self, c: Collection) -> Result<&EdgeShard> {
        self.shards
            .get(&c)
            .ok_or_else(|| store_err(format!("no shard for {}", c.name())))
    }
}

fn open_shard(path: &Path) -> Result<EdgeShard> {
    if path.join("edge_config.json").is_file() {
        return EdgeShard::load(path, None).map_err(store_err);
    }
    let config = EdgeConfigBuilder::new()
        .vector(
            DENSE,
            EdgeVectorParamsBuilder::new(crate::embed::DIM, Distance::Cosine).build(),
        )
        .sparse_vector(
            SPARSE,
            // Qdrant multiplies each query term by its IDF over the shard:
            // with the BM25 term weights of `sparse` that is the BM25 score.
            EdgeSparseVectorParamsBuilder::new()
                .modifier(Modifier::Idf)
                .build(),
        )
        .build();
    let shard = EdgeShard::new(path, config).map_err(store_err)?;
    let indexes = payload::KEYWORD_FIELDS
        .iter()
        .map(|k| (*k, PayloadSchemaType::Keyword))
        .chain(
            payload::INTEGER_FIELDS
                .iter()
                .map(|k| (*k, PayloadSchemaType::Integer)),
        );
    for (key, schema) in indexes {
        let field_name: JsonPath = key
            .parse()
            .map_err(|_| store_err(format!("bad payload key {key}")))?;
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name,
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                }),
            ))
            .map_err(store_err)?;
    }
    shard.flush();
    Ok(shard)
}

/// Qdrant's REST filter JSON, which the edge types deserialise from: the
/// documented shape is the least likely to drift between releases.
fn filter(conds: &[Cond]) -> Result<Option<QFilter>> {
    if conds.is_empty() {
        return Ok(None);
    }
    let must: Vec<Value> = conds
        .iter()
        .map(|c| match c {
            Cond::Is { key, value } => json!({"key": key, "match": {"value": value}}),
            Cond::AnyOf { key, values } => json!({"key": key, "match": {"any": values}}),
            Cond::IsOrEmpty { key, value } => json!({"should": [
                {"key": key, "match": {"value": value}},
                {"is_empty": {"key": key}}
            ]}),
            Cond::YearIn { from, to } => json!({"key": "year", "range": {"gte": from, "lte": to}}),
        })
        .collect();
    serde_json::from_value(json!({ "must": must }))
        .map(Some)
        .map_err(|e| store_err(format!("filter: {e}")))
}

fn to_point(p: &Point) -> Result<PointStruct> {
    let sparse =
        Vector::new_sparse(p.sparse.indices.clone(), p.sparse.values.clone()).map_err(store_err)?;
    let vectors = Vectors::new_named([
        (DENSE.to_string(), Vector::new_dense(p.dense.clone())),
        (SPARSE.to_string(), sparse),
    ]);
    let payload = payload::to_payload(&p.chunk)?;
    Ok(PointStruct::new(
        point_id(&p.chunk),
        vectors,
        Value::Object(payload),
    ))
}

impl VectorStore for EdgeStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn upsert(&self, collection: Collection, points: &[Point]) -> Result<()> {
        validate_points(collection, points)?;
        if points.is_empty() {
            return Ok(());
        }
        let list = points
            .iter()
            .map(|p| to_point(p).map(Into::into))
            .collect::<Result<Vec<_>>>()?;
        let shard = self.shard(collection)?;
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
            ))
            .map_err(store_err)?;
        shard.flush();
        Ok(())
    }

    fn delete_documents(
        &self,
        collection: Collection,
        org: Option<&OrgId>,
        doc_ids: &[String],
    ) -> Result<()> {
        if collection == Collection::Reports && org.is_none() {
            return Err(Error::TenantRequired);
        }
        if doc_ids.is_empty() {
            return Ok(());
        }
        let Some(f) = filter(&payload::doc_conditions(collection, org, doc_ids))? else {
            return Ok(());
        };
        let shard = self.shard(collection)?;
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(f),
            ))
            .map_err(store_err)?;
        shard.flush();
        Ok(())
    }

    fn search(&self, collection: Collection, q: &StoreQuery<'_>) -> Result<Vec<StoreHit>> {
        validate_query(collection, q)?;
        let f = filter(&payload::conditions(collection, q.filter))?;
        let params = Some(SearchParams {
            exact: q.exact,
            ..Default::default()
        });
        let dense = ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
            query: VectorInternal::Dense(q.dense.to_vec()),
            using: Some(DENSE.to_string()),
        }));
        let sparse = || -> Result<ScoringQuery> {
            let v =
                qdrant_edge::SparseVector::new(q.sparse.indices.clone(), q.sparse.values.clone())
                    .map_err(store_err)?;
            Ok(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::Sparse(v),
                using: Some(SPARSE.to_string()),
            })))
        };
        let mode = effective_mode(q);
        let prefetch = |query: ScoringQuery| Prefetch {
            prefetches: vec![],
            query: Some(query),
            limit: prefetch_limit(q.limit),
            params,
            filter: f.clone(),
            score_threshold: None,
        };
        let (prefetches, query, params) = match mode {
            Mode::Hybrid => (
                vec![prefetch(dense), prefetch(sparse()?)],
                ScoringQuery::Fusion(Fusion::Rrf {
                    k: payload::RRF_K,
                    weights: None,
                }),
                None,
            ),
            Mode::Dense => (vec![], dense, params),
            Mode::Sparse => (vec![], sparse()?, None),
        };
        let request = QueryRequest {
            prefetches,
            query: Some(query),
            filter: f,
            score_threshold: None,
            limit: q.limit,
            offset: 0,
            params,
            with_vector: WithVector::Selector(vec![DENSE.to_string()]),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.shard(collection)?.query(request).map_err(store_err)?;
        points
            .into_iter()
            .map(|p| {
                let chunk =
                    payload::from_payload(BACKEND, p.payload.map(|pl| pl.0).unwrap_or_default())?;
                let dense_similarity = match p.vector {
                    Some(VectorStructInternal::Named(m)) => match m.get(DENSE) {
                        Some(VectorInternal::Dense(v)) => Some(dot(v, q.dense)),
                        _ => None,
                    },
                    Some(VectorStructInternal::Single(v)) => Some(dot(&v, q.dense)),
                    _ => None,
                };
                Ok(StoreHit {
                    chunk,
                    score: p.score,
                    dense_similarity,
                })
            })
            .collect()
    }

    fn count(&self, collection: Collection, org: Option<&OrgId>) -> Result<usize> {
        if collection == Collection::Reports && org.is_none() {
            return Err(Error::TenantRequired);
        }
        let conds = match (collection, org) {
            (Collection::Reports, Some(o)) => vec![Cond::Is {
                key: "org",
                value: o.as_str().to_string(),
            }],
            _ => vec![],
        };
        self.shard(collection)?
            .count(CountRequest {
                filter: filter(&conds)?,
                exact: true,
            })
            .map_err(store_err)
    }

    fn optimize(&self) -> Result<()> {
        for shard in self.shards.values() {
            shard.optimize().map_err(store_err)?;
            shard.flush();
        }
        Ok(())
    }
}

/// A query with no keyword terms (all stop words) has nothing to fuse.
pub(crate) fn effective_mode(q: &StoreQuery<'_>) -> Mode {
    match q.mode {
        Mode::Hybrid | Mode::Sparse if q.sparse.is_empty() => Mode::Dense,
        m => m,
    }
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
