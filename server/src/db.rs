//! Database connections (SQLite in WAL mode, or PostgreSQL), migrations and
//! the session store on the same database.

use crate::settings::Settings;
use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[source] sea_orm::DbErr),
    #[error("session store migration failed: {0}")]
    Sessions(#[source] session_store::Error),
}

/// The database and the session store that lives in it.
pub struct Database {
    pub conn: DatabaseConnection,
    pub sessions: DbSessionStore,
}

pub async fn connect(settings: &Settings) -> Result<Database, DbError> {
    let url = settings.database_url();
    if settings.is_postgres() {
        let pool = PgPoolOptions::new()
            .max_connections(settings.db_max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .map_err(DbError::Connect)?;
        Ok(Database {
            sessions: DbSessionStore::Postgres(PostgresStore::new(pool.clone())),
            conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
        })
    } else {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| DbError::DataDir(settings.data_dir.display().to_string(), e))?;
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(DbError::Connect)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.db_max_connections.min(8))
            .connect_with(opts)
            .await
            .map_err(DbError::Connect)?;
        Ok(Database {
            sessions: DbSessionStore::Sqlite(SqliteStore::new(pool.clone())),
            conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
        })
    }
}

/// Applies pending migrations of the schema and of the session table.
pub async fn migrate(db: &Database) -> Result<(), DbError> {
    Migrator::up(&db.conn, None)
        .await
        .map_err(DbError::Migrate)?;
    db.sessions.migrate().await.map_err(DbError::Sessions)
}

/// Sessions in the application database, whichever backend it is, so they
/// survive restarts and are shared by every web replica.
#[derive(Clone, Debug)]
pub enum DbSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DbSessionStore {
    pub async fn migrate(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s
                .migrate()
                .await
                .map_err(|e| session_store::Error::Backend(e.to_string())),
            Self::Postgres(s) => s
                .migrate()
                .await
                .map_err(|e| session_store::Error::Backend(e.to_string())),
        }
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.create(record).await,
            Self::Postgres(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.save(record).await,
            Self::Postgres(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(s) => s.load(id).await,
            Self::Postgres(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete(id).await,
            Self::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete_expired().await,
            Self::Postgres(s) => s.delete_expired().await,
        }
    }
}
