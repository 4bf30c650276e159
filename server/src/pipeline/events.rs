//! Live progress. Workers change job rows; a watcher in each web process
//! notices and broadcasts the change to the server-sent-event streams of
//! the case and batch pages. The watcher wakes on a poke from an embedded
//! worker (in-process), on PostgreSQL NOTIFY from workers anywhere, and
//! otherwise polls: one cheap indexed query, and only while someone
//! watches. Events are hints to re-read; a missed one is healed by the next.

use app::pipeline::ssr::now_ms;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JobEvent {
    pub job_id: Uuid,
    pub case_id: Uuid,
    pub batch_id: Option<Uuid>,
    pub state: String,
    pub stage: String,
}

/// The process's event bus and wake-ups.
pub struct Hub {
    events: broadcast::Sender<JobEvent>,
    /// Workers of this process wait on it for new jobs.
    pub jobs_ready: Notify,
    changed: Notify,
    /// Set at shutdown: event streams end so the server can drain.
    closing: tokio::sync::watch::Sender<bool>,
    /// Chat wake-ups (the same bus the web layer posts to).
    pub chat: app::ssr::ChatBus,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            events: broadcast::channel(1024).0,
            jobs_ready: Notify::new(),
            changed: Notify::new(),
            closing: tokio::sync::watch::channel(false).0,
            chat: app::ssr::ChatBus::default(),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// Ends every event stream (graceful shutdown waits for open ones).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when the process shuts down.
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Something changed jobs: wake the watcher and this process's workers.
    pub fn poke(&self) {
        self.changed.notify_one();
        self.jobs_ready.notify_waiters();
    }

    /// Runs until the process ends: turns job row changes into events.
    pub async fn watch(self: Arc<Self>, db: DatabaseConnection, poll: Duration) {
        let _listener = pg_listener(&db, self.clone()).await;
        let mut cursor = now_ms();
        let mut seen: HashMap<Uuid, (i64, String, String)> = HashMap::new();
        loop {
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            if self.events.receiver_count() == 0 {
                cursor = now_ms();
                seen.clear();
                continue;
            }
            // Commits land out of timestamp order across workers: look back
            // a little and de-duplicate.
            let since = cursor - 5_000;
            let rows = entity::job::Entity::find()
                .filter(entity::job::Column::UpdatedMs.gt(since))
                .order_by_asc(entity::job::Column::UpdatedMs)
                .limit(2_000)
                .all(&db)
                .await;
            let Ok(rows) = rows else {
                continue;
            };
            for j in rows {
                cursor = cursor.max(j.updated_ms);
                let key = (j.updated_ms, j.state.clone(), j.stage.clone());
                if seen.get(&j.id) == Some(&key) {
                    continue;
                }
                seen.insert(j.id, key);
                let _ = self.events.send(JobEvent {
                    job_id: j.id,
                    case_id: j.case_id,
                    batch_id: j.batch_id,
                    state: j.state,
                    stage: j.stage,
                });
            }
            seen.retain(|_, (ms, _, _)| *ms > cursor - 10_000);
        }
    }
}

/// On PostgreSQL: a LISTEN connection that pokes the hub on every job
/// NOTIFY from any worker process or replica, and wakes the chat sockets
/// of a case on every chat NOTIFY.
async fn pg_listener(
    db: &DatabaseConnection,
    hub: Arc<Hub>,
) -> Option<tokio::task::JoinHandle<()>> {
    use sea_orm::ConnectionTrait;
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return None;
    }
    let pool = db.get_postgres_connection_pool().clone();
    Some(tokio::spawn(async move {
        loop {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                l.listen_all(["medvision_jobs", "medvision_chat"]).await?;
                loop {
                    let n = l.recv().await?;
                    if n.channel() == "medvision_chat" {
                        if let Ok(case) = n.payload().parse::<uuid::Uuid>() {
                            hub.chat.posted(case);
                        }
                    } else {
                        hub.poke();
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            if let Err(e) = listener.await {
                tracing::warn!(error = %e, "job notifications: listener failed, reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }))
}
