//! `FusedBackend` for `Autodiff<B>`: each fused operation is one graph node whose backward calls
//! the inner backend's `*_backward` (native kernels on flex, the reference formulas elsewhere).
//!
//! Inputs are kept through the checkpointer, so under `BalancedCheckpointing` (gradient
//! checkpointing) they may be recomputed instead of stored; the linears and LayerNorms are then
//! themselves marked memory-bound (recomputed from their inputs when a later backward needs
//! them) and keep nothing of their own: the activation's derivative and the row statistics
//! are recomputed in their backward. Attention stays compute-bound (its output and row statistics
//! are kept) and softmax too.

use std::any::TypeId;
use std::marker::PhantomData;

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::retro_forward::RetroForward;
use burn::backend::autodiff::checkpoint::state::BackwardStates;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::ops::{BoolTensor, FloatTensor};

use crate::{Act, FusedBackend, LinearWants};

/// Whether the strategy recomputes memory-bound operations.
fn checkpointing<C: CheckpointStrategy>() -> bool {
    TypeId::of::<C>() == TypeId::of::<BalancedCheckpointing>()
}

#[derive(Debug)]
struct LinearOp<const N: usize>;

#[derive(Clone, Debug)]
struct LinearState<B: FusedBackend> {
    x: NodeId,
    weights: Vec<NodeId>,
    biases: Vec<NodeId>,
    dact: Option<FloatTensor<B>>,
    act: Act,
}

impl<B: FusedBackend, const N: usize> Backward<B, N> for LinearOp<N> {
    type State = LinearState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let s = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.x);
        let weights: Vec<FloatTensor<B>> = s
            .weights
            .iter()
            .map(|&id| checkpointer.retrieve_node_output(id))
            .collect();
        let biases: Vec<FloatTensor<B>> = s
            .biases
            .iter()
            .map(|&id| checkpointer.retrieve_node_output(id))
            .collect();
        let k = weights.len();
        let wants = LinearWants {
            x: ops.parents[0].is_some(),
            weights: ops.parents[1..].iter().any(Option::is_some),
        };
        let g = B::linear_backward(x, weights, biases, s.dact, dy, s.act, wants);
        let (first, rest) = ops.parents.split_first().expect("the input is a parent");
        if let (Some(node), Some(dx)) = (first, g.x) {
            grads.register::<B>(node.id, dx);
        }
        for (i, dw) in g.weights.into_iter().enumerate() {
            if let Some(node) = &rest[i] {
                grads.register::<B>(node.id, dw);
            }
        }
        for (i, db) in g.biases.into_iter().enumerate() {
            if let Some(node) = rest.get(k + i).and_then(Option::as_ref) {
                grads.register::<B>(node.id, db);
            }
        }
    }
}

/// Recomputes a linear's output (gradient checkpointing).
#[derive(Debug)]
struct RetroLinear<B> {
    x: NodeId,
    weights: Vec<NodeId>,
    biases: Vec<NodeId>,
    act: Act,
    _b: PhantomData<B>,
}

impl<B: FusedBackend> RetroForward for RetroLinear<B> {
    fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
        let x = states.get_state::<FloatTensor<B>>(&self.x);
        let w = self.weights.iter().map(|id| states.get_state(id)).collect();
        let b = self.biases.iter().map(|id| states.get_state(id)).collect();
        states.save(out_node, B::fused_linear(x, w, b, self.act));
    }
}

fn linear_node<B: FusedBackend, C: CheckpointStrategy, const N: usize>(
    inputs: Vec<FloatTensor<Autodiff<B, C>>>,
    k: usize,
    act: Act,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = std::array::from_fn(|i| inputs[i].node.clone());
    let ids: Vec<NodeId> = inputs.iter().map(|t| t.node.id).collect();
    let recompute = checkpointing::<C>();
    let prep = LinearOp::<N>.prepare::<C>(nodes);
    let prep = if recompute {
        prep.memory_bound()
            .retro_forward(RetroLinear::<B> {
                x: ids[0],
                weights: ids[1..1 + k].to_vec(),
                biases: ids[1 + k..].to_vec(),
                act,
                _b: PhantomData,
            })
            .parents(inputs.iter())
    } else {
        prep.compute_bound()
    };
    let mut inner: Vec<FloatTensor<B>> = inputs.iter().map(|t| t.primitive.clone()).collect();
    let biases = inner.split_off(1 + k);
    let weights = inner.split_off(1);
    let x = inner.pop().expect("the input");
    match prep.stateful() {
        OpsKind::Tracked(mut prep) => {
            let x_id = prep.checkpoint(&inputs[0]);
            let w_ids = inputs[1..1 + k]
                .iter()
                .map(|t| prep.checkpoint(t))
                .collect();
            // Biases are small; the backward reads them to recompute the activation's derivative.
            let b_ids = inputs[1 + k..].iter().map(|t| prep.checkpoint(t)).collect();
            let keep_dact = act != Act::Identity && !recompute;
            let (y, dact) = if keep_dact {
                B::linear_forward(x, weights, biases, act)
            } else {
                (B::fused_linear(x, weights, biases, act), None)
            };
            let state = LinearState {
                x: x_id,
                weights: w_ids,
                biases: b_ids,
                dact,
                act,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_linear(x, weights, biases, act)),
    }
}

#[derive(Debug)]
struct AttentionOp;

#[derive(Clone, Debug)]
struct AttentionState<B: FusedBackend> {
    qkv: NodeId,
    out: FloatTensor<B>,
    lse: FloatTensor<B>,
    heads: usize,
    mask: Option<BoolTensor<B>>,
}

impl<B: FusedBackend> Backward<B, 1> for AttentionOp {
    type State = AttentionState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dout = grads.consume::<B>(&ops.node);
        let s = ops.state;
        let qkv = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.qkv);
        if let Some(node) = &ops.parents[0] {
            let d = B::attention_backward(qkv, s.out, s.lse, dout, s.heads, s.mask);
            grads.register::<B>(node.id, d);
        }
    }
}

#[derive(Debug)]
struct LayerNormOp<const N: usize>;

#[derive(Clone, Debug)]
struct LayerNormState<B: FusedBackend> {
    x: NodeId,
    gamma: NodeId,
    /// Row statistics, or (checkpointing) what recomputes them.
    stats: Option<(FloatTensor<B>, FloatTensor<B>)>,
    eps: f64,
    has_beta: bool,
}

impl<B: FusedBackend, const N: usize> Backward<B, N> for LayerNormOp<N> {
    type State = LayerNormState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let s = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.x);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.gamma);
        let (mean, rstd) = match s.stats {
            Some(stats) => stats,
            None => {
                let (_, mean, rstd) = B::layer_norm_forward(x.clone(), gamma.clone(), None, s.eps);
                (mean, rstd)
            }
        };
        let wants = LinearWants {
            x: ops.parents[0].is_some(),
            weights: ops.parents[1..].iter().any(Option::is_some),
        };
        let g = B::layer_norm_backward(x, gamma, mean, rstd, dy, s.has_beta, wants);
        for (i, grad) in [g.x, g.gamma, g.beta].into_iter().enumerate() {
            if let (Some(node), Some(grad)) = (ops.parents.get(i).and_then(Option::as_ref), grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct RetroLayerNorm<B> {
    x: NodeId,
    gamma: NodeId,
    beta: Option<NodeId>,
    eps: f64,
    _b: PhantomData<B>,
}

impl<B: FusedBackend> RetroForward for RetroLayerNorm<B> {
    fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
        let x = states.get_state::<FloatTensor<B>>(&self.x);
        let gamma = states.get_state::<FloatTensor<B>>(&self.gamma);
        let beta = self.beta.map(|id| states.get_state::<FloatTensor<B>>(&id));
        states.save(out_node, B::fused_layer_norm(x, gamma, beta, self.eps));
    }
}

fn layer_norm_node<B: FusedBackend, C: CheckpointStrategy, const N: usize>(
    inputs: Vec<FloatTensor<Autodiff<B, C>>>,
    eps: f64,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = std::array::from_fn(|i| inputs[i].node.clone());
    let recompute = checkpointing::<C>();
    let has_beta = N == 3;
    let prep = LayerNormOp::<N>.prepare::<C>(nodes);
    let prep = if recompute {
        prep.memory_bound()
            .retro_forward(RetroLayerNorm::<B> {
                x: inputs[0].node.id,
                gamma: inputs[1].node.id,
                beta: inputs.get(2).map(|t| t.node.id),
                eps,
                _b: PhantomData,
            })
            .parents(inputs.iter())
    } else {
        prep.compute_bound()
    };
    let x = inputs[0].primitive.clone();
    let gamma = inputs[1].primitive.clone();
    let beta = inputs.get(2).map(|t| t.primitive.clone());
    match prep.stateful() {
        OpsKind::Tracked(mut prep) => {
            let x_id = prep.checkpoint(&inputs[0]);
            let gamma_id = prep.checkpoint(&inputs[1]);
            let (y, stats) = if recompute {
                (B::fused_layer_norm(x, gamma, beta, eps), None)
            } else {
                let (y, mean, rstd) = B::layer_norm_forward(x, gamma, beta, eps);
                (y, Some((mean, rstd)))
            };
            prep.finish(
                LayerNormState {
                    x: x_id,
                    gamma: gamma_id,
                    stats,
                    eps,
                    has_beta,
                },
                y,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(x, gamma, beta, eps)),
    }
}

#[derive(Debug)]
struct PatchifyOp;

impl<B: FusedBackend> Backward<B, 1> for PatchifyOp {
    type State = (usize, [usize; 4]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let (p, shape) = ops.state;
        if let Some(node) = &ops.parents[0] {
            grads.register::<B>(node.id, crate::reference::unpatchify::<B>(dy, p, shape));
        }
    }
}

#[derive(Debug)]
struct ResidualOp;

impl<B: FusedBackend> Backward<B, 2> for ResidualOp {
    type State = ();

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        let [a, b] = ops.parents;
        if let Some(a) = a {
            grads.register::<B>(a.id, dy.clone());
        }
        if let Some(b) = b {
            grads.register::<B>(b.id, dy);
        }
    }
}

#[derive(Debug)]
struct SoftmaxOp;

impl<B: FusedBackend> Backward<B, 1> for SoftmaxOp {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<B>(&ops.node);
        if let Some(node) = &ops.parents[0] {
            grads.register::<B>(node.id, B::softmax_backward(ops.state, dy));
        }
    }
}

impl<B: FusedBackend, C: CheckpointStrategy> FusedBackend for Autodiff<B, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weights: Vec<FloatTensor<Self>>,
        biases: Vec<FloatTensor<Self>>,
        act: Act,
    ) -> FloatTensor<Self> {
        let k = weights.len();
        let n_bias = biases.len();
        let mut inputs = Vec::with_capacity(1 + k + n_bias);
        inputs.push(x);
        inputs.extend(weights);
        inputs.extend(biases);
        match (k, n_bias) {
            (1, 0) => linear_node::<B, C, 2>(inputs, k, act),
            (1, 1) => linear_node::<B, C, 3>(inputs, k, act),
            (2, 0) => linear_node::<B, C, 3>(inputs, k, act),
            (2, 2) => linear_node::<B, C, 5>(inputs, k, act),
            (3, 0) => linear_node::<B, C, 4>(inputs, k, act),
            (3, 3) => linear_node::<B, C, 7>(inputs, k, act),
            _ => panic!("fused linear: {k} weights and {n_bias} biases are not supported"),
        }
    }

    fn fused_attention(
        qkv: FloatTensor<Self>,
        heads: usize,
        mask: Option<BoolTensor<Self>>,
    ) -> FloatTensor<Self> {
        match AttentionOp
            .prepare::<C>([qkv.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let id = prep.checkpoint(&qkv);
                let (out, lse) = B::attention_forward(qkv.primitive, heads, mask.clone());
                let state = AttentionState {
                    qkv: id,
                    out: out.clone(),
                    lse,
                    heads,
                    mask,
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_attention(qkv.primitive, heads, mask)),
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
        eps: f64,
    ) -> FloatTensor<Self> {
        match beta {
            Some(beta) => layer_norm_node::<B, C, 3>(vec![x, gamma, beta], eps),
            None => layer_norm_node::<B, C, 2>(vec![x, gamma], eps),
        }
    }

    fn fused_patchify(pixels: FloatTensor<Self>, p: usize) -> FloatTensor<Self> {
        use burn::tensor::TensorMetadata;
        let shape: [usize; 4] = pixels.shape().dims();
        match PatchifyOp
            .prepare::<C>([pixels.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((p, shape), B::fused_patchify(pixels.primitive, p))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_patchify(pixels.primitive, p)),
        }
    }

    fn fused_residual(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        // Compute-bound: under gradient checkpointing the residual stream is what is kept (the
        // blocks' inputs), everything inside a block is recomputed from it.
        ResidualOp
            .prepare::<C>([a.node.clone(), b.node.clone()])
            .compute_bound()
            .stateless(B::fused_residual(a.primitive, b.primitive))
    }

    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxOp
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::fused_softmax(x.primitive);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_softmax(x.primitive)),
        }
    }
}
