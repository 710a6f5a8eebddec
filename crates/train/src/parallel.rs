//! Data-parallel training inside one run: `N` peers, each with a replica of the model and of
//! the optimiser, each taking its share of every micro-batch; their gradients are summed with
//! burn's collective (`burn::collective`: `register`, then `all_reduce` of the gradients before
//! every optimiser step), so every peer takes the same step and the replicas stay equal. On the
//! CPU peers are threads (each computing in a rayon pool of its own, so a small model keeps every
//! core busy with whole sub-batches instead of tiny parallel ops); on CUDA one peer per GPU
//! (the run's leased devices, `CUDA_VISIBLE_DEVICES` indices 0..N).
//!
//! A run with peers gives the parameters of one device at the same global batch (up to the
//! order of float sums): losses are weighted by each peer's share of the batch, or — for a
//! contrastive loss, which needs the whole batch — computed whole on every peer from rows
//! gathered with [`PeerCtx::gather_rows`], each peer differentiating its own rows only.
//! Checkpoints, schedules and metrics are those of peer 0.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use burn::collective::{self, AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation};
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};
use t4v_core::RunError;
use t4v_fused::FusedAutodiffBackend;

use crate::fit::Fitter;
use crate::model::Grouped;

/// One data-parallel group per process at a time: burn's collective is one per backend type.
static GROUP: Mutex<()> = Mutex::new(());

fn fail(e: impl std::fmt::Debug) -> RunError {
    RunError::Failed(format!("data-parallel peers: {e:?}"))
}

/// What a peer's loss function sees of its share of a micro-batch.
pub struct PeerCtx<'a, B: Backend> {
    /// This peer (0 is the one whose model is checkpointed and validated).
    pub index: usize,
    pub peers: usize,
    /// Its rows of the micro-batch (empty when the batch has fewer rows than peers).
    pub rows: Range<usize>,
    /// Rows of the whole micro-batch.
    pub batch: usize,
    pub device: &'a B::Device,
}

impl<B: FusedAutodiffBackend> PeerCtx<'_, B> {
    /// Its share of the batch, `rows / batch`: the weight of a mean loss over its rows.
    pub fn weight(&self) -> f64 {
        self.rows.len() as f64 / self.batch.max(1) as f64
    }

    /// The rows a mean loss of this peer is computed on: its own, or row 0 when it has none (a
    /// batch smaller than the peers), whose loss [`weight`](Self::weight) 0 then cancels — the
    /// peer still produces a gradient for every parameter, as the all-reduce needs.
    pub fn loss_rows(&self) -> Range<usize> {
        if self.rows.is_empty() {
            0..1
        } else {
            self.rows.clone()
        }
    }

    /// A value every peer computes the same from the whole batch (a contrastive loss's
    /// temperature): its gradient is counted once, on peer 0; the other peers pass zero
    /// gradients (not none: every peer's gradients must name the same parameters).
    pub fn once<const D: usize>(&self, t: Tensor<B, D>) -> Tensor<B, D> {
        if self.index == 0 {
            t
        } else {
            t.clone().detach() + (t.clone() - t.detach()) * 0.0
        }
    }

    /// `[rows, D]` of this peer → `[batch, D]`, the rows of every peer in batch order: its own
    /// rows still differentiable, the others' as values (an all-reduce of zero-padded copies,
    /// exact: every element is one peer's value plus zeros).
    pub fn gather_rows(&self, local: Tensor<B, 2>) -> Result<Tensor<B, 2>, RunError> {
        if self.peers == 1 {
            return Ok(local);
        }
        let [n, d] = local.dims();
        let padded = Tensor::<B::InnerBackend, 2>::zeros([self.batch, d], self.device)
            .slice_assign([self.rows.clone(), 0..d], local.clone().inner());
        let summed = collective::all_reduce::<B::InnerBackend>(
            PeerId::from(self.index),
            padded.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(fail)?;
        let all =
            Tensor::<B, 2>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(summed)));
        let (start, end) = (self.rows.start, self.rows.start + n);
        let mut parts = Vec::new();
        if start > 0 {
            parts.push(all.clone().narrow(0, 0, start));
        }
        if n > 0 {
            parts.push(local);
        }
        if end < self.batch {
            parts.push(all.narrow(0, end, self.batch - end));
        }
        Ok(Tensor::cat(parts, 0))
    }
}

/// Compute threads of each of `peers` CPU peers: the worker's threads (the cores leased to
/// it) shared out.
pub fn peer_threads(peers: usize) -> usize {
    (rayon::current_num_threads() / peers.max(1)).max(1)
}

/// The rows of each of `peers` shares of a batch of `n`: contiguous, sizes differing by at most
/// one, the larger first.
pub fn shards(n: usize, peers: usize) -> Vec<Range<usize>> {
    let (q, r) = (n / peers, n % peers);
    let mut start = 0;
    (0..peers)
        .map(|p| {
            let len = q + usize::from(p < r);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

struct Replica<B: FusedAutodiffBackend, M: AutodiffModule<B>> {
    model: Option<M>,
    fitter: Fitter<B, M>,
    device: B::Device,
}

/// The peers of a run: their replicas, optimisers, devices and compute pools.
pub struct Replicas<B: FusedAutodiffBackend, M: AutodiffModule<B> + Grouped> {
    replicas: Vec<Replica<B, M>>,
    pools: Vec<rayon::ThreadPool>,
    _group: Option<MutexGuard<'static, ()>>,
}

/// The device of peer `i`: the run's device with index + i (on the CPU, the one device).
fn peer_device<B: Backend>(base: &B::Device, i: usize) -> B::Device {
    use burn::tensor::backend::Device as _;
    let id = base.to_id();
    B::Device::from_id(burn::tensor::backend::DeviceId::new(
        id.type_id,
        id.index_id + i as u16,
    ))
}

impl<B: FusedAutodiffBackend, M: AutodiffModule<B> + Grouped + 'static> Replicas<B, M> {
    /// `peers` replicas of `model` (peer 0 on `device`, peer i on its i-th successor), each
    /// with the optimiser `fitter` makes for it and, on the CPU, `threads` compute threads.
    pub fn new(
        peers: usize,
        threads: usize,
        model: M,
        device: &B::Device,
        fitter: impl Fn(&M, &B::Device) -> Result<Fitter<B, M>, RunError>,
    ) -> Result<Self, RunError> {
        let peers = peers.max(1);
        let group = (peers > 1).then(|| GROUP.lock().unwrap_or_else(|e| e.into_inner()));
        let mut replicas = Vec::with_capacity(peers);
        for i in 0..peers {
            let d = peer_device::<B>(device, i);
            let m = if i == 0 {
                model.clone()
            } else {
                model.clone().fork(&d)
            };
            let mut f = fitter(&m, &d)?;
            if peers > 1 {
                f = f.with_peer(PeerId::from(i));
            }
            replicas.push(Replica {
                model: Some(m),
                fitter: f,
                device: d,
            });
        }
        let pools = (0..peers)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads.max(1))
                    .thread_name(move |t| format!("peer-{i}-{t}"))
                    .build()
                    .map_err(fail)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let this = Self {
            replicas,
            pools,
            _group: group,
        };
        if peers > 1 {
            let config = CollectiveConfig::default()
                .with_num_devices(peers)
                .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
            collective::reset_collective::<B::InnerBackend>();
            let devices: Vec<B::Device> = this.replicas.iter().map(|r| r.device.clone()).collect();
            std::thread::scope(|s| {
                let handles: Vec<_> = devices
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let config = config.clone();
                        s.spawn(move || {
                            collective::register::<B::InnerBackend>(PeerId::from(i), d, config)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("a registering peer").map_err(fail))
            })?;
        }
        Ok(this)
    }

    pub fn peers(&self) -> usize {
        self.replicas.len()
    }

    /// Peer 0's model (every peer's is the same).
    pub fn model(&self) -> &M {
        self.replicas[0].model.as_ref().expect("between steps")
    }

    /// Peer 0's optimiser.
    pub fn fitter(&self) -> &Fitter<B, M> {
        &self.replicas[0].fitter
    }

    /// One micro-batch of `batch` rows: every peer evaluates `loss` on its rows and
    /// backpropagates it; the optimisers step (after the all-reduce) every `accumulation`
    /// micro-batches or when `flush`, at `factor ×` the learning rate. Returns each peer's loss
    /// value.
    pub fn step<L>(
        &mut self,
        batch: usize,
        factor: f64,
        flush: bool,
        loss: &L,
    ) -> Result<Vec<f64>, RunError>
    where
        L: Fn(&M, &PeerCtx<'_, B>) -> Result<Tensor<B, 1>, RunError> + Sync,
    {
        let peers = self.replicas.len();
        let ranges = shards(batch, peers);
        let run = |r: &mut Replica<B, M>, index: usize, rows: Range<usize>| {
            let model = r.model.take().expect("between steps");
            let ctx = PeerCtx {
                index,
                peers,
                rows,
                batch,
                device: &r.device,
            };
            let l = loss(&model, &ctx);
            let l = match l {
                Ok(l) => l,
                Err(e) => {
                    r.model = Some(model);
                    return Err(e);
                }
            };
            let value: f64 = l.clone().into_scalar().elem();
            r.model = Some(r.fitter.backward(model, l, factor, flush)?);
            Ok(value)
        };
        if peers == 1 {
            let r = &mut self.replicas[0];
            return self.pools[0]
                .install(|| run(r, 0, ranges[0].clone()))
                .map(|v| vec![v]);
        }
        let pools = &self.pools;
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .replicas
                .iter_mut()
                .zip(ranges)
                .enumerate()
                .map(|(i, (r, rows))| {
                    let pool = &pools[i];
                    let run = &run;
                    s.spawn(move || pool.install(|| run(r, i, rows)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| fail("a peer panicked"))?)
                .collect()
        })
    }

    /// Leaves the collective; peer 0's model.
    pub fn finish(mut self) -> Result<M, RunError> {
        if self.replicas.len() > 1 {
            for i in 0..self.replicas.len() {
                collective::finish_collective::<B::InnerBackend>(PeerId::from(i)).map_err(fail)?;
            }
            collective::reset_collective::<B::InnerBackend>();
        }
        Ok(self.replicas[0].model.take().expect("between steps"))
    }
}

#[cfg(test)]
mod tests {
    use super::shards;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(shards(7, 2), vec![0..4, 4..7]);
        assert_eq!(shards(6, 3), vec![0..2, 2..4, 4..6]);
        assert_eq!(shards(1, 2), vec![0..1, 1..1]);
        assert_eq!(shards(5, 1), vec![0..5]);
    }
}
