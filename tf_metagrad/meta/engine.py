"""The exact meta-gradient engine: d L_out / d eta through M inner updates.

Meta-gradient RL (Xu et al. 2018; STAC, Zahavy et al. 2020, Algorithm 2;
FRODO, Xu et al. 2020; DrMG, Yin et al. (2023) eq. 12-14) updates the agent parameters
theta with an inner loss L_in(theta, eta) and then differentiates an outer loss
evaluated at the updated parameters with respect to the metaparameters eta:

    theta_{m+1} = OPT(theta_m, grad_theta L_in(theta_m, eta; tau_m), s_m)
    d L_out(theta_M; tau') / d eta.

This module computes that derivative exactly, with nested `tf.GradientTape`s:
an outer tape watches eta, and for each of the M inner steps an inner tape
produces grad_theta L_in as a tensor that still depends on eta; the optimizer
update is plain tensor arithmetic (`tf_metagrad.optim`), so the outer tape sees
the whole chain, including the optimizer statistics s_m (e.g. RMSProp's mean
square), which also depend on eta after the first inner step.

Stop-gradients and finite differences: RL losses are pseudo-losses whose
gradient treats some quantities (importance ratios, bootstrap targets, the
outer advantage) as constants. Loss functions therefore take a `reference`:
None means "stop-gradient your own outputs" (every real update), a
`Reference(params, meta)` means "evaluate the stop-gradiented quantities at
these parameters and metaparameters".
`outer_loss_at` uses the latter to expose the outer loss as an ordinary
function of eta whose derivative at the reference eta is exactly the
meta-gradient, which is what finite differences can check, also through M > 1
inner steps.

Distribution: inside `strategy.run` the inner gradients are all-reduced over
replicas before every inner update, and the meta-gradients before they are
returned. The all-reduce is differentiable (the gradient of an all-sum is an
all-sum of the upstream gradients), so with per-replica losses that are sums
over the local batch (`replica_reduction="sum"`), N replicas each holding 1/N
of the global batch produce exactly the meta-gradient of the global-batch
objective that a single device computes; use "mean" for losses that are means
over equal shards.
"""

from typing import (Any, Callable, List, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import tensorflow as tf

from tf_metagrad.distribute import replicas
from tf_metagrad.optim import optimizers

# (params, meta_params, batch, reference) -> (scalar loss, dict of logs).
InnerLossFn = Callable[[List[tf.Tensor], Any, Any, Optional[List[tf.Tensor]]],
                       Tuple[tf.Tensor, dict]]
# (params after the inner updates, batch, reference) -> (loss, logs).
OuterLossFn = Callable[[List[tf.Tensor], Any, Optional[List[tf.Tensor]]],
                       Tuple[tf.Tensor, dict]]


class Reference(NamedTuple):
  """Where a loss evaluates its stop-gradiented quantities."""

  params: List[tf.Tensor]
  meta: Any


class InnerLoopResult(NamedTuple):
  """What M inner updates produced.

  Attributes:
    params: theta_M, tensors aligned with the input params.
    trajectory: theta_0, ..., theta_{M-1}, the parameters each inner loss was
      evaluated at.
    opt_state: optimizer state after the M updates.
    losses: the M inner losses (before each update).
    grad_norms: global norms of the M all-reduced inner gradients (before
      clipping).
    logs: the M log dicts returned by the inner loss.
    finite: scalar bool, every inner loss and gradient was finite.
  """

  params: List[tf.Tensor]
  trajectory: List[List[tf.Tensor]]
  opt_state: Any
  losses: List[tf.Tensor]
  grad_norms: List[tf.Tensor]
  logs: List[dict]
  finite: tf.Tensor


class MetaGradientResult(NamedTuple):
  """The meta-gradient, the outer loss and the inner loop it went through."""

  meta_grads: Any
  outer_loss: tf.Tensor
  outer_logs: dict
  inner: InnerLoopResult
  finite: tf.Tensor


def _all_finite(tensors) -> tf.Tensor:
  flags = [tf.reduce_all(tf.math.is_finite(t)) for t in tf.nest.flatten(tensors)]
  if not flags:
    return tf.constant(True)
  return tf.reduce_all(tf.stack(flags))


class MetaGradientEngine:
  """Differentiates an outer loss through M inner optimizer updates.

  Args:
    optimizer: a differentiable optimizer from `tf_metagrad.optim` exposing
      `update(grads, state, params, learning_rate,
      stop_statistics_gradient=False) -> (new_params, new_state)`.
    num_inner_steps: M >= 1 (STAC, MGRL and DrMG use 1; FRODO several, each on
      its own trajectory).
    differentiate_optimizer_state: True (exact) differentiates through the
      optimizer statistics. False treats them as constants: the statistics
      that normalise the step (RMSProp's mean square, Adam's second moment) are
      computed from stop-gradiented values, so d theta' / d eta only flows
      through the gradient in the numerator. That is an approximation (it
      drops the terms where eta changes the step size through the
      statistics); for plain SGD, which has no statistics, both modes agree.
    max_grad_norm: if set, the all-reduced inner gradient is clipped to this
      global norm before each inner update (differentiably).
    replica_reduction: "sum" or "mean"; how gradients and meta-gradients
      are combined over replicas (see the module docstring).
  """

  def __init__(self,
               optimizer: Union[optimizers.SGD, optimizers.RMSProp,
                                optimizers.Adam],
               num_inner_steps: int = 1,
               differentiate_optimizer_state: bool = True,
               max_grad_norm: Optional[float] = None,
               replica_reduction: str = "sum") -> None:
    if int(num_inner_steps) < 1:
      raise ValueError(
          f"num_inner_steps must be >= 1, got {num_inner_steps}.")
    if max_grad_norm is not None and max_grad_norm <= 0:
      raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm}.")
    self.optimizer = optimizer
    self.num_inner_steps = int(num_inner_steps)
    self.differentiate_optimizer_state = bool(differentiate_optimizer_state)
    self.max_grad_norm = max_grad_norm
    if replica_reduction not in ("sum", "mean"):
      raise ValueError(
          f"replica_reduction must be 'sum' or 'mean', got {replica_reduction!r}.")
    self.replica_reduction = replica_reduction

  def _check_batches(self, inner_batches) -> Sequence[Any]:
    if self.num_inner_steps == 1 and not isinstance(inner_batches, list):
      return [inner_batches]
    if (not isinstance(inner_batches, list)
        or len(inner_batches) != self.num_inner_steps):
      got = (len(inner_batches) if isinstance(inner_batches, list)
             else type(inner_batches).__name__)
      raise ValueError(
          f"With num_inner_steps={self.num_inner_steps} the inner batch must "
          f"be a list of {self.num_inner_steps} trajectories, got {got}.")
    return inner_batches

  def inner_gradients(
      self, inner_loss_fn: InnerLossFn,
      params: Sequence[Union[tf.Tensor, tf.Variable]], meta_params: Any,
      batch: Any, reference: Optional[Reference] = None
  ) -> Tuple[tf.Tensor, dict, List[tf.Tensor], tf.Tensor]:
    """One inner loss and its all-reduced, optionally clipped gradient.

    Returns:
      (loss, logs, grads, grad_norm) with grads aligned with params.
    """
    params = list(params)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      loss, logs = inner_loss_fn(params, meta_params, batch, reference)
    grads = tape.gradient(
        loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = replicas.cross_replica_reduce(grads, self.replica_reduction)
    grad_norm = tf.linalg.global_norm(grads)
    if self.max_grad_norm is not None:
      grads, _ = tf.clip_by_global_norm(
          grads, self.max_grad_norm, use_norm=grad_norm)
    return loss, logs, grads, grad_norm

  def inner_loop(self, inner_loss_fn: InnerLossFn,
                 params: Sequence[Union[tf.Tensor, tf.Variable]],
                 opt_state: Sequence[Any], meta_params: Any,
                 inner_batches: Any, learning_rate: Union[float, tf.Tensor],
                 references: Optional[Sequence[Reference]] = None
                 ) -> InnerLoopResult:
    """Takes the M differentiable inner updates.

    Call this under a tape that watches `meta_params` to differentiate the
    result; called on its own it is the agent's real (first-order) update.

    Args:
      inner_loss_fn: (params, meta_params, batch) -> (loss, logs).
      params: theta_0, a list of tensors or variables.
      opt_state: the optimizer state aligned with params.
      meta_params: whatever the inner loss is parameterised by (passed
        through unchanged).
      inner_batches: one batch, or a list of M batches.
      learning_rate: scalar learning rate of the inner optimizer.
      references: None, or M `Reference`s at which each inner loss
        evaluates its stop-gradiented quantities (see the module docstring).

    Returns:
      An `InnerLoopResult`.
    """
    batches = self._check_batches(inner_batches)
    if references is None:
      references = [None] * len(batches)
    theta = [tf.convert_to_tensor(p) for p in params]
    state = opt_state
    losses, norms, logs, finite, trajectory = [], [], [], [], []
    for batch, reference in zip(batches, references):
      trajectory.append(theta)
      loss, step_logs, grads, grad_norm = self.inner_gradients(
          inner_loss_fn, theta, meta_params, batch, reference)
      theta, state = self.optimizer.update(
          grads, state, theta, learning_rate,
          stop_statistics_gradient=not self.differentiate_optimizer_state)
      losses.append(loss)
      norms.append(grad_norm)
      logs.append(step_logs)
      finite.append(_all_finite([loss, grad_norm]))
    return InnerLoopResult(
        params=list(theta), trajectory=trajectory, opt_state=state, losses=losses, grad_norms=norms,
        logs=logs, finite=tf.reduce_all(tf.stack(finite)))

  def metagradient(self, inner_loss_fn: InnerLossFn, outer_loss_fn: OuterLossFn,
                   params: Sequence[Union[tf.Tensor, tf.Variable]],
                   opt_state: Sequence[Any], meta_params: Any,
                   inner_batches: Any, outer_batch: Any,
                   learning_rate: Union[float, tf.Tensor]
                   ) -> MetaGradientResult:
    """Exact d L_out(theta_M(eta); outer_batch) / d meta_params.

    Args:
      inner_loss_fn: (params, meta_params, batch) -> (loss, logs).
      outer_loss_fn: (params_M, outer_batch, reference) -> (loss, logs); any
        fixed
        quantity (e.g. the pre-update policy for STAC's KL term) is closed
        over by the caller.
      params: theta_0, list of tensors or variables.
      opt_state: inner optimizer state at theta_0.
      meta_params: a nest of tensors or variables (the differentiated eta).
      inner_batches: one batch, or a list of M batches.
      outer_batch: the batch of the outer loss (the same batch or a held-out
        one).
      learning_rate: scalar inner learning rate.

    Returns:
      A `MetaGradientResult`; `meta_grads` has the structure of `meta_params`
      and is all-reduced over replicas.
    """
    flat_meta = tf.nest.flatten(meta_params)
    with tf.GradientTape(watch_accessed_variables=False) as meta_tape:
      meta_tape.watch(flat_meta)
      inner = self.inner_loop(inner_loss_fn, params, opt_state, meta_params,
                              inner_batches, learning_rate)
      outer_loss, outer_logs = outer_loss_fn(inner.params, outer_batch, None)
    flat_grads = meta_tape.gradient(
        outer_loss, flat_meta,
        unconnected_gradients=tf.UnconnectedGradients.ZERO)
    flat_grads = replicas.cross_replica_reduce(flat_grads, self.replica_reduction)
    finite = tf.logical_and(inner.finite, _all_finite([outer_loss, flat_grads]))
    return MetaGradientResult(
        meta_grads=tf.nest.pack_sequence_as(meta_params, flat_grads),
        outer_loss=outer_loss, outer_logs=outer_logs, inner=inner,
        finite=finite)

  def outer_loss_at(self, inner_loss_fn: InnerLossFn,
                    outer_loss_fn: OuterLossFn,
                    params: Sequence[Union[tf.Tensor, tf.Variable]],
                    opt_state: Sequence[Any], meta_params: Any,
                    reference_meta_params: Any, inner_batches: Any,
                    outer_batch: Any,
                    learning_rate: Union[float, tf.Tensor]) -> tf.Tensor:
    """The outer loss after M inner steps taken with `meta_params`.

    Every stop-gradiented quantity is evaluated along the parameter path that
    `reference_meta_params` produces, so this is an ordinary function of
    `meta_params` whose derivative at `meta_params == reference_meta_params`
    equals `metagradient(...)` (before the cross-replica reduction).

    Args:
      inner_loss_fn, outer_loss_fn, params, opt_state, inner_batches,
      outer_batch, learning_rate: as in `metagradient`.
      meta_params: where to evaluate (e.g. perturbed logits).
      reference_meta_params: where the stop-gradients are anchored (e.g. the
        current logits).

    Returns:
      The scalar outer loss.
    """
    anchor = self.inner_loop(inner_loss_fn, params, opt_state,
                             reference_meta_params, inner_batches,
                             learning_rate)
    moved = self.inner_loop(
        inner_loss_fn, params, opt_state, meta_params, inner_batches,
        learning_rate,
        references=[Reference(p, reference_meta_params)
                    for p in anchor.trajectory])
    loss, _ = outer_loss_fn(moved.params, outer_batch,
                            Reference(anchor.params, reference_meta_params))
    return loss
