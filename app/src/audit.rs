//! The tamper-evident audit log: every change to accounts, roles and cases
//! appends one row whose hash covers the row and the previous row's hash.

use serde::{Deserialize, Serialize};

/// The result of re-computing the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    pub rows: u64,
    /// The first row whose stored hash or link does not match, with why.
    pub first_broken: Option<BrokenLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{BrokenLink, ChainReport};
    use crate::error::AppError;
    use crate::ssr::{now, Actor};
    use entity::audit_log;
    use sea_orm::{
        ActiveValue::Set, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
        QueryOrder, QuerySelect, Statement, StreamTrait,
    };
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    /// Hash of the (empty) row before the first one.
    pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    /// What happened, to what, by whom.
    pub struct Entry {
        pub org_id: Option<Uuid>,
        pub actor_id: Option<Uuid>,
        pub action: &'static str,
        pub target_type: &'static str,
        pub target_id: Option<String>,
        pub details: serde_json::Value,
    }

    impl Entry {
        /// An action by a signed-in user within their organisation.
        pub fn by(
            actor: &Actor,
            action: &'static str,
            target_type: &'static str,
            target_id: impl ToString,
        ) -> Self {
            Self {
                org_id: Some(actor.org_id),
                actor_id: Some(actor.user_id),
                action,
                target_type,
                target_id: Some(target_id.to_string()),
                details: serde_json::Value::Null,
            }
        }

        pub fn details(mut self, details: serde_json::Value) -> Self {
            self.details = details;
            self
        }

        /// `{"before": …, "after": …}`.
        pub fn change<B: serde::Serialize, A: serde::Serialize>(
            self,
            before: &B,
            after: &A,
        ) -> Self {
            self.details(serde_json::json!({ "before": before, "after": after }))
        }
    }

    /// The canonical text a row's hash covers.
    fn canonical(m: &audit_log::Model) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            m.seq,
            m.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            m.org_id.map(|u| u.to_string()).unwrap_or_default(),
            m.actor_id.map(|u| u.to_string()).unwrap_or_default(),
            m.action,
            m.target_type,
            m.target_id.clone().unwrap_or_default(),
            m.details,
            m.prev_hash,
        )
    }

    pub fn row_hash(m: &audit_log::Model) -> String {
        hex::encode(Sha256::digest(canonical(m).as_bytes()))
    }

    /// Appends one row inside the caller's transaction, so the change and its
    /// audit row commit together or not at all. The transaction must come
    /// from [`crate::ssr::write_txn`] (SQLite write lock held); on PostgreSQL
    /// an advisory lock serialises appenders across processes. `seq` is the
    /// primary key, so even without the lock the chain could never fork.
    pub async fn append(txn: &DatabaseTransaction, e: Entry) -> Result<(), AppError> {
        if txn.get_database_backend() == DatabaseBackend::Postgres {
            txn.execute(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(724311)",
            ))
            .await?;
        }
        let last = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Seq)
            .limit(1)
            .one(txn)
            .await?;
        let (seq, prev_hash) = match last {
            Some(l) => (l.seq + 1, l.hash),
            None => (1, GENESIS.to_owned()),
        };
        let mut row = audit_log::Model {
            seq,
            at: now(),
            org_id: e.org_id,
            actor_id: e.actor_id,
            action: e.action.to_owned(),
            target_type: e.target_type.to_owned(),
            target_id: e.target_id,
            details: e.details.to_string(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row_hash(&row);
        audit_log::Entity::insert(audit_log::ActiveModel {
            seq: Set(row.seq),
            at: Set(row.at),
            org_id: Set(row.org_id),
            actor_id: Set(row.actor_id),
            action: Set(row.action),
            target_type: Set(row.target_type),
            target_id: Set(row.target_id),
            details: Set(row.details),
            prev_hash: Set(row.prev_hash),
            hash: Set(row.hash),
        })
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }

    /// Streams the whole log in order and re-computes every link.
    pub async fn verify<C: ConnectionTrait + StreamTrait>(db: &C) -> Result<ChainReport, AppError> {
        use futures_util::StreamExt;
        let mut stream = audit_log::Entity::find()
            .order_by_asc(audit_log::Column::Seq)
            .stream(db)
            .await?;
        let mut prev = GENESIS.to_owned();
        let mut expected_seq = 1i64;
        let mut rows = 0u64;
        while let Some(row) = stream.next().await {
            let row = row?;
            rows += 1;
            let broken = |reason: String| ChainReport {
                rows,
                first_broken: Some(BrokenLink {
                    seq: row.seq,
                    reason,
                }),
            };
            if row.seq != expected_seq {
                return Ok(broken(format!(
                    "expected row {expected_seq} next, found row {}: rows are missing",
                    row.seq
                )));
            }
            if row.prev_hash != prev {
                return Ok(broken("its link to the previous row does not match".into()));
            }
            if row_hash(&row) != row.hash {
                return Ok(broken(
                    "its content does not match its hash (the row was altered)".into(),
                ));
            }
            prev = row.hash.clone();
            expected_seq += 1;
        }
        Ok(ChainReport {
            rows,
            first_broken: None,
        })
    }
}
