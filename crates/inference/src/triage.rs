//! Reading priority from calibrated per-label probabilities.
//!
//! A model pack stores one [`Threshold`] per label; an organisation may
//! override the operating point or the urgency of any label with a
//! [`ThresholdOverride`], because its prevalence (and so the best cut-off)
//! differs from the training set's. Thresholds apply to *calibrated*
//! probabilities ([`crate::calibration::apply_calibrations`]).
//!
//! Triage only ever raises a case's priority: see [`combine`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{InferenceError, Result};

/// Reading priority, ordered `Routine < Priority < Urgent < Stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Routine,
    Priority,
    Urgent,
    Stat,
}

impl Urgency {
    pub const ALL: [Urgency; 4] = [
        Urgency::Routine,
        Urgency::Priority,
        Urgency::Urgent,
        Urgency::Stat,
    ];

    /// The wire and TOML spelling (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Priority => "priority",
            Urgency::Urgent => "urgent",
            Urgency::Stat => "stat",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Urgency {
    type Err = InferenceError;

    /// Case-insensitive, surrounding blanks ignored ("STAT" is how
    /// radiologists write it).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Urgency::ALL
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InferenceError::Invalid(format!(
                    "unknown urgency `{s}`: expected routine, priority, urgent or stat"
                ))
            })
    }
}

/// A label's operating point as the model pack stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub label: String,
    /// Calibrated probability at or above which the finding is positive;
    /// strictly between 0 and 1.
    pub positive_at: f32,
    pub urgency_if_positive: Urgency,
}

/// An organisation's change to one pack threshold; `None` fields keep the
/// pack's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOverride {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_at: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency_if_positive: Option<Urgency>,
}

/// The decision on one label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelDecision {
    pub label: String,
    pub probability: f32,
    /// The threshold in force (after overrides).
    pub threshold: f32,
    pub positive: bool,
    /// What this finding asks for: its `urgency_if_positive` when positive,
    /// `Routine` when not.
    pub urgency: Urgency,
}

/// Every label's decision and the case's overall AI urgency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// In the order of the probabilities given to [`assess`].
    pub findings: Vec<LabelDecision>,
    /// The highest urgency among positive findings; `Routine` if none.
    pub urgency: Urgency,
}

/// The pack's thresholds with an organisation's overrides applied.
///
/// Errors: a threshold outside (0, 1) (pack or override), a label twice in
/// either list, an override naming a label the pack does not have (a typo
/// there would otherwise silently leave the pack's operating point in force).
pub fn effective_thresholds(
    thresholds: &[Threshold],
    overrides: &[ThresholdOverride],
) -> Result<Vec<Threshold>> {
    let mut out = thresholds.to_vec();
    for (i, t) in thresholds.iter().enumerate() {
        check_threshold(&t.label, t.positive_at)?;
        if thresholds[..i].iter().any(|o| o.label == t.label) {
            return Err(invalid(format!("label `{}` has two thresholds", t.label)));
        }
    }
    for (i, o) in overrides.iter().enumerate() {
        if overrides[..i].iter().any(|p| p.label == o.label) {
            return Err(invalid(format!("label `{}` is overridden twice", o.label)));
        }
        let t = out.iter_mut().find(|t| t.label == o.label).ok_or_else(|| {
            invalid(format!(
                "override for unknown label `{}`: the model pack has no such label",
                o.label
            ))
        })?;
        if let Some(p) = o.positive_at {
            check_threshold(&o.label, p)?;
            t.positive_at = p;
        }
        if let Some(u) = o.urgency_if_positive {
            t.urgency_if_positive = u;
        }
    }
    Ok(out)
}

/// Decides every label and the overall urgency.
///
/// `probs` must be calibrated probabilities in [0, 1], one per label, each
/// label with a threshold and every threshold's label present: a NaN, a
/// label without a threshold or a thresholded label without a probability is
/// an error naming the label, never a silently missing finding.
pub fn assess(
    probs: &[(String, f32)],
    thresholds: &[Threshold],
    overrides: &[ThresholdOverride],
) -> Result<Assessment> {
    let thresholds = effective_thresholds(thresholds, overrides)?;
    let mut findings = Vec::with_capacity(probs.len());
    for (i, (label, p)) in probs.iter().enumerate() {
        if !(0.0..=1.0).contains(p) {
            return Err(invalid(format!(
                "probability of `{label}` is {p}: must be in [0, 1]"
            )));
        }
        if probs[..i].iter().any(|(l, _)| l == label) {
            return Err(invalid(format!("label `{label}` has two probabilities")));
        }
        let t = thresholds
            .iter()
            .find(|t| &t.label == label)
            .ok_or_else(|| invalid(format!("label `{label}` has no threshold")))?;
        let positive = *p >= t.positive_at;
        findings.push(LabelDecision {
            label: label.clone(),
            probability: *p,
            threshold: t.positive_at,
            positive,
            urgency: if positive {
                t.urgency_if_positive
            } else {
                Urgency::Routine
            },
        });
    }
    if let Some(t) = thresholds
        .iter()
        .find(|t| !probs.iter().any(|(l, _)| l == &t.label))
    {
        return Err(invalid(format!("no probability for label `{}`", t.label)));
    }
    let urgency = findings
        .iter()
        .map(|f| f.urgency)
        .max()
        .unwrap_or(Urgency::Routine);
    Ok(Assessment { findings, urgency })
}

/// The priority a case should be read at, given the priority a human set (if
/// any) and the AI's.
///
/// Triage only raises priority: the result is the higher of the two, so an
/// AI `Routine` never lowers or hides a clinician's `Stat`, while an AI
/// `Stat` lifts a case a human marked `Routine`. A model's negative is not
/// evidence that a case is less urgent than a human judged it.
pub fn combine(human: Option<Urgency>, ai: Urgency) -> Urgency {
    human.map_or(ai, |h| h.max(ai))
}

fn check_threshold(label: &str, p: f32) -> Result<()> {
    // Open interval: at 0 every case is positive, at 1 (almost) none is;
    // either is a disabled label pretending to be a threshold.
    if p > 0.0 && p < 1.0 {
        Ok(())
    } else {
        Err(invalid(format!(
            "threshold of `{label}` is {p}: must be strictly between 0 and 1"
        )))
    }
}

fn invalid(msg: String) -> InferenceError {
    InferenceError::Invalid(msg)
}
