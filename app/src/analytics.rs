//! The dashboard: how much work, how urgent, how fast, and how the models
//! do against what radiologists confirmed (sensitivity, specificity, AUROC
//! and calibration error with 95 % intervals, by age band and sex). Every
//! number is aggregated in the database (GROUP BY over the rows); Rust only
//! combines the few aggregate rows into intervals and strata.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A value with its 95 % confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Ci {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Totals {
    pub cases: i64,
    pub studies_analysed: i64,
    pub findings: i64,
    pub positive_findings: i64,
    pub signed_reports: i64,
    /// Mean hours from the first upload to the signature.
    pub mean_turnaround_hours: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Count {
    pub key: String,
    pub n: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LabelStats {
    pub model: String,
    pub model_version: String,
    pub label: String,
    pub findings: i64,
    pub positives: i64,
    pub positivity_rate: f64,
    /// Mean calibrated probability.
    pub mean_probability: f64,
}

/// A model's performance on one label against confirmed labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Performance {
    pub model: String,
    pub model_version: String,
    pub label: String,
    /// `all`, `age 40-64`, `sex F`, …
    pub stratum: String,
    pub confirmed: i64,
    pub tp: i64,
    pub fp: i64,
    pub tn: i64,
    #[serde(rename = "fn")]
    pub fn_: i64,
    pub sensitivity: Option<Ci>,
    pub specificity: Option<Ci>,
    pub auroc: Option<Ci>,
    /// Expected calibration error over ten probability bins.
    pub ece: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Analytics {
    /// `me` or `organisation`.
    pub scope: String,
    /// `day`, `week` or `month`.
    pub period: String,
    pub totals: Totals,
    /// Cases by effective urgency (routine … stat).
    pub urgency: Vec<Count>,
    /// New cases per period, oldest first.
    pub trend: Vec<Count>,
    pub labels: Vec<LabelStats>,
    pub performance: Vec<Performance>,
}

/// Sensitivity and specificity if the label were called positive from
/// `threshold` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CurvePoint {
    pub threshold: f64,
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
}

/// One model label's operating point for the organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ThresholdRow {
    pub model: String,
    pub label: String,
    /// Findings the radiologists confirmed or rejected.
    pub confirmed: i64,
    /// The organisation's threshold; `None`: the pack's.
    pub org_threshold: Option<f64>,
    /// The trade-off at thresholds 0.05, 0.10 … 0.95.
    pub curve: Vec<CurvePoint>,
}

/// `PUT /api/v1/admin/thresholds`: `positive_at: null` returns to the pack's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ThresholdInput {
    pub model: String,
    pub label: String,
    pub positive_at: Option<f64>,
}

/// The curve from confirmed-score histograms (`BINS` bins).
pub fn curve(pos: &[i64], neg: &[i64]) -> Vec<CurvePoint> {
    let (np, nn): (i64, i64) = (pos.iter().sum(), neg.iter().sum());
    (1..20)
        .map(|k| {
            let t = k as f64 / 20.0;
            let from = ((t * pos.len() as f64).round() as usize).min(pos.len());
            let tp: i64 = pos[from..].iter().sum();
            let fp: i64 = neg[from..].iter().sum();
            CurvePoint {
                threshold: t,
                sensitivity: (np > 0).then(|| tp as f64 / np as f64),
                specificity: (nn > 0).then(|| (nn - fp) as f64 / nn as f64),
            }
        })
        .collect()
}

/// Wilson score interval for `x` successes in `n`.
pub fn wilson(x: i64, n: i64) -> Option<Ci> {
    if n <= 0 {
        return None;
    }
    let (x, n, z) = (x as f64, n as f64, 1.96f64);
    let p = x / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    Some(Ci {
        value: p,
        low: (c - h).max(0.0),
        high: (c + h).min(1.0),
    })
}

/// AUROC from score histograms (ties within a bin count half) with the
/// Hanley–McNeil standard error.
pub fn auroc(pos: &[i64], neg: &[i64]) -> Option<Ci> {
    let (np, nn): (i64, i64) = (pos.iter().sum(), neg.iter().sum());
    if np == 0 || nn == 0 {
        return None;
    }
    let mut below = 0i64;
    let mut wins = 0.0f64;
    for (p, n) in pos.iter().zip(neg) {
        wins += *p as f64 * (below as f64 + 0.5 * *n as f64);
        below += n;
    }
    let (fp, fn_) = (np as f64, nn as f64);
    let a = wins / (fp * fn_);
    let q1 = a / (2.0 - a);
    let q2 = 2.0 * a * a / (1.0 + a);
    let var = (a * (1.0 - a) + (fp - 1.0) * (q1 - a * a) + (fn_ - 1.0) * (q2 - a * a)) / (fp * fn_);
    let se = var.max(0.0).sqrt();
    Some(Ci {
        value: a,
        low: (a - 1.96 * se).max(0.0),
        high: (a + 1.96 * se).min(1.0),
    })
}

/// Expected calibration error from ten bins of (count, sum of
/// probabilities, number present).
pub fn ece(bins: &[(i64, f64, i64)]) -> Option<f64> {
    let n: i64 = bins.iter().map(|b| b.0).sum();
    if n == 0 {
        return None;
    }
    Some(
        bins.iter()
            .filter(|b| b.0 > 0)
            .map(|(c, s, p)| (s / *c as f64 - *p as f64 / *c as f64).abs() * *c as f64)
            .sum::<f64>()
            / n as f64,
    )
}

/// Probability histogram resolution for AUROC.
pub const BINS: usize = 100;

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::domain::Role;
    use crate::ssr::Actor;
    use sea_orm::{
        ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
        QueryFilter, Statement, Value,
    };
    use std::collections::BTreeMap;

    /// `?` placeholders in the dialect of the backend.
    fn sql(b: DatabaseBackend, s: &str) -> String {
        if b != DatabaseBackend::Postgres {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len() + 8);
        let mut n = 0;
        for ch in s.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        out
    }

    struct Scope {
        clause: &'static str,
        values: Vec<Value>,
        name: &'static str,
    }

    /// Admins see the organisation; everyone else their own work (cases
    /// they own, or reviewed).
    fn scope(actor: &Actor, want_org: bool) -> Scope {
        if want_org && actor.role == Role::Admin {
            return Scope {
                clause: "c.org_id = ?",
                values: vec![actor.org_id.into()],
                name: "organisation",
            };
        }
        Scope {
            clause: "c.org_id = ? AND (c.owner_id = ? OR EXISTS (SELECT 1 FROM finding_reviews x WHERE x.case_id = c.id AND x.reviewer_id = ?) OR EXISTS (SELECT 1 FROM reports y WHERE y.case_id = c.id AND y.signed_by = ?))",
            values: vec![
                actor.org_id.into(),
                actor.user_id.into(),
                actor.user_id.into(),
                actor.user_id.into(),
            ],
            name: "me",
        }
    }

    async fn rows(
        db: &DatabaseConnection,
        text: &str,
        values: Vec<Value>,
    ) -> Result<Vec<sea_orm::QueryResult>, AppError> {
        let b = db.get_database_backend();
        Ok(db
            .query_all(Statement::from_sql_and_values(b, sql(b, text), values))
            .await?)
    }

    fn get_i(r: &sea_orm::QueryResult, c: &str) -> i64 {
        r.try_get::<i64>("", c)
            .or_else(|_| r.try_get::<i32>("", c).map(i64::from))
            .or_else(|_| r.try_get::<i16>("", c).map(i64::from))
            .unwrap_or(0)
    }

    fn get_f(r: &sea_orm::QueryResult, c: &str) -> Option<f64> {
        r.try_get::<Option<f64>>("", c).ok().flatten()
    }

    fn get_s(r: &sea_orm::QueryResult, c: &str) -> String {
        r.try_get::<String>("", c).unwrap_or_default()
    }

    pub async fn dashboard(
        db: &DatabaseConnection,
        actor: &Actor,
        want_org: bool,
        period: &str,
    ) -> Result<Analytics, AppError> {
        let b = db.get_database_backend();
        let pg = b == DatabaseBackend::Postgres;
        let period = match period {
            "day" | "week" | "month" => period,
            _ => return Err(AppError::field("period", "must be day, week or month")),
        };
        let sc = scope(actor, want_org);
        let w = sc.clause;

        // One pass over the findings for three of the totals.
        let f_sql = format!(
            "SELECT COUNT(DISTINCT f.study_id) AS studies, COUNT(*) AS findings,
                    COALESCE(SUM(CASE WHEN f.positive THEN 1 ELSE 0 END), 0) AS positives
             FROM findings f JOIN cases c ON c.id = f.case_id WHERE {w}"
        );
        let fr = rows(db, &f_sql, sc.values.clone()).await?;
        let c_sql = format!(
            "SELECT (SELECT COUNT(*) FROM cases c WHERE {w}) AS cases,
                    (SELECT COUNT(*) FROM reports r JOIN cases c ON c.id = r.case_id WHERE r.status = 'signed' AND {w}) AS signed"
        );
        let mut v = sc.values.clone();
        v.extend(sc.values.clone());
        let cr = rows(db, &c_sql, v).await?;
        let (fr, cr) = (
            fr.first().ok_or(AppError::Internal)?,
            cr.first().ok_or(AppError::Internal)?,
        );
        let hours = if pg {
            "EXTRACT(EPOCH FROM (r.signed_at - s.first)) / 3600.0"
        } else {
            "(julianday(r.signed_at) - julianday(s.first)) * 24.0"
        };
        let turn = rows(
            db,
            &format!(
                "SELECT AVG(CAST({hours} AS DOUBLE PRECISION)) AS h FROM reports r
                 JOIN cases c ON c.id = r.case_id
                 JOIN (SELECT case_id, MIN(created_at) AS first FROM studies GROUP BY case_id) s ON s.case_id = r.case_id
                 WHERE r.status = 'signed' AND {w}"
            )
            .replace("DOUBLE PRECISION", if pg { "DOUBLE PRECISION" } else { "REAL" }),
            sc.values.clone(),
        )
        .await?;
        let totals = Totals {
            cases: get_i(cr, "cases"),
            studies_analysed: get_i(fr, "studies"),
            findings: get_i(fr, "findings"),
            positive_findings: get_i(fr, "positives"),
            signed_reports: get_i(cr, "signed"),
            mean_turnaround_hours: turn.first().and_then(|r| get_f(r, "h")),
        };

        let urgency = rows(
            db,
            &format!("SELECT c.urgency_rank AS k, COUNT(*) AS n FROM cases c WHERE {w} GROUP BY c.urgency_rank ORDER BY c.urgency_rank"),
            sc.values.clone(),
        )
        .await?
        .iter()
        .map(|r| Count {
            key: match get_i(r, "k") {
                3 => "stat",
                2 => "urgent",
                1 => "priority",
                _ => "routine",
            }
            .into(),
            n: get_i(r, "n"),
        })
        .collect();

        let key = match (period, pg) {
            ("day", false) => "strftime('%Y-%m-%d', c.created_at)",
            ("week", false) => "date(c.created_at, 'weekday 0', '-6 days')",
            ("month", false) => "strftime('%Y-%m', c.created_at)",
            ("day", true) => "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            ("week", true) => {
                "to_char(date_trunc('week', c.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"
            }
            _ => "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM')",
        };
        let trend = rows(
            db,
            &format!("SELECT {key} AS k, COUNT(*) AS n FROM cases c WHERE {w} GROUP BY {key} ORDER BY {key}"),
            sc.values.clone(),
        )
        .await?
        .iter()
        .map(|r| Count {
            key: get_s(r, "k"),
            n: get_i(r, "n"),
        })
        .collect();

        let labels = rows(
            db,
            &format!(
                "SELECT f.model AS model, f.model_version AS version, f.label AS label, COUNT(*) AS n,
                        SUM(CASE WHEN f.positive THEN 1 ELSE 0 END) AS pos, AVG(f.probability) AS mean_p
                 FROM findings f JOIN cases c ON c.id = f.case_id WHERE {w}
                 GROUP BY f.model, f.model_version, f.label ORDER BY f.model, f.model_version, f.label"
            ),
            sc.values.clone(),
        )
        .await?
        .iter()
        .map(|r| {
            let (n, pos) = (get_i(r, "n"), get_i(r, "pos"));
            LabelStats {
                model: get_s(r, "model"),
                model_version: get_s(r, "version"),
                label: get_s(r, "label"),
                findings: n,
                positives: pos,
                positivity_rate: if n > 0 { pos as f64 / n as f64 } else { 0.0 },
                mean_probability: get_f(r, "mean_p").unwrap_or(0.0),
            }
        })
        .collect();

        // Confirmed findings, aggregated by model, label, stratum, the
        // model's call, the reader's call and a 1 % probability bin.
        let bin = if pg {
            format!("LEAST(FLOOR(f.probability * {BINS})::int, {})", BINS - 1)
        } else {
            format!("MIN(CAST(f.probability * {BINS} AS INTEGER), {})", BINS - 1)
        };
        let perf_sql = format!(
            "SELECT f.model AS model, f.model_version AS version, f.label AS label,
                    CASE WHEN c.age IS NULL THEN 'unknown' WHEN c.age < 18 THEN '0-17'
                         WHEN c.age < 40 THEN '18-39' WHEN c.age < 65 THEN '40-64' ELSE '65+' END AS band,
                    c.sex AS sex,
                    CASE WHEN f.positive THEN 1 ELSE 0 END AS called,
                    CASE WHEN r.present THEN 1 ELSE 0 END AS truth,
                    {bin} AS bin, COUNT(*) AS n, SUM(f.probability) AS sum_p
             FROM findings f
             JOIN cases c ON c.id = f.case_id
             JOIN finding_reviews r ON r.finding_id = f.id
              AND r.created_at = (SELECT MAX(x.created_at) FROM finding_reviews x WHERE x.finding_id = f.id)
             WHERE {w}
             GROUP BY f.model, f.model_version, f.label, band, c.sex, called, truth, bin"
        );
        let agg = rows(db, &perf_sql, sc.values.clone()).await?;
        #[derive(Default)]
        struct Acc {
            tp: i64,
            fp: i64,
            tn: i64,
            fn_: i64,
            pos: Vec<i64>,
            neg: Vec<i64>,
            cal: Vec<(i64, f64, i64)>,
        }
        let mut acc: BTreeMap<(String, String, String, String), Acc> = BTreeMap::new();
        for r in &agg {
            let (called, truth) = (get_i(r, "called") == 1, get_i(r, "truth") == 1);
            let bin = (get_i(r, "bin").clamp(0, BINS as i64 - 1)) as usize;
            let n = get_i(r, "n");
            let sum_p = get_f(r, "sum_p").unwrap_or(0.0);
            let base = (get_s(r, "model"), get_s(r, "version"), get_s(r, "label"));
            for stratum in [
                "all".to_owned(),
                format!("age {}", get_s(r, "band")),
                format!("sex {}", get_s(r, "sex")),
            ] {
                let a = acc
                    .entry((base.0.clone(), base.1.clone(), base.2.clone(), stratum))
                    .or_insert_with(|| Acc {
                        pos: vec![0; BINS],
                        neg: vec![0; BINS],
                        cal: vec![(0, 0.0, 0); 10],
                        ..Default::default()
                    });
                match (called, truth) {
                    (true, true) => a.tp += n,
                    (true, false) => a.fp += n,
                    (false, false) => a.tn += n,
                    (false, true) => a.fn_ += n,
                }
                if truth {
                    a.pos[bin] += n;
                } else {
                    a.neg[bin] += n;
                }
                let c = &mut a.cal[bin * 10 / BINS];
                c.0 += n;
                c.1 += sum_p;
                c.2 += if truth { n } else { 0 };
            }
        }
        let performance = acc
            .into_iter()
            .map(|((model, model_version, label, stratum), a)| Performance {
                confirmed: a.tp + a.fp + a.tn + a.fn_,
                sensitivity: wilson(a.tp, a.tp + a.fn_),
                specificity: wilson(a.tn, a.tn + a.fp),
                auroc: auroc(&a.pos, &a.neg),
                ece: ece(&a.cal),
                tp: a.tp,
                fp: a.fp,
                tn: a.tn,
                fn_: a.fn_,
                model,
                model_version,
                label,
                stratum,
            })
            .collect();
        Ok(Analytics {
            scope: sc.name.into(),
            period: period.into(),
            totals,
            urgency,
            trend,
            labels,
            performance,
        })
    }

    /// The admin's view for threshold tuning: every model label the
    /// organisation has findings for, its threshold, and its trade-off on
    /// the confirmed ones (aggregated in the database).
    pub async fn thresholds(
        db: &DatabaseConnection,
        actor: &Actor,
    ) -> Result<Vec<ThresholdRow>, AppError> {
        actor.require_role(Role::Admin)?;
        let b = db.get_database_backend();
        let bin = if b == DatabaseBackend::Postgres {
            format!("LEAST(FLOOR(f.probability * {BINS})::int, {})", BINS - 1)
        } else {
            format!("MIN(CAST(f.probability * {BINS} AS INTEGER), {})", BINS - 1)
        };
        let org: Value = actor.org_id.into();
        let labels = rows(
            db,
            "SELECT f.model AS model, f.label AS label FROM findings f WHERE f.org_id = ?
             GROUP BY f.model, f.label ORDER BY f.model, f.label",
            vec![org.clone()],
        )
        .await?;
        let hist = rows(
            db,
            &format!(
                "SELECT f.model AS model, f.label AS label, CASE WHEN r.present THEN 1 ELSE 0 END AS truth,
                        {bin} AS bin, COUNT(*) AS n
                 FROM findings f
                 JOIN finding_reviews r ON r.finding_id = f.id
                  AND r.created_at = (SELECT MAX(x.created_at) FROM finding_reviews x WHERE x.finding_id = f.id)
                 WHERE f.org_id = ?
                 GROUP BY f.model, f.label, truth, bin"
            ),
            vec![org.clone()],
        )
        .await?;
        let set = entity::org_threshold::Entity::find()
            .filter(entity::org_threshold::Column::OrgId.eq(actor.org_id))
            .all(db)
            .await?;
        let mut out = Vec::new();
        for l in &labels {
            let (model, label) = (get_s(l, "model"), get_s(l, "label"));
            let mut pos = vec![0i64; BINS];
            let mut neg = vec![0i64; BINS];
            for h in hist
                .iter()
                .filter(|h| get_s(h, "model") == model && get_s(h, "label") == label)
            {
                let bin = get_i(h, "bin").clamp(0, BINS as i64 - 1) as usize;
                if get_i(h, "truth") == 1 {
                    pos[bin] += get_i(h, "n");
                } else {
                    neg[bin] += get_i(h, "n");
                }
            }
            out.push(ThresholdRow {
                confirmed: pos.iter().chain(&neg).sum(),
                org_threshold: set
                    .iter()
                    .find(|t| t.model == model && t.label == label)
                    .map(|t| t.positive_at),
                curve: curve(&pos, &neg),
                model,
                label,
            });
        }
        Ok(out)
    }

    /// Sets (or clears) the organisation's threshold; audited.
    pub async fn set_threshold(
        db: &DatabaseConnection,
        actor: &Actor,
        input: ThresholdInput,
    ) -> Result<Vec<ThresholdRow>, AppError> {
        use crate::audit::ssr::{append, Entry};
        use entity::org_threshold;
        use sea_orm::{ActiveModelTrait, ActiveValue::Set, ModelTrait};
        actor.require_role(Role::Admin)?;
        if let Some(t) = input.positive_at {
            if !(t > 0.0 && t < 1.0) {
                return Err(AppError::field(
                    "positive_at",
                    "must be between 0 and 1 (exclusive)",
                ));
            }
        }
        let txn = crate::ssr::write_txn(db).await?;
        let known = entity::finding::Entity::find()
            .filter(entity::finding::Column::OrgId.eq(actor.org_id))
            .filter(entity::finding::Column::Model.eq(input.model.clone()))
            .filter(entity::finding::Column::Label.eq(input.label.clone()))
            .one(&txn)
            .await?;
        if known.is_none() {
            return Err(AppError::field(
                "label",
                "no finding of this model and label in your organisation",
            ));
        }
        let old = org_threshold::Entity::find_by_id((
            actor.org_id,
            input.model.clone(),
            input.label.clone(),
        ))
        .one(&txn)
        .await?;
        let before = old.as_ref().map(|o| o.positive_at);
        if let Some(o) = old {
            o.delete(&txn).await?;
        }
        if let Some(t) = input.positive_at {
            org_threshold::ActiveModel {
                org_id: Set(actor.org_id),
                model: Set(input.model.clone()),
                label: Set(input.label.clone()),
                positive_at: Set(t),
                set_by: Set(actor.user_id),
                set_at: Set(crate::ssr::now()),
            }
            .insert(&txn)
            .await?;
        }
        let mut e = Entry::by(actor, "threshold.set", "model", &input.model);
        e.details = serde_json::json!({
            "label": input.label,
            "before": {"positive_at": before},
            "after": {"positive_at": input.positive_at},
        });
        append(&txn, e).await?;
        txn.commit().await?;
        thresholds(db, actor).await
    }

    /// The organisation's thresholds for a model, for the pipeline.
    pub async fn org_thresholds<C: ConnectionTrait>(
        db: &C,
        org: uuid::Uuid,
        model: &str,
    ) -> Result<Vec<(String, f64)>, AppError> {
        Ok(entity::org_threshold::Entity::find()
            .filter(entity::org_threshold::Column::OrgId.eq(org))
            .filter(entity::org_threshold::Column::Model.eq(model))
            .all(db)
            .await?
            .into_iter()
            .map(|t| (t.label, t.positive_at))
            .collect())
    }

    /// One table of the dashboard as CSV (RFC 4180 quoting; cells that a
    /// spreadsheet would run as a formula are prefixed with a quote).
    pub fn csv(a: &Analytics, table: &str) -> Result<String, AppError> {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
        let mut out = String::new();
        let mut line = |cells: Vec<String>| out.push_str(&crate::ssr::csv_line(&cells));
        match table {
            "trend" => {
                line(vec![a.period.clone(), "cases".into()]);
                for c in &a.trend {
                    line(vec![c.key.clone(), c.n.to_string()]);
                }
            }
            "urgency" => {
                line(vec!["urgency".into(), "cases".into()]);
                for c in &a.urgency {
                    line(vec![c.key.clone(), c.n.to_string()]);
                }
            }
            "labels" => {
                line(
                    [
                        "model",
                        "model_version",
                        "label",
                        "findings",
                        "positives",
                        "positivity_rate",
                        "mean_probability",
                    ]
                    .map(String::from)
                    .to_vec(),
                );
                for l in &a.labels {
                    line(vec![
                        l.model.clone(),
                        l.model_version.clone(),
                        l.label.clone(),
                        l.findings.to_string(),
                        l.positives.to_string(),
                        format!("{:.4}", l.positivity_rate),
                        format!("{:.4}", l.mean_probability),
                    ]);
                }
            }
            "performance" => {
                line(
                    [
                        "model",
                        "model_version",
                        "label",
                        "stratum",
                        "confirmed",
                        "tp",
                        "fp",
                        "tn",
                        "fn",
                        "sensitivity",
                        "sensitivity_low",
                        "sensitivity_high",
                        "specificity",
                        "specificity_low",
                        "specificity_high",
                        "auroc",
                        "auroc_low",
                        "auroc_high",
                        "ece",
                    ]
                    .map(String::from)
                    .to_vec(),
                );
                for p in &a.performance {
                    let ci = |c: Option<Ci>| {
                        [
                            f(c.map(|c| c.value)),
                            f(c.map(|c| c.low)),
                            f(c.map(|c| c.high)),
                        ]
                    };
                    let mut row = vec![
                        p.model.clone(),
                        p.model_version.clone(),
                        p.label.clone(),
                        p.stratum.clone(),
                        p.confirmed.to_string(),
                        p.tp.to_string(),
                        p.fp.to_string(),
                        p.tn.to_string(),
                        p.fn_.to_string(),
                    ];
                    row.extend(ci(p.sensitivity));
                    row.extend(ci(p.specificity));
                    row.extend(ci(p.auroc));
                    row.push(f(p.ece));
                    line(row);
                }
            }
            _ => {
                return Err(AppError::field(
                    "table",
                    "must be trend, urgency, labels or performance",
                ))
            }
        }
        Ok(out)
    }
}

#[server(prefix = "/sfn", endpoint = "analytics", input = server_fn::codec::GetUrl)]
pub async fn get_analytics(organisation: bool, period: String) -> Result<Analytics, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(ssr::dashboard(&state()?.db, &require_user()?, organisation, &period).await)
}

#[server(prefix = "/sfn", endpoint = "thresholds", input = server_fn::codec::GetUrl)]
pub async fn thresholds() -> Result<Vec<ThresholdRow>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(ssr::thresholds(&state()?.db, &require_user()?).await)
}

#[server(prefix = "/sfn", endpoint = "set_threshold")]
pub async fn set_threshold(
    model: String,
    label: String,
    positive_at: String,
) -> Result<Vec<ThresholdRow>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let positive_at = match positive_at.trim() {
                "" => None,
                t => Some(
                    t.parse::<f64>()
                        .map_err(|_| AppError::field("positive_at", "must be a number"))?,
                ),
            };
            let input = ThresholdInput {
                model,
                label,
                positive_at,
            };
            ssr::set_threshold(&state()?.db, &require_user()?, input).await
        }
        .await,
    )
}

/// Admins: each label's trade-off on the organisation's confirmed cases,
/// and the threshold the pipeline applies from now on.
#[component]
fn ThresholdPanel() -> impl IntoView {
    let set = ServerAction::<SetThreshold>::new();
    let rows = Resource::new(move || set.version().get(), |_| thresholds());
    view! {
        <Suspense fallback=|| ()>
            {move || rows.get().and_then(|r| r.ok()).map(|list| view! {
                <h2>"Threshold tuning"</h2>
                <p class="muted small">"Sensitivity / specificity if the label were called positive from each threshold, on this organisation's radiologist-confirmed findings. A threshold set here applies to new analyses; it is recorded in the audit log."</p>
                {list.into_iter().map(|t| {
                    let (form_model, form_label) = (t.model.clone(), t.label.clone());
                    let current = t.org_threshold.map(|v| v.to_string()).unwrap_or_default();
                    view! {
                    <div class="threshold" data-label=t.label.clone()>
                        <h3>{t.model.clone()}" · "{t.label.clone()}
                            <span class="muted small">{format!(" ({} confirmed; threshold {})", t.confirmed,
                                t.org_threshold.map(|v| format!("{v:.3} set by this organisation")).unwrap_or_else(|| "of the pack".into()))}</span></h3>
                        <table class="table small">
                            <thead><tr><th>"Threshold"</th>{t.curve.iter().step_by(2).map(|p| view! { <th>{format!("{:.2}", p.threshold)}</th> }).collect_view()}</tr></thead>
                            <tbody>
                                <tr><td>"Sensitivity"</td>{t.curve.iter().step_by(2).map(|p| view! { <td>{p.sensitivity.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into())}</td> }).collect_view()}</tr>
                                <tr><td>"Specificity"</td>{t.curve.iter().step_by(2).map(|p| view! { <td>{p.specificity.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into())}</td> }).collect_view()}</tr>
                            </tbody>
                        </table>
                        <ActionForm action=set attr:class="inline">
                            <crate::ui::CsrfField/>
                            <input type="hidden" name="model" value=form_model/>
                            <input type="hidden" name="label" value=form_label/>
                            <input name="positive_at" type="number" min="0.001" max="0.999" step="0.001"
                                value=current placeholder="pack default"/>
                            <button type="submit">"Set threshold"</button>
                        </ActionForm>
                    </div>
                }}).collect_view()}
                <crate::ui::FormError value=set.value()/>
            })}
        </Suspense>
    }
}

/// A bar chart as inline SVG, drawn on the server (no script).
#[component]
fn Bars(title: &'static str, data: Vec<Count>) -> impl IntoView {
    let max = data.iter().map(|c| c.n).max().unwrap_or(0).max(1) as f64;
    let (bw, gap, h) = (28.0f64, 8.0f64, 120.0f64);
    let width = (data.len() as f64 * (bw + gap)).max(200.0);
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <svg width=width height=h + 34.0 viewBox=format!("0 0 {width} {}", h + 34.0) role="img" aria-label=title>
                {data.into_iter().enumerate().map(|(i, c)| {
                    let bh = c.n as f64 / max * h;
                    let x = i as f64 * (bw + gap);
                    view! {
                        <g>
                            <rect x=x y=h - bh width=bw height=bh class="bar"><title>{format!("{}: {}", c.key, c.n)}</title></rect>
                            <text x=x + bw / 2.0 y=h - bh - 3.0 text-anchor="middle" class="value">{c.n}</text>
                            <text x=x + bw / 2.0 y=h + 14.0 text-anchor="middle" class="axis">{c.key.chars().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<String>()}</text>
                        </g>
                    }
                }).collect_view()}
            </svg>
        </figure>
    }
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn ci(c: Option<Ci>) -> String {
    match c {
        Some(c) => format!("{:.2} ({:.2}–{:.2})", c.value, c.low, c.high),
        None => "—".into(),
    }
}

/// `/analytics`: the signed-in user's work (an admin can switch to the
/// organisation), with CSV downloads of every table.
#[component]
pub fn AnalyticsPage() -> impl IntoView {
    use leptos_router::hooks::use_query_map;
    let q = use_query_map();
    let org = Memo::new(move |_| q.with(|q| q.get("scope").as_deref() == Some("organisation")));
    let period = Memo::new(move |_| q.with(|q| q.get("period").unwrap_or_else(|| "week".into())));
    let data = Resource::new(
        move || (org.get(), period.get()),
        |(o, p)| get_analytics(o, p),
    );
    view! {
        <section class="card">
            <h1>"Analytics"</h1>
            <form method="get" class="row">
                <label>"Scope "<select name="scope">
                    <option value="me" selected=move || !org.get()>"My work"</option>
                    <option value="organisation" selected=move || org.get()>"Organisation (admins)"</option>
                </select></label>
                <label>"Trend by "<select name="period">
                    <option value="day" selected=move || period.get() == "day">"day"</option>
                    <option value="week" selected=move || period.get() == "week">"week"</option>
                    <option value="month" selected=move || period.get() == "month">"month"</option>
                </select></label>
                <button type="submit">"Show"</button>
            </form>
            <Suspense fallback=|| view! { <p>"Computing…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => view! { <crate::ui::Problem error=e/> }.into_any(),
                    Ok(a) => {
                        let qs = format!("scope={}&period={}", a.scope, a.period);
                        let t = a.totals.clone();
                        view! {
                            <p class="muted">{if a.scope == "organisation" { "The whole organisation." } else { "Cases you own, reviewed or signed." }}</p>
                            <dl class="facts">
                                <dt>"Cases"</dt><dd>{t.cases}</dd>
                                <dt>"Studies analysed"</dt><dd>{t.studies_analysed}</dd>
                                <dt>"AI findings"</dt><dd>{format!("{} ({} positive)", t.findings, t.positive_findings)}</dd>
                                <dt>"Signed reports"</dt><dd>{t.signed_reports}</dd>
                                <dt>"Mean turnaround"</dt><dd>{t.mean_turnaround_hours.map(|h| format!("{h:.1} h from upload to signature")).unwrap_or_else(|| "no signed report yet".into())}</dd>
                            </dl>
                            <div class="row charts">
                                <Bars title="Cases by urgency" data=a.urgency.clone()/>
                                <Bars title="New cases" data=a.trend.clone()/>
                            </div>
                            <p class="small">"CSV: "
                                <a href=format!("/api/v1/analytics.csv?table=trend&{qs}")>"trend"</a>" · "
                                <a href=format!("/api/v1/analytics.csv?table=urgency&{qs}")>"urgency"</a>" · "
                                <a href=format!("/api/v1/analytics.csv?table=labels&{qs}")>"findings"</a>" · "
                                <a href=format!("/api/v1/analytics.csv?table=performance&{qs}")>"model performance"</a></p>
                            <h2>"Findings by model and label"</h2>
                            <table class="table">
                                <thead><tr><th>"Model"</th><th>"Label"</th><th>"Findings"</th><th>"Positivity"</th><th>"Mean probability"</th></tr></thead>
                                <tbody>{a.labels.iter().map(|l| view! {
                                    <tr><td>{l.model.clone()}" "<span class="mono">{l.model_version.clone()}</span></td><td>{l.label.clone()}</td>
                                        <td>{l.findings}</td><td>{pct(l.positivity_rate)}</td><td>{pct(l.mean_probability)}</td></tr>
                                }).collect_view()}</tbody>
                            </table>
                            <h2>"Model performance against confirmed labels"</h2>
                            <p class="muted small">"Radiologists' decisions are the reference. 95 % intervals: Wilson for sensitivity and specificity, Hanley–McNeil for AUROC. Strata by age band and sex show where a model may serve some patients worse."</p>
                            <table class="table performance">
                                <thead><tr><th>"Model"</th><th>"Label"</th><th>"Stratum"</th><th>"Confirmed"</th><th>"Sensitivity"</th><th>"Specificity"</th><th>"AUROC"</th><th>"ECE"</th></tr></thead>
                                <tbody>{a.performance.iter().map(|p| view! {
                                    <tr><td>{p.model.clone()}" "<span class="mono">{p.model_version.clone()}</span></td><td>{p.label.clone()}</td>
                                        <td>{p.stratum.clone()}</td><td>{p.confirmed}</td><td>{ci(p.sensitivity)}</td><td>{ci(p.specificity)}</td>
                                        <td>{ci(p.auroc)}</td><td>{p.ece.map(|e| format!("{e:.3}")).unwrap_or_else(|| "—".into())}</td></tr>
                                }).collect_view()}</tbody>
                            </table>
                            {(a.scope == "organisation").then(|| view! { <ThresholdPanel/> })}
                        }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        let c = wilson(3, 4).unwrap();
        assert!((c.value - 0.75).abs() < 1e-12);
        assert!(
            (c.low - 0.3006).abs() < 1e-3 && (c.high - 0.9544).abs() < 1e-3,
            "{c:?}"
        );
        assert!(wilson(0, 0).is_none());
    }

    #[test]
    fn binned_auroc_counts_ties_half_and_is_exact_without_ties() {
        let mut pos = vec![0; 4];
        let mut neg = vec![0; 4];
        pos[3] = 1;
        pos[1] = 1;
        neg[2] = 1;
        neg[0] = 1;
        assert!((auroc(&pos, &neg).unwrap().value - 0.75).abs() < 1e-12);
        assert!((auroc(&[0, 2], &[0, 2]).unwrap().value - 0.5).abs() < 1e-12);
        assert!(auroc(&[1], &[0]).is_none());
    }

    #[test]
    fn ece_is_the_weighted_gap() {
        let e = ece(&[(2, 0.2, 0), (2, 1.8, 2)]).unwrap();
        assert!((e - 0.1).abs() < 1e-12, "{e}");
    }
}
