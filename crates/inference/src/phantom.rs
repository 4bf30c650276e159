//! Synthetic phantoms to train and test the demo models: head CT slices with
//! intracranial haemorrhage, chest radiographs with five findings, and
//! four-sequence brain MRI volumes with a BraTS-labelled tumour.
//!
//! Pure arrays, no I/O (`imaging::write` turns them into DICOM and NIfTI).
//! Every generator takes a size and a seeded [`StdRng`] and is deterministic
//! for a seed.
//!
//! What the models' checks need from the data, and how it is met:
//! - **Localised evidence.** A finding changes pixels only inside (or within
//!   a pixel or two of) its box: no global brightness or contrast shift, no
//!   renormalisation after a lesion is drawn. Anatomy, noise and each
//!   finding draw from their own random streams, and every finding's
//!   parameters are drawn whether or not it is present, so the same seed with
//!   a finding switched off gives the same image except inside that
//!   finding's box. The tests check exactly that.
//! - **Variety.** Anatomy size, position, rotation and tissue values, lesion
//!   position, size, shape and density, exposure and noise are all random.
//! - **Small inputs.** Sizes are set in fractions of the image with a floor
//!   in pixels, so a lesion stays a few pixels wide at 64x64 (or 32^3).
//!
//! Usage:
//! ```
//! use inference::phantom::{head_ct, ICH_LABELS};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let mut rng = StdRng::seed_from_u64(7);
//! let slice = head_ct(&mut rng, 64, 0.5);
//! assert_eq!(slice.hu.len(), 64 * 64);
//! for b in &slice.boxes {
//!     assert!(slice.labels[b.label], "{} has a box", ICH_LABELS[b.label]);
//! }
//! ```

mod brain_mri;
mod chest_xray;
mod draw;
mod head_ct;

pub use brain_mri::{brain_mri, brain_mri_with_rate, BrainMri, BRATS_REGIONS, MRI_SEQUENCES};
pub use chest_xray::{chest_xray, ChestXray, CXR_LABELS};
pub use head_ct::{head_ct, HeadCtSlice, ICH_LABELS};

use serde::{Deserialize, Serialize};

/// Where a finding is: pixel coordinates, `x0..x1` columns and `y0..y1`
/// rows (inclusive-exclusive), inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LesionBox {
    /// Index into the generator's label list (`ICH_LABELS`, `CXR_LABELS`).
    pub label: usize,
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl LesionBox {
    /// Whether pixel (x, y) lies in the box.
    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }

    pub fn width(&self) -> usize {
        self.x1.saturating_sub(self.x0)
    }

    pub fn height(&self) -> usize {
        self.y1.saturating_sub(self.y0)
    }
}

/// The probability each of `k` independent findings is drawn with so that
/// about `positive_rate` of images have at least one:
/// `1 - (1 - p)^k = positive_rate`.
pub(crate) fn per_finding_probability(positive_rate: f64, k: usize) -> f64 {
    let rate = if positive_rate.is_finite() {
        positive_rate.clamp(0.0, 1.0)
    } else {
        0.0
    };
    (1.0 - (1.0 - rate).powf(1.0 / k.max(1) as f64)).clamp(0.0, 1.0)
}
