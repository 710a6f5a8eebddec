//! AdamW whose per-parameter step is one fused operation ([`FusedBackend::adamw_step`]): one
//! parallel pass over parameter, gradient and moments on flex instead of a dozen
//! single-threaded tensor ops. The step and its state are burn's `AdamW`'s (same formula, same
//! record), so optimiser checkpoints read the same.

use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::tensor::Tensor;

use crate::{AdamWStep, FusedBackend, prim, tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl AdamW {
    /// The optimiser over a module's parameters (what `AdamWConfig::init` gives for burn's).
    pub fn init<B, M>(self) -> burn::optim::adaptor::OptimizerAdaptor<Self, M, B>
    where
        B: burn::tensor::backend::AutodiffBackend<InnerBackend: FusedBackend>,
        M: burn::module::AutodiffModule<B>,
    {
        burn::optim::adaptor::OptimizerAdaptor::from(self)
    }
}

impl<B: FusedBackend> SimpleOptimizer<B> for AdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        param: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let dims = param.dims();
        let n = dims.iter().product::<usize>();
        let flat = |t: Tensor<B, D>| prim(t.reshape([n]));
        let (moments, time) = match state {
            Some(s) => (
                Some((flat(s.momentum.moment_1), flat(s.momentum.moment_2))),
                s.momentum.time + 1,
            ),
            None => (None, 1),
        };
        let step = AdamWStep {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time,
        };
        let (p, m1, m2) = B::adamw_step(flat(param), flat(grad), moments, step);
        let back = |t| tensor::<B, 1>(t).reshape(dims);
        let momentum = AdaptiveMomentumState::new(time, back(m1), back(m2));
        (back(p), Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}
