//! candle model architectures, weight import, Grad-CAM, calibration and the
//! model registry (DESIGN.md, "Models"), and the synthetic phantoms the demo
//! models are trained and tested on ([`phantom`]). Server-only.

pub mod arch;
pub mod error;
pub mod ops;
pub mod phantom;
pub mod weights;

pub use error::{InferenceError, Result};
