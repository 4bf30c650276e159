//! Held-out quality measures written into a pack's `model.toml`.

/// Area under the ROC curve by the Mann-Whitney statistic (ties count half).
/// `None` when one class is absent: there is no AUROC to report then.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0f64, 0usize);
    let mut i = 0;
    while i < idx.len() {
        // Average rank over a run of tied scores.
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = idx.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
}

/// Dice overlap of two binary masks; 1.0 when both are empty.
pub fn dice(pred: &[u8], truth: &[u8]) -> f64 {
    let (mut inter, mut p, mut t) = (0usize, 0usize, 0usize);
    for (&a, &b) in pred.iter().zip(truth) {
        let (a, b) = (a != 0, b != 0);
        inter += usize::from(a && b);
        p += usize::from(a);
        t += usize::from(b);
    }
    if p + t == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (p + t) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_of_known_rankings() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        // One inversion out of four pairs.
        assert_eq!(
            auroc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            Some(0.75)
        );
        // All tied: chance.
        assert_eq!(auroc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn dice_of_known_masks() {
        assert_eq!(dice(&[1, 1, 0, 0], &[1, 0, 0, 0]), 2.0 / 3.0);
        assert_eq!(dice(&[0, 0], &[0, 0]), 1.0);
        assert_eq!(dice(&[1, 0], &[0, 1]), 0.0);
    }
}
