//! candle model architectures, weight import, Grad-CAM, calibration and the
//! model registry (DESIGN.md, "Models"). Server-only.

pub mod arch;
pub mod calibration;
pub mod demo;
pub mod error;
pub mod gradcam;
pub mod metrics;
pub mod ops;
pub mod pack;
pub mod phantom;
pub mod preprocess;
pub mod registry;
pub mod sequences;
pub mod train;
pub mod triage;
pub mod weights;

pub use error::{InferenceError, Result};
