//! `medvision backup` and `medvision restore`: the database, the stored
//! images and artefacts, the evidence index, the model packs and the
//! de-identification key, as one folder with a checksummed manifest.
//!
//! The database is copied consistently while the server runs: SQLite with
//! `VACUUM INTO` (a transaction-consistent snapshot), PostgreSQL with
//! `pg_dump` (one snapshot). Blobs are copied exactly as stored, so with
//! encryption at rest the backup is encrypted too; the encryption key is
//! configuration, never written into a backup, and must be kept apart.
//!
//! Restore refuses to overwrite: it goes into a fresh data directory and an
//! empty database, verifies every checksum before it writes anything, and
//! ends with a consistency check (row counts as recorded, and every image
//! and artefact the database names present in the store).

use crate::blobs::Blobs;
use crate::settings::Settings;
use anyhow::{bail, Context};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;
/// Tables whose row counts the manifest records and restore checks.
const COUNTED: &[&str] = &[
    "organizations",
    "users",
    "cases",
    "studies",
    "instances",
    "artefacts",
    "reports",
    "audit_log",
];

#[derive(Serialize, Deserialize, Debug)]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    pub medvision_version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub rows: BTreeMap<String, i64>,
    /// Blob keys, as stored.
    pub blobs: Vec<String>,
    /// Every file of the backup (relative path → sha256, size).
    pub files: BTreeMap<String, (String, u64)>,
}

/// What a restore found.
#[derive(Debug)]
pub struct Restored {
    pub rows: BTreeMap<String, i64>,
    pub blobs: usize,
    pub files: usize,
}

fn sqlite_path(settings: &Settings) -> PathBuf {
    let url = settings.database_url();
    let p = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    PathBuf::from(p)
}

async fn counts(db: &impl ConnectionTrait) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for t in COUNTED {
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {t}"),
            ))
            .await?
            .context("count")?;
        out.insert((*t).to_owned(), row.try_get::<i64>("", "n")?);
    }
    Ok(out)
}

/// A file's sha256 (the model packs' hasher, streaming) and size.
fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    Ok((
        inference::pack::sha256_file(path)?,
        std::fs::metadata(path)?.len(),
    ))
}

fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> anyhow::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_tree(&e.path(), &to.join(&name), skip)?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            walk(root, &e.path(), out)?;
        } else {
            out.push(e.path().strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

fn pg_tool(name: &str) -> anyhow::Result<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(
            // Debian keeps the versioned tools here.
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin")),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.with_context(|| format!("{name} is needed to back up or restore PostgreSQL; install the PostgreSQL client tools"))
}

/// Writes a backup into `dir` (which must not exist or be empty).
pub async fn backup(
    settings: &Settings,
    db: &DatabaseConnection,
    dir: &Path,
) -> anyhow::Result<Manifest> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: a backup goes into a new folder",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    // Row counts from the very snapshot that is copied, so a server
    // writing meanwhile cannot make the restore's check disagree.
    let (database, rows) = if settings.is_postgres() {
        use sea_orm::TransactionTrait;
        let txn = db
            .begin_with_config(Some(sea_orm::IsolationLevel::RepeatableRead), None)
            .await?;
        let snapshot: String = txn
            .query_one(Statement::from_string(
                txn.get_database_backend(),
                "SELECT pg_export_snapshot() AS s",
            ))
            .await?
            .context("no snapshot")?
            .try_get("", "s")?;
        let rows = counts(&txn).await?;
        let out = tokio::process::Command::new(pg_tool("pg_dump")?)
            .arg("--format=custom")
            .arg("--no-owner")
            .arg(format!("--snapshot={snapshot}"))
            .arg("--file")
            .arg(dir.join("database.pgdump"))
            .arg(settings.database_url())
            .output()
            .await?;
        txn.commit().await?;
        if !out.status.success() {
            bail!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        ("postgres", rows)
    } else {
        let to = dir.join("medvision.db");
        let to_s = to
            .to_str()
            .context("backup path is not UTF-8")?
            .replace('\'', "''");
        db.execute_unprepared(&format!("VACUUM INTO '{to_s}'"))
            .await?;
        let copy = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", to.display())).await?;
        let rows = counts(&copy).await?;
        copy.close().await?;
        ("sqlite", rows)
    };
    let blobs = Blobs::from_settings(settings)?;
    let keys = blobs.export_to(&dir.join("blobs")).await?;
    copy_tree(
        &settings.evidence_dir(),
        &dir.join("evidence"),
        &["medvision.lock"],
    )?;
    copy_tree(&settings.models_dir(), &dir.join("models"), &[])?;
    let deid = settings.data_dir.join("deid.key");
    if deid.is_file() {
        std::fs::copy(&deid, dir.join("deid.key"))?;
    }
    let mut files = BTreeMap::new();
    let mut all = Vec::new();
    walk(dir, dir, &mut all)?;
    for rel in all {
        let key = rel.to_string_lossy().replace('\\', "/");
        files.insert(key, sha256_file(&dir.join(&rel))?);
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at: chrono::Utc::now().to_rfc3339(),
        medvision_version: env!("CARGO_PKG_VERSION").to_owned(),
        database: database.to_owned(),
        rows,
        blobs: keys,
        files,
    };
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// Reads a backup's manifest and checks every file against it.
pub fn verify(dir: &Path) -> anyhow::Result<Manifest> {
    let m: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json"))
            .context("no manifest.json: not a MedVision backup")?,
    )
    .context("manifest.json is not readable")?;
    if m.format != FORMAT {
        bail!(
            "backup format {} is not supported (this version reads {FORMAT})",
            m.format
        );
    }
    for (rel, (sum, size)) in &m.files {
        let p = dir.join(rel);
        let (got, n) =
            sha256_file(&p).with_context(|| format!("{rel} is missing from the backup"))?;
        if &got != sum || n != *size {
            bail!("{rel} does not match its checksum: the backup is damaged");
        }
    }
    for k in &m.blobs {
        if !m.files.contains_key(&format!("blobs/{k}")) {
            bail!("the manifest names a blob the backup does not hold");
        }
    }
    Ok(m)
}

/// Restores `dir` into the data directory and database of `settings`,
/// which must be fresh.
pub async fn restore(settings: &Settings, dir: &Path) -> anyhow::Result<Restored> {
    let m = verify(dir)?;
    let want_pg = m.database == "postgres";
    if want_pg != settings.is_postgres() {
        bail!(
            "the backup holds a {} database but this server is configured for {}",
            m.database,
            if settings.is_postgres() {
                "postgres"
            } else {
                "sqlite"
            }
        );
    }
    let deid = settings.data_dir.join("deid.key");
    if deid.exists() && dir.join("deid.key").exists() {
        let a = std::fs::read(&deid)?;
        let b = std::fs::read(dir.join("deid.key"))?;
        if a != b {
            bail!("{} already holds a different de-identification key: restore into a fresh data directory", settings.data_dir.display());
        }
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    if want_pg {
        // The target must be empty: never merged into a live database.
        let db = crate::db::connect(settings).await?;
        let has = db
            .conn
            .query_one(Statement::from_string(
                db.conn.get_database_backend(),
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        db.conn.close().await.ok();
        if has > 0 {
            bail!("the target PostgreSQL database is not empty: restore into a new database");
        }
        let out = tokio::process::Command::new(pg_tool("pg_restore")?)
            .arg("--no-owner")
            .arg("--exit-on-error")
            .arg("--dbname")
            .arg(settings.database_url())
            .arg(dir.join("database.pgdump"))
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "pg_restore failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    } else {
        let to = sqlite_path(settings);
        if to.exists() {
            bail!(
                "{} exists: restore into a fresh data directory",
                to.display()
            );
        }
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(dir.join("medvision.db"), &to)?;
    }
    if dir.join("deid.key").exists() && !deid.exists() {
        std::fs::copy(dir.join("deid.key"), &deid)?;
    }
    let blobs = Blobs::from_settings(settings)?;
    blobs.import_from(&dir.join("blobs"), &m.blobs).await?;
    copy_tree(&dir.join("evidence"), &settings.evidence_dir(), &[])?;
    copy_tree(&dir.join("models"), &settings.models_dir(), &[])?;

    // Consistency: the database opens and migrates, holds what the backup
    // recorded, and every stored file it names is in the store.
    let db = crate::db::connect(settings).await?;
    crate::db::migrate(&db).await?;
    let rows = counts(&db.conn).await?;
    for (t, n) in &m.rows {
        if rows.get(t) != Some(n) {
            bail!(
                "restored table {t} has {:?} rows, the backup recorded {n}",
                rows.get(t)
            );
        }
    }
    let missing = missing_blobs(&db.conn, &blobs).await?;
    if missing > 0 {
        bail!("{missing} stored file(s) named by the database are missing after the restore");
    }
    db.conn.close().await.ok();
    Ok(Restored {
        rows,
        blobs: m.blobs.len(),
        files: m.files.len(),
    })
}

/// Images and artefacts the database names but the store lacks.
pub async fn missing_blobs(db: &DatabaseConnection, blobs: &Blobs) -> anyhow::Result<usize> {
    let mut missing = 0;
    for (table, org_col) in [("instances", "org_id"), ("artefacts", "org_id")] {
        let rows = db
            .query_all(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT DISTINCT {org_col} AS org, blob_sha256 AS sha FROM {table}"),
            ))
            .await?;
        for r in rows {
            let org: uuid::Uuid = r.try_get("", "org")?;
            let sha: String = r.try_get("", "sha")?;
            if !blobs.exists(org, &sha).await {
                missing += 1;
            }
        }
    }
    Ok(missing)
}
