//! Which MR sequence a series is, from its Series Description or file name,
//! so a BraTS-style segmenter can be fed four separate series as clinicians
//! have them (T1, T1 with contrast, T2, FLAIR), not only one 4-channel file.

use crate::error::{InferenceError, Result};

/// The sequence a description or file name names: `t1`, `t1ce`, `t2` or
/// `flair`; `None` when it names none of them or is ambiguous.
pub fn identify(text: &str) -> Option<&'static str> {
    // Words, lower-case, with separators and file extensions normalised:
    // "BraTS20_001_t1ce.nii.gz", "AX T1 +C", "t2_tse_tra", "T2-FLAIR".
    let lower = text.to_lowercase();
    let stem = lower.trim_end_matches(".gz").trim_end_matches(".nii");
    let words: Vec<&str> = stem
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '+')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let any = |ws: &[&str]| ws.iter().any(|w| has(w));
    // FLAIR first: "T2 FLAIR" is a FLAIR, not a T2.
    if any(&["flair", "t2f", "darkfluid", "dark"]) || stem.contains("flair") {
        return Some("flair");
    }
    let contrast = any(&[
        "t1ce",
        "t1c",
        "t1gd",
        "gd",
        "gad",
        "post",
        "postcontrast",
        "contrast",
        "+c",
        "ce",
        "c+",
    ]) || stem.contains("t1+c")
        || stem.contains("t1 +c")
        || stem.contains("t1_ce");
    let t1 = any(&["t1", "t1w", "t1n", "mprage", "spgr", "t1ce", "t1c", "t1gd"])
        || stem.contains("t1+c");
    let t2 = any(&["t2", "t2w", "tse"]) && !t1;
    match (t1, contrast, t2) {
        (true, true, _) => Some("t1ce"),
        (true, false, _) => Some("t1"),
        (false, _, true) => Some("t2"),
        _ => None,
    }
}

/// Maps named inputs (series descriptions or file names, with an id each)
/// to the order `expected` lists, e.g. `["t1", "t1ce", "t2", "flair"]`.
/// `assigned` holds the user's explicit choices (id → sequence), which win
/// over recognition. Missing or doubly matched sequences are errors that
/// name them, so a user can assign them by hand.
pub fn assign<Id: Clone + PartialEq + std::fmt::Debug>(
    inputs: &[(Id, String)],
    assigned: &[(Id, String)],
    expected: &[String],
) -> Result<Vec<Id>> {
    let mut found: Vec<Option<Id>> = vec![None; expected.len()];
    for (id, text) in inputs {
        let seq = assigned
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, s)| s.to_lowercase())
            .or_else(|| identify(text).map(str::to_string));
        let Some(seq) = seq else { continue };
        let Some(slot) = expected.iter().position(|e| e.eq_ignore_ascii_case(&seq)) else {
            continue;
        };
        if let Some(other) = &found[slot] {
            if other != id {
                return Err(InferenceError::Input(format!(
                    "two series look like {}: {other:?} and {id:?}; assign one by hand",
                    expected[slot]
                )));
            }
        }
        found[slot] = Some(id.clone());
    }
    let missing: Vec<&str> = expected
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(e, _)| e.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(InferenceError::Input(format!(
            "no series recognised as {}; assign them by hand",
            missing.join(", ")
        )));
    }
    Ok(found.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_and_file_names_as_scanners_and_brats_write_them() {
        for (text, want) in [
            ("BraTS20_Training_001_t1.nii.gz", Some("t1")),
            ("BraTS20_Training_001_t1ce.nii.gz", Some("t1ce")),
            ("BraTS20_Training_001_t2.nii.gz", Some("t2")),
            ("BraTS20_Training_001_flair.nii.gz", Some("flair")),
            ("BraTS-GLI-00000-000-t1n.nii.gz", Some("t1")),
            ("BraTS-GLI-00000-000-t1c.nii.gz", Some("t1ce")),
            ("BraTS-GLI-00000-000-t2w.nii.gz", Some("t2")),
            ("BraTS-GLI-00000-000-t2f.nii.gz", Some("flair")),
            ("AX T1 +C", Some("t1ce")),
            ("T1 MPRAGE POST GD", Some("t1ce")),
            ("t1_mprage_sag", Some("t1")),
            ("AX T2 TSE", Some("t2")),
            ("AX T2 FLAIR", Some("flair")),
            ("t2_tirm_tra_dark-fluid", Some("flair")),
            ("DWI b1000", None),
            ("Localizer", None),
        ] {
            assert_eq!(identify(text), want, "{text}");
        }
    }

    #[test]
    fn assignment_orders_series_and_names_what_is_missing() {
        let expected: Vec<String> = ["t1", "t1ce", "t2", "flair"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let inputs = vec![
            (10, "AX FLAIR".to_string()),
            (11, "AX T1 +C".to_string()),
            (12, "AX T2".to_string()),
            (13, "SAG T1".to_string()),
            (14, "DWI".to_string()),
        ];
        assert_eq!(
            assign(&inputs, &[], &expected).unwrap(),
            vec![13, 11, 12, 10]
        );
        let err = assign(&inputs[..3], &[], &expected)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no series recognised as t1;"), "{err}");
        // The user's choice wins: series 14 assigned as T1 fills the gap.
        let by_hand = vec![(14, "t1".to_string())];
        assert_eq!(
            assign(
                &inputs[..3]
                    .iter()
                    .cloned()
                    .chain([(14, "DWI".to_string())])
                    .collect::<Vec<_>>(),
                &by_hand,
                &expected
            )
            .unwrap(),
            vec![14, 11, 12, 10]
        );
        let twice = vec![(1, "AX T2".to_string()), (2, "COR T2".to_string())];
        assert!(assign(&twice, &[], &expected)
            .unwrap_err()
            .to_string()
            .contains("two series look like t2"));
    }
}
