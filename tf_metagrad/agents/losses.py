"""The (leaky) V-trace actor-critic loss shared by the actor-critic agents.

STAC supplement Algorithm 1 (Zahavy et al. 2020), generalised to
- separate leaky coefficients alpha_rho (for rho and the policy-gradient
  weight) and alpha_c (for the traces), STAC fig. 5b; alpha_rho = alpha_c is
  the main STAC agent;
- a quantile value head (DrMG, Yin et al. (2023) eq. 9-11): values `[T+1, B, N]`,
  per-quantile gamma, lambda and value-loss weight (vectors `[N]`), quantile
  Huber value loss.

Conventions (Algorithm 1): the importance ratios and the value estimates that
enter the targets are stop-gradiented, but the targets stay differentiable
with respect to gamma, lambda and alpha, which is what lets the meta-gradient
reach them. The stop-gradiented quantities come from `reference_policy` and
`reference_values`: the network outputs at the same parameters in a normal
update, or at fixed reference parameters when a caller needs the loss as an
ordinary function of the parameters (finite-difference checks of
meta-gradients, see `meta.engine.MetaGradientEngine.outer_loss_at`). With
`inner=True` the policy-gradient advantage is not stop-gradiented (line 20),
so it carries eta; with `inner=False` (the outer loss, line 22) the whole
advantage is a constant.

Padding steps (`Trajectory.mask` 0, the final observation of an episode cut
by a time limit, see `types.Trajectory`) have zero importance weight and
trace, so targets bootstrap from V(x_final) (Pardo et al. 2018), and they
are left out of every loss term. The sums then run over the real steps
only, not renormalised: a padding step is not data, and dividing by the
number of real steps would let the rate of truncations rescale the
gradient.

Losses are sums over time and over the batch held by this replica, as in
Algorithm 1; the meta-gradient engine all-sums gradients over replicas, so the
global gradient is that of the sum over the global batch.
"""

from typing import NamedTuple, Optional, Tuple, Union

import tensorflow as tf

from tf_metagrad.agents import distributions
from tf_metagrad.ops import distributional
from tf_metagrad.ops import returns as returns_ops
from tf_metagrad.ops import vtrace

Scalar = Union[float, tf.Tensor]


class LossHyperparams(NamedTuple):
  """The hyperparameters zeta of Algorithm 1 (inner values or outer ones).

  For a quantile head, `gamma`, `lambda_` and `g_v` may be vectors `[N]`
  (DrMG); everything else is a scalar.
  """

  gamma: Scalar
  lambda_: Scalar = 1.0
  alpha_rho: Scalar = 1.0
  alpha_c: Scalar = 1.0
  g_v: Scalar = 0.25
  g_p: Scalar = 1.0
  g_e: Scalar = 0.01


class LossOutputs(NamedTuple):
  loss: tf.Tensor
  value_loss: tf.Tensor
  policy_loss: tf.Tensor
  entropy_loss: tf.Tensor
  vs: tf.Tensor
  advantages: tf.Tensor


def _as_dtype(x, dtype):
  """Casts tensors; converts Python numbers directly to `dtype` (tf.cast of a
  Python float would go through float32 and lose float64 precision)."""
  if tf.is_tensor(x) or isinstance(x, tf.Variable):
    return tf.cast(x, dtype)
  return tf.constant(x, dtype)


def masked_sum(terms: tf.Tensor, masks: Optional[tf.Tensor]) -> tf.Tensor:
  """Sum of per-step `terms` `[T, B]` over the real steps (`masks` `[T, B]`,
  or None for all steps)."""
  if masks is None:
    return tf.reduce_sum(terms)
  return tf.reduce_sum(terms * masks)


def _n_step_targets(log_rhos, discounts, rewards, values, clip_pg_rho,
                    n, masks) -> vtrace.VTraceReturns:
  """n-step targets and advantages in V-trace's return format."""
  quantile = values.shape.rank == 3
  vs = returns_ops.n_step_returns(rewards, discounts, values[:-1],
                                  values[-1], n, masks=masks)
  weights = tf.exp(log_rhos)
  if clip_pg_rho is not None:
    weights = tf.minimum(_as_dtype(clip_pg_rho, weights.dtype), weights)
  if masks is not None:
    weights = tf.math.multiply_no_nan(weights, masks)
  if quantile:
    weights, rewards = weights[..., None], rewards[..., None]
  next_vs = tf.concat([vs[1:], values[-1:]], axis=0)
  return vtrace.VTraceReturns(
      vs=vs, pg_advantages=weights * (rewards + discounts * next_vs
                                      - values[:-1]))


def actor_critic_loss(policy: Union[distributions.Categorical,
                                    distributions.SquashedGaussian],
                      values: tf.Tensor,
                      reference_policy: Union[distributions.Categorical,
                                              distributions.SquashedGaussian],
                      reference_values: tf.Tensor,
                      actions: tf.Tensor,
                      rewards: tf.Tensor,
                      discounts: tf.Tensor,
                      behaviour_log_prob: tf.Tensor,
                      hparams: LossHyperparams,
                      inner: bool,
                      clip_rho_threshold: Optional[float] = 1.0,
                      clip_pg_rho_threshold: Optional[float] = 1.0,
                      quantile_taus: Optional[tf.Tensor] = None,
                      kappa: float = 1.0,
                      distributional_advantage: str = "vtrace",
                      n_step: Optional[int] = None,
                      masks: Optional[tf.Tensor] = None
                      ) -> LossOutputs:
  """Algorithm 1 of the STAC supplement, scalar or quantile values.

  Args:
    policy: a `distributions.Categorical` or `SquashedGaussian` over `[T, B]`.
    values: V_theta(x_0..x_T), `[T+1, B]`, or quantiles `[T+1, B, N]`.
    reference_policy: the policy whose (stop-gradiented) log-probabilities
      give the importance ratios.
    reference_values: the (stop-gradiented) values the targets are built
      from, shaped like `values`.
    actions: `[T, B]` or `[T, B, A]`.
    rewards: `[T, B]` (already clipped if the agent clips).
    discounts: `[T, B]` environment discounts (0 at terminals); multiplied
      by `hparams.gamma` here.
    behaviour_log_prob: `[T, B]` log mu(a_t | x_t).
    hparams: inner (eta-dependent) or outer (fixed) hyperparameters.
    inner: Algorithm 1's inner-loss flag (see the module docstring).
    clip_rho_threshold: rho-bar.
    clip_pg_rho_threshold: rho-bar of the policy-gradient weight.
    quantile_taus: `[N]` quantile midpoints; required iff values has N.
    kappa: Huber threshold of the quantile loss.
    distributional_advantage: with quantiles, "vtrace" averages the
      per-quantile V-trace policy-gradient advantages
      rho^pg (r + gamma vs_{t+1} - Z); "drmg" is Yin et al. (2023) eq. 11,
      mean_q (Gamma_q - Z_q) min(c-bar, IS), with c-bar = clip_pg_rho.
    n_step: None for the (leaky) V-trace lambda-return; an int n replaces it
      by the n-step bootstrapped return (DrMG's "+n-step" ablation, Yin et al. (2023)
      section 5.3), which has no trace and no importance correction of the
      target (so lambda and alpha do not enter); the policy-gradient weight
      stays min(clip_pg_rho, IS).
    masks: `[T, B]` `Trajectory.mask`, 0 at padding steps (see the module
      docstring); None when every step is real.

  Returns:
    `LossOutputs`; `loss` = g_v L_value + g_p L_policy + g_e L_entropy.
  """
  _check_values(values, quantile_taus, distributional_advantage)
  dtype = values.dtype
  quantile = values.shape.rank == 3
  log_pi = tf.cast(policy.log_prob(actions), dtype)
  log_rhos = tf.stop_gradient(
      tf.cast(reference_policy.log_prob(actions), dtype)
      - tf.cast(behaviour_log_prob, dtype))
  gamma = _as_dtype(hparams.gamma, dtype)
  discounts = tf.cast(discounts, dtype) * gamma if not quantile else (
      tf.broadcast_to(tf.cast(discounts, dtype)[..., None] * gamma,
                      tf.shape(values[:-1])))
  target_values = tf.stop_gradient(tf.cast(reference_values, dtype))
  rewards = tf.cast(rewards, dtype)
  if masks is not None:
    masks = tf.cast(masks, dtype)
  returns = _targets(log_rhos, discounts, rewards, target_values, hparams,
                     clip_rho_threshold, clip_pg_rho_threshold, n_step,
                     masks)
  g_v = _as_dtype(hparams.g_v, dtype)
  if quantile:
    value_loss, advantages = _quantile_value_loss(
        values, target_values, returns, log_rhos, g_v,
        _as_dtype(quantile_taus, dtype), kappa, distributional_advantage,
        clip_pg_rho_threshold, masks)
  else:
    value_loss = g_v * masked_sum(tf.square(returns.vs - values[:-1]), masks)
    advantages = returns.pg_advantages
  if not inner:
    advantages = tf.stop_gradient(advantages)
  policy_loss = -_as_dtype(hparams.g_p, dtype) * masked_sum(
      log_pi * advantages, masks)
  entropy_loss = -_as_dtype(hparams.g_e, dtype) * masked_sum(
      tf.cast(policy.regularizer(), dtype), masks)
  return LossOutputs(
      loss=value_loss + policy_loss + entropy_loss,
      value_loss=value_loss, policy_loss=policy_loss,
      entropy_loss=entropy_loss, vs=returns.vs, advantages=advantages)


def _check_values(values: tf.Tensor, quantile_taus: Optional[tf.Tensor],
                  distributional_advantage: str) -> None:
  """Raises unless `values` is `[T+1, B]`, or `[T+1, B, N]` with taus."""
  if values.shape.rank == 3 and quantile_taus is None:
    raise ValueError("values have a quantile axis; quantile_taus is required.")
  if values.shape.rank not in (2, 3):
    raise ValueError(
        f"values must be [T+1, B] or [T+1, B, N], got {values.shape}.")
  if distributional_advantage not in ("vtrace", "drmg"):
    raise ValueError(
        "distributional_advantage must be 'vtrace' or 'drmg', got "
        f"{distributional_advantage!r}.")


def _targets(log_rhos: tf.Tensor, discounts: tf.Tensor, rewards: tf.Tensor,
             target_values: tf.Tensor, hparams: LossHyperparams,
             clip_rho_threshold: Optional[float],
             clip_pg_rho_threshold: Optional[float], n_step: Optional[int],
             masks: Optional[tf.Tensor]) -> vtrace.VTraceReturns:
  """Algorithm 1's value targets vs and policy-gradient advantages: the
  (leaky) V-trace lambda-return, or with `n_step` the n-step return; kept
  differentiable in gamma (inside `discounts`), lambda and alpha, which is
  the path the meta-gradient takes to them."""
  if n_step is not None:
    return _n_step_targets(log_rhos, discounts, rewards, target_values,
                           clip_pg_rho_threshold, n_step, masks)
  dtype = target_values.dtype
  return vtrace.from_importance_weights(
      log_rhos=log_rhos,
      discounts=discounts,
      rewards=rewards,
      values=target_values[:-1],
      bootstrap_value=target_values[-1],
      clip_rho_threshold=clip_rho_threshold,
      clip_pg_rho_threshold=clip_pg_rho_threshold,
      lambda_=_as_dtype(hparams.lambda_, dtype),
      alpha=_as_dtype(hparams.alpha_rho, dtype),
      alpha_c=_as_dtype(hparams.alpha_c, dtype),
      masks=masks)


def _quantile_value_loss(values: tf.Tensor, target_values: tf.Tensor,
                         returns: vtrace.VTraceReturns, log_rhos: tf.Tensor,
                         g_v: tf.Tensor, taus: tf.Tensor, kappa: float,
                         distributional_advantage: str,
                         clip_pg_rho_threshold: Optional[float],
                         masks: Optional[tf.Tensor]
                         ) -> Tuple[tf.Tensor, tf.Tensor]:
  """(value loss, advantages `[T, B]`) of a quantile value head `[T+1, B,
  N]`: the quantile Huber loss of each quantile against its own target,
  weighted by its g_v (Yin et al. (2023) eq. 9-10), and the advantage averaged over
  the quantiles, either of the per-quantile V-trace advantages ("vtrace")
  or of the clipped-IS-weighted (Gamma_q - Z_q) of Yin et al. (2023) eq. 11
  ("drmg")."""
  n = values.shape[-1]
  per_quantile = distributional.quantile_huber_loss(
      predictions=tf.reshape(values[:-1], [-1, n]),
      targets=tf.reshape(returns.vs, [-1, n]),
      taus=taus, kappa=kappa, reduce_quantiles=False)
  if masks is not None:
    per_quantile *= tf.reshape(masks, [-1, 1])
  value_loss = tf.reduce_sum(per_quantile * g_v)
  if distributional_advantage == "vtrace":
    return value_loss, tf.reduce_mean(returns.pg_advantages, axis=-1)
  is_ratio = tf.exp(log_rhos)
  if clip_pg_rho_threshold is not None:
    is_ratio = tf.minimum(_as_dtype(clip_pg_rho_threshold, values.dtype),
                          is_ratio)
  return value_loss, tf.reduce_mean(returns.vs - target_values[:-1],
                                    axis=-1) * is_ratio
