//! candle model architectures, weight import, Grad-CAM, calibration and the
//! model registry. Server-only; its implementation lands with the inference issue.
