//! One file per architecture, each built from a `VarBuilder` with the key
//! names of the public implementation it is compatible with.

pub mod densenet;
pub mod efficientnet;
pub mod segresnet;

use candle_core::{Result, Tensor};

/// A 2D image classifier split where Grad-CAM needs it: `features` ends at
/// the last convolutional feature map, `head` turns that map into logits.
pub trait Classifier: Send + Sync {
    /// (N, C, H, W) image batch -> (N, K, h, w) last convolutional feature map.
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    /// Feature map -> (N, labels) logits.
    fn head_t(&self, features: &Tensor, train: bool) -> Result<Tensor>;

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.head_t(&self.features_t(x, train)?, train)
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}
