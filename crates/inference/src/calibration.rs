//! Probability calibration for multi-label classifiers.
//!
//! A network's sigmoid outputs are scores, not probabilities: modern CNNs are
//! typically over-confident. Each label of a model pack gets its own
//! calibrator, fitted on a held-out validation set and stored in the pack's
//! `model.toml` as a [`LabelCalibration`]:
//!
//! ```toml
//! [[calibration]]
//! label = "effusion"
//! method = { kind = "temperature", t = 1.8 }
//! ```
//!
//! Two methods are offered. Temperature scaling (Guo et al., 2017) divides the
//! logit by one fitted `T`: one parameter, cannot overfit, keeps the ranking.
//! Isotonic regression (Zadrozny & Elkan, 2002) fits any monotone map: more
//! flexible, needs more data, and its in-sample ECE is optimistic.
//!
//! Everything stored is TOML-friendly: tagged enums, plain vectors, no NaN.

use serde::{Deserialize, Serialize};

use crate::{InferenceError, Result};

/// Fewer validation samples than this cannot estimate a calibration map
/// worth shipping; [`fit`] refuses them.
pub const MIN_SAMPLES: usize = 20;
/// Search range of the temperature. Outside it the model is either nearly
/// constant or nearly a step function, and a fitted `T` there says more about
/// the data than about the model.
pub const MIN_TEMPERATURE: f64 = 0.05;
/// Upper end of the temperature search range (see [`MIN_TEMPERATURE`]).
pub const MAX_TEMPERATURE: f64 = 20.0;
/// Bins of the ECE in [`CalibrationReport`]: 15, as in Guo et al.
pub const REPORT_BINS: usize = 15;

/// Which method [`fit`] should fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    None,
    Temperature,
    Isotonic,
}

/// A fitted calibration map for one label: logit in, probability out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Method {
    /// Plain sigmoid of the logit.
    None,
    /// `sigmoid(logit / t)`.
    Temperature { t: f64 },
    /// Isotonic map of `sigmoid(logit)`: `xs` are block centres (strictly
    /// increasing), `ys` the calibrated probabilities there (non-decreasing),
    /// linearly interpolated between centres and held flat beyond them.
    Isotonic { xs: Vec<f64>, ys: Vec<f64> },
}

impl Method {
    /// The calibrated probability for `logit`, in [0, 1]. A NaN logit gives
    /// NaN (callers such as triage reject it rather than guess).
    ///
    /// Never panics, even on a hand-edited pack; call [`Method::validate`]
    /// after loading one so that a malformed map is an error, not odd output.
    pub fn apply(&self, logit: f32) -> f32 {
        let logit = f64::from(logit);
        let p = match self {
            Method::None => sigmoid(logit),
            Method::Temperature { t } => sigmoid(logit / t),
            Method::Isotonic { xs, ys } => interpolate(xs, ys, sigmoid(logit)),
        };
        p.clamp(0.0, 1.0) as f32
    }

    /// Checks a map read from `model.toml`: a positive finite temperature, or
    /// isotonic breakpoints that are finite, of equal length, within [0, 1],
    /// with `xs` strictly increasing and `ys` non-decreasing.
    pub fn validate(&self) -> Result<()> {
        match self {
            Method::None => Ok(()),
            Method::Temperature { t } => {
                if t.is_finite() && *t > 0.0 {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "temperature must be positive and finite, got {t}"
                    )))
                }
            }
            Method::Isotonic { xs, ys } => {
                if xs.is_empty() || xs.len() != ys.len() {
                    return Err(invalid(format!(
                        "isotonic map needs as many xs as ys, at least one: got {} and {}",
                        xs.len(),
                        ys.len()
                    )));
                }
                let in_unit = |v: &f64| (0.0..=1.0).contains(v);
                if !xs.iter().chain(ys).all(in_unit) {
                    return Err(invalid(
                        "isotonic breakpoints must lie in [0, 1]".to_string(),
                    ));
                }
                if xs.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(invalid(
                        "isotonic xs must be strictly increasing".to_string(),
                    ));
                }
                if ys.windows(2).any(|w| w[0] > w[1]) {
                    return Err(invalid("isotonic ys must be non-decreasing".to_string()));
                }
                Ok(())
            }
        }
    }
}

/// Why a fit is less than it seems. Stored in the report so that whoever
/// reviews a pack sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitFlag {
    /// Every logit was the same: the model ranks nothing on this label, the
    /// data cannot tell a temperature from a bias, so `T` was left at 1.
    ConstantLogits,
    /// The best temperature lies at an end of the search range.
    TemperatureAtBound,
}

/// What a fit did, for the pack's reviewers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    /// Validation samples used.
    pub n: usize,
    /// How many of them were positive.
    pub positives: usize,
    /// Bins of both ECEs ([`REPORT_BINS`]).
    pub bins: usize,
    /// ECE of the plain sigmoid of the logits.
    pub ece_before: f64,
    /// ECE after calibration, on the same samples the map was fitted on: an
    /// optimistic estimate (isotonic most of all); check a held-out set.
    pub ece_after: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FitFlag>,
}

/// One label's calibration as a model pack stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelCalibration {
    pub label: String,
    pub method: Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<CalibrationReport>,
}

/// Checks a pack's calibrations: every map valid, no label twice.
pub fn validate_calibrations(calibrations: &[LabelCalibration]) -> Result<()> {
    for (i, c) in calibrations.iter().enumerate() {
        c.method
            .validate()
            .map_err(|e| invalid(format!("calibration of `{}`: {e}", c.label)))?;
        if calibrations[..i].iter().any(|o| o.label == c.label) {
            return Err(invalid(format!("label `{}` is calibrated twice", c.label)));
        }
    }
    Ok(())
}

/// Calibrated probabilities for a model's per-label logits, ready for
/// [`crate::triage::assess`]. A label without a calibration is an error naming
/// it: an uncalibrated score compared with a calibrated threshold would be
/// silently wrong.
pub fn apply_calibrations(
    calibrations: &[LabelCalibration],
    logits: &[(String, f32)],
) -> Result<Vec<(String, f32)>> {
    logits
        .iter()
        .map(|(label, logit)| {
            let c = calibrations
                .iter()
                .find(|c| &c.label == label)
                .ok_or_else(|| invalid(format!("label `{label}` has no calibration")))?;
            Ok((label.clone(), c.method.apply(*logit)))
        })
        .collect()
}

/// Fits one label's calibration on a validation set's logits and labels.
///
/// Refuses empty input, mismatched lengths, non-finite logits, fewer than
/// [`MIN_SAMPLES`] samples and labels of a single class: none of them can
/// give a map worth trusting.
pub fn fit(
    kind: MethodKind,
    logits: &[f32],
    labels: &[bool],
) -> Result<(Method, CalibrationReport)> {
    check_pairs(logits.len(), labels.len())?;
    if let Some((i, v)) = logits.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(invalid(format!("logit {i} is {v}: logits must be finite")));
    }
    let n = logits.len();
    if n < MIN_SAMPLES {
        return Err(invalid(format!(
            "{n} samples: calibration needs at least {MIN_SAMPLES}"
        )));
    }
    let positives = labels.iter().filter(|&&y| y).count();
    if positives == 0 || positives == n {
        let class = if positives == 0 {
            "negative"
        } else {
            "positive"
        };
        return Err(invalid(format!(
            "all {n} labels are {class}: calibration needs both classes"
        )));
    }

    let mut flags = Vec::new();
    let method = match kind {
        MethodKind::None => Method::None,
        MethodKind::Temperature => {
            let (ts, flag) = TemperatureScaling::fit(logits, labels)?;
            flags.extend(flag);
            Method::from(ts)
        }
        MethodKind::Isotonic => {
            let probs: Vec<f64> = logits.iter().map(|&z| sigmoid(f64::from(z))).collect();
            Method::from(Isotonic::fit(&probs, labels)?)
        }
    };

    let before: Vec<f32> = logits.iter().map(|&z| Method::None.apply(z)).collect();
    let after: Vec<f32> = logits.iter().map(|&z| method.apply(z)).collect();
    let report = CalibrationReport {
        n,
        positives,
        bins: REPORT_BINS,
        ece_before: expected_calibration_error(&before, labels, REPORT_BINS)?,
        ece_after: expected_calibration_error(&after, labels, REPORT_BINS)?,
        flags,
    };
    Ok((method, report))
}

/// Temperature scaling: `sigmoid(logit / temperature)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemperatureScaling {
    pub temperature: f64,
}

impl TemperatureScaling {
    /// The temperature between [`MIN_TEMPERATURE`] and [`MAX_TEMPERATURE`] that
    /// minimises the binary cross-entropy of `sigmoid(logit / T)`.
    ///
    /// The loss is convex in `1/T` (a one-feature logistic regression without
    /// intercept), hence unimodal in `log T`: a golden-section search on
    /// `log T` finds the minimum without derivatives or step sizes, and
    /// degenerate data (one class, logits of one sign) only drives it to a
    /// bound, which is flagged. Constant logits keep `T = 1`, flagged.
    pub fn fit(logits: &[f32], labels: &[bool]) -> Result<(Self, Option<FitFlag>)> {
        check_pairs(logits.len(), labels.len())?;
        if logits.iter().any(|v| !v.is_finite()) {
            return Err(invalid("logits must be finite".to_string()));
        }
        let z: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        if z.iter().all(|&v| v == z[0]) {
            return Ok((Self { temperature: 1.0 }, Some(FitFlag::ConstantLogits)));
        }
        let loss = |log_t: f64| {
            let beta = (-log_t).exp();
            z.iter()
                .zip(labels)
                .map(|(&z, &y)| bce_logit(z * beta, y))
                .sum::<f64>()
        };
        let (lo, hi) = (MIN_TEMPERATURE.ln(), MAX_TEMPERATURE.ln());
        let mut best = golden_section(&loss, lo, hi, 1e-9);
        // The interior search only approaches an end; compare with the ends
        // themselves so a minimum there is taken exactly.
        for end in [lo, hi] {
            if loss(end) < loss(best) {
                best = end;
            }
        }
        // Report a bound as the constant itself, not exp(ln(bound)).
        let (temperature, flag) = if best - lo < 1e-6 {
            (MIN_TEMPERATURE, Some(FitFlag::TemperatureAtBound))
        } else if hi - best < 1e-6 {
            (MAX_TEMPERATURE, Some(FitFlag::TemperatureAtBound))
        } else {
            (best.exp(), None)
        };
        Ok((Self { temperature }, flag))
    }

    pub fn apply(&self, logit: f32) -> f32 {
        Method::from(*self).apply(logit)
    }
}

impl From<TemperatureScaling> for Method {
    fn from(ts: TemperatureScaling) -> Self {
        Method::Temperature { t: ts.temperature }
    }
}

/// Isotonic regression of labels on raw probabilities, as sorted breakpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
}

impl Isotonic {
    /// Pool-adjacent-violators on `(probability, label)`.
    ///
    /// Tied probabilities are pooled first into one block (the average label
    /// of a tie is the only non-decreasing answer that does not depend on
    /// input order). Adjacent blocks merge while the left mean is not below
    /// the right one, so `ys` come out strictly increasing and the map has as
    /// few breakpoints as possible. Each block is stored at its centre (mean
    /// probability) with its mean label.
    pub fn fit(probs: &[f64], labels: &[bool]) -> Result<Self> {
        check_pairs(probs.len(), labels.len())?;
        if let Some(p) = probs.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(invalid(format!("probability {p} is not in [0, 1]")));
        }
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]));

        let mut blocks: Vec<Block> = Vec::new();
        for i in order {
            let b = Block {
                w: 1.0,
                sum_x: probs[i],
                sum_y: if labels[i] { 1.0 } else { 0.0 },
                first_x: probs[i],
                last_x: probs[i],
            };
            match blocks.last_mut() {
                Some(last) if last.last_x == b.last_x => last.absorb(b),
                _ => blocks.push(b),
            }
            while blocks.len() >= 2 {
                let right = blocks[blocks.len() - 1];
                let left = blocks[blocks.len() - 2];
                if left.mean_y() < right.mean_y() {
                    break;
                }
                blocks.pop();
                if let Some(left) = blocks.last_mut() {
                    left.absorb(right);
                }
            }
        }
        Ok(Self {
            xs: blocks.iter().map(Block::centre).collect(),
            ys: blocks.iter().map(Block::mean_y).collect(),
        })
    }

    /// The calibrated probability for a raw probability `p`.
    pub fn apply(&self, p: f64) -> f64 {
        interpolate(&self.xs, &self.ys, p).clamp(0.0, 1.0)
    }
}

impl From<Isotonic> for Method {
    fn from(iso: Isotonic) -> Self {
        Method::Isotonic {
            xs: iso.xs,
            ys: iso.ys,
        }
    }
}

/// A PAV block: sums so that merging is O(1).
#[derive(Clone, Copy)]
struct Block {
    w: f64,
    sum_x: f64,
    sum_y: f64,
    /// Smallest and largest probability in the block: the largest pools
    /// ties on arrival, both keep the centre inside the block.
    first_x: f64,
    last_x: f64,
}

impl Block {
    fn absorb(&mut self, right: Block) {
        self.w += right.w;
        self.sum_x += right.sum_x;
        self.sum_y += right.sum_y;
        self.last_x = right.last_x;
    }
    /// Mean probability, clamped to the block's own range so that rounding
    /// can never make neighbouring centres touch; a block of ties sits
    /// exactly at the tied value.
    fn centre(&self) -> f64 {
        if self.first_x == self.last_x {
            self.first_x
        } else {
            (self.sum_x / self.w).clamp(self.first_x, self.last_x)
        }
    }
    fn mean_y(&self) -> f64 {
        self.sum_y / self.w
    }
}

/// One bin of a reliability diagram. For a per-label (binary) classifier the
/// confidence is the predicted probability of the positive class and the
/// accuracy the observed frequency of positives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Bin edges: [lower, upper), the last bin also holds 1.0.
    pub lower: f64,
    pub upper: f64,
    pub mean_confidence: f64,
    pub accuracy: f64,
    pub count: usize,
}

/// Equal-width reliability bins over [0, 1]; empty bins are left out (the
/// edges say where each bin lies), so no value is NaN.
pub fn reliability(probs: &[f32], labels: &[bool], bins: usize) -> Result<Vec<ReliabilityBin>> {
    check_pairs(probs.len(), labels.len())?;
    if bins == 0 {
        return Err(invalid("reliability needs at least one bin".to_string()));
    }
    if let Some(p) = probs.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(invalid(format!("probability {p} is not in [0, 1]")));
    }
    let mut sum_p = vec![0.0f64; bins];
    let mut sum_y = vec![0.0f64; bins];
    let mut count = vec![0usize; bins];
    for (&p, &y) in probs.iter().zip(labels) {
        let p = f64::from(p);
        // floor(p·bins), with p = 1 in the last bin.
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += if y { 1.0 } else { 0.0 };
        count[b] += 1;
    }
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| ReliabilityBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            mean_confidence: sum_p[b] / count[b] as f64,
            accuracy: sum_y[b] / count[b] as f64,
            count: count[b],
        })
        .collect())
}

/// Expected calibration error: `Σ_b (n_b / n) · |accuracy_b − confidence_b|`
/// over equal-width bins (Naeini et al., 2015; Guo et al., 2017).
///
/// Returns a `Result` rather than a bare number: empty or mismatched input,
/// zero bins and probabilities outside [0, 1] have no ECE, and a made-up 0
/// would read as "perfectly calibrated".
pub fn expected_calibration_error(probs: &[f32], labels: &[bool], bins: usize) -> Result<f64> {
    let n = probs.len() as f64;
    Ok(reliability(probs, labels, bins)?
        .iter()
        .map(|b| b.count as f64 / n * (b.accuracy - b.mean_confidence).abs())
        .sum())
}

fn check_pairs(n_values: usize, n_labels: usize) -> Result<()> {
    if n_values == 0 {
        return Err(invalid("no calibration samples".to_string()));
    }
    if n_values != n_labels {
        return Err(invalid(format!(
            "{n_values} values but {n_labels} labels: they must pair up"
        )));
    }
    Ok(())
}

fn invalid(msg: String) -> InferenceError {
    InferenceError::Invalid(msg)
}

fn sigmoid(x: f64) -> f64 {
    // Two forms so that exp never overflows.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Binary cross-entropy of `sigmoid(s)` against `y`, without forming the
/// probability: `softplus(s) − y·s`, exact for large |s|.
fn bce_logit(s: f64, y: bool) -> f64 {
    let softplus = s.max(0.0) + (-s.abs()).exp().ln_1p();
    if y {
        softplus - s
    } else {
        softplus
    }
}

/// Minimum of a unimodal `f` on [lo, hi], to within `tol` in the argument.
fn golden_section(f: &impl Fn(f64) -> f64, mut lo: f64, mut hi: f64, tol: f64) -> f64 {
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - inv_phi * (hi - lo);
    let mut b = lo + inv_phi * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    while hi - lo > tol {
        if fa <= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - inv_phi * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + inv_phi * (hi - lo);
            fb = f(b);
        }
    }
    (lo + hi) / 2.0
}

/// Piecewise-linear interpolation through `(xs, ys)`, flat beyond the ends.
/// Total on malformed maps (see [`Method::apply`]): an empty map is the
/// identity, extra values on the longer side are ignored.
fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    let n = xs.len().min(ys.len());
    if n == 0 || x.is_nan() {
        return x;
    }
    if x <= xs[0] {
        return ys[0];
    }
    if x >= xs[n - 1] {
        return ys[n - 1];
    }
    // xs[i-1] <= x < xs[i], with 1 <= i < n thanks to the checks above.
    let i = xs[..n].partition_point(|&v| v <= x);
    let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
    if x1 <= x0 {
        return y1;
    }
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}
