//! A Qdrant server (or cluster) through qdrant-client over gRPC. The client is
//! asynchronous; this store owns a small runtime and blocks on it, so both
//! engines share one synchronous trait (callers on an async runtime use
//! `spawn_blocking`, as they must for the embedded engine anyway).

use qdrant_client::qdrant::{
    vector_output, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter, Modifier,
    NamedVectors, PointStruct, PrefetchQueryBuilder, Query, QueryPointsBuilder, Range, RrfBuilder,
    SearchParamsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
    VectorsSelector,
};
use qdrant_client::{Payload, Qdrant};

use super::edge::{dot, effective_mode};
use super::payload::{self, Cond};
use super::{
    point_id, prefetch_limit, validate_points, validate_query, Collection, Mode, OrgId, Point,
    StoreHit, StoreQuery, VectorStore, DENSE, SPARSE,
};
use crate::error::{Error, Result};

const BACKEND: &str = "qdrant-server";

pub struct ServerStore {
    client: Qdrant,
    prefix: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store {
        backend: BACKEND,
        message: e.to_string(),
    }
}

impl ServerStore {
    /// Connects to `url` (gRPC, e.g. `http://localhost:6334`) and creates the
    /// collections `{prefix}literature`, `{prefix}guidelines` and
    /// `{prefix}reports` where missing.
    pub fn connect(url: &str, api_key: Option<&str>, prefix: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| store_err(format!("runtime: {e}")))?;
        let mut cfg = Qdrant::from_url(url).timeout(std::time::Duration::from_secs(30));
        if let Some(k) = api_key {
            cfg = cfg.api_key(k.to_string());
        }
        let client = cfg.build().map_err(store_err)?;
        let store = Self {
            client,
            prefix: prefix.to_string(),
            rt,
        };
        store.rt.block_on(store.ensure_collections())?;
        Ok(store)
    }

    fn name(&self, c: Collection) -> String {
        format!("{}{}", self.prefix, c.name())
    }

    async fn ensure_collections(&self) -> Result<()> {
        for c in Collection::ALL {
            let name = self.name(c);
            if self
                .client
                .collection_exists(&name)
                .await
                .map_err(store_err)?
            {
                continue;
            }
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(
                DENSE,
                VectorParamsBuilder::new(crate::embed::DIM as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                SPARSE,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf as i32),
            );
            self.client
                .create_collection(
                    CreateCollectionBuilder::new(&name)
                        .vectors_config(vectors)
                        .sparse_vectors_config(sparse),
                )
                .await
                .map_err(store_err)?;
            let fields = payload::KEYWORD_FIELDS
                .iter()
                .map(|k| (*k, FieldType::Keyword))
                .chain(
                    payload::INTEGER_FIELDS
                        .iter()
                        .map(|k| (*k, FieldType::Integer)),
                );
            for (key, ty) in fields {
                self.client
                    .create_field_index(
                        CreateFieldIndexCollectionBuilder::new(&name, key, ty).wait(true),
                    )
                    .await
                    .map_err(store_err)?;
            }
        }
        Ok(())
    }
}

fn filter(conds: &[Cond]) -> Option<Filter> {
    if conds.is_empty() {
        return None;
    }
    Some(Filter::must(conds.iter().map(|c| {
        match c {
            Cond::Is { key, value } => Condition::matches(*key, value.clone()),
            Cond::AnyOf { key, values } => Condition::matches(*key, values.clone()),
            Cond::IsOrEmpty { key, value } => Filter::should([
                Condition::matches(*key, value.clone()),
                Condition::is_empty(*key),
            ])
            .into(),
            Cond::YearIn { from, to } => Condition::range(
                "year",
                Range {
                    gte: Some(f64::from(*from)),
                    lte: Some(f64::from(*to)),
                    ..Default::default()
                },
            ),
        }
    })))
}

fn to_point(p: &Point) -> Result<PointStruct> {
    let vectors = NamedVectors::default()
        .add_vector(DENSE, Vector::new_dense(p.dense.clone()))
        .add_vector(
            SPARSE,
            Vector::new_sparse(p.sparse.indices.clone(), p.sparse.values.clone()),
        );
    let payload = Payload::from(payload::to_payload(&p.chunk)?);
    Ok(PointStruct::new(point_id(&p.chunk), vectors, payload))
}

impl VectorStore for ServerStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn upsert(&self, collection: Collection, points: &[Point]) -> Result<()> {
        validate_points(collection, points)?;
        if points.is_empty() {
            return Ok(());
        }
        let list = points.iter().map(to_point).collect::<Result<Vec<_>>>()?;
        self.rt
            .block_on(
                self.client.upsert_points(
                    UpsertPointsBuilder::new(self.name(collection), list).wait(true),
                ),
            )
            .map_err(store_err)?;
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
        let Some(f) = (!doc_ids.is_empty())
            .then(|| filter(&payload::doc_conditions(collection, org, doc_ids)))
            .flatten()
        else {
            return Ok(());
        };
        self.rt
            .block_on(
                self.client.delete_points(
                    DeletePointsBuilder::new(self.name(collection))
                        .points(f)
                        .wait(true),
                ),
            )
            .map_err(store_err)?;
        Ok(())
    }

    fn search(&self, collection: Collection, q: &StoreQuery<'_>) -> Result<Vec<StoreHit>> {
        validate_query(collection, q)?;
        let f = filter(&payload::conditions(collection, q.filter));
        let params = SearchParamsBuilder::default().exact(q.exact);
        let dense = || Query::new_nearest(VectorInput::new_dense(q.dense.to_vec()));
        let sparse = || {
            Query::new_nearest(VectorInput::new_sparse(
                q.sparse.indices.clone(),
                q.sparse.values.clone(),
            ))
        };
        let prefetch = |query: Query, using: &str| {
            let mut b = PrefetchQueryBuilder::default()
                .query(query)
                .using(using)
                .limit(prefetch_limit(q.limit) as u64)
                .params(params.clone());
            if let Some(f) = &f {
                b = b.filter(f.clone());
            }
            b
        };
        let mut req = QueryPointsBuilder::new(self.name(collection))
            .limit(q.limit as u64)
            .with_payload(true)
            .with_vectors(VectorsSelector {
                names: vec![DENSE.to_string()],
            });
        if let Some(f) = &f {
            req = req.filter(f.clone());
        }
        req = match effective_mode(q) {
            Mode::Hybrid => req
                .add_prefetch(prefetch(dense(), DENSE))
                .add_prefetch(prefetch(sparse(), SPARSE))
                .query(Query::new_rrf(RrfBuilder::with_k(payload::RRF_K as u32))),
            Mode::Dense => req.query(dense()).using(DENSE).params(params.clone()),
            Mode::Sparse => req.query(sparse()).using(SPARSE),
        };
        let res = self
            .rt
            .block_on(self.client.query(req))
            .map_err(store_err)?;
        res.result
            .into_iter()
            .map(|p| {
                let json: serde_json::Map<String, serde_json::Value> = p
                    .payload
                    .into_iter()
                    .map(|(k, v)| (k, v.into_json()))
                    .collect();
                let chunk = payload::from_payload(BACKEND, json)?;
                let dense_similarity = p
                    .vectors
                    .as_ref()
                    .and_then(|v| v.get_vector_by_name(DENSE))
                    .and_then(|v| match v {
                        vector_output::Vector::Dense(d) => Some(dot(&d.data, q.dense)),
                        _ => None,
                    });
                Ok(StoreHit {
                    chunk,
                    score: p.score,
                    dense_similarity,
                })
            })
            .collect()
    }

    fn count(&self, collection: Collection, org: Option<&OrgId>) -> Result<usize> {
        let conds = match (collection, org) {
            (Collection::Reports, None) => return Err(Error::TenantRequired),
            (Collection::Reports, Some(o)) => vec![Cond::Is {
                key: "org",
                value: o.as_str().to_string(),
            }],
            _ => vec![],
        };
        let mut b = CountPointsBuilder::new(self.name(collection)).exact(true);
        if let Some(f) = filter(&conds) {
            b = b.filter(f);
        }
        let res = self.rt.block_on(self.client.count(b)).map_err(store_err)?;
        Ok(res.result.map(|r| r.count as usize).unwrap_or(0))
    }

    fn optimize(&self) -> Result<()> {
        // The server indexes in the background on its own schedule.
        Ok(())
    }
}
