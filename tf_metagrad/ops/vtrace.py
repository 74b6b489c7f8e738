"""V-trace off-policy targets, classic and leaky, with optional quantile axis.

References:
  IMPALA (Espeholt et al. 2018) eq. 1 (V-trace target) and section 4 (the
  policy-gradient advantage weighted by a truncated importance weight).
  STAC (Zahavy et al. 2020) eq. 5 and supplement Algorithm 1: leaky V-trace,
  which mixes the truncated and untruncated importance weights with alpha.
  DrMG (Yin et al.) eq. 10: per-quantile discount and trace coefficient.

Time limits (Pardo et al. 2018, "Time limits in reinforcement learning"):
a truncated episode is not terminated, so its last transition bootstraps
from V(x_final), the value of the observation the time limit cut it at. The
actors write x_final as the observation of an extra padding step (mask 0,
discount 0, see `tf_metagrad.system.reverb_actor`); `masks` zeroes rho_t, c_t and
rho^pg_t there, which makes vs equal V(x_final) at the padding step and the
step before it bootstrap from it.

Nothing here stops gradients: meta-gradients flow through the targets to
`discounts`, `lambda_`, `alpha`, `alpha_c`, `rewards`, `values`,
`bootstrap_value` and `log_rhos`. Callers wrap the outputs in
`tf.stop_gradient` where a fixed target is wanted.
"""

import numbers
from typing import NamedTuple, Optional

import tensorflow as tf
from tensorflow.types.experimental import TensorLike
from tf_metagrad.ops import _checks
from tf_metagrad.ops import _recursion


class VTraceReturns(NamedTuple):
  """Output of `from_importance_weights`.

  Attributes:
    vs: `[T, B]` (or `[T, B, N]`) V-trace value targets v_s.
    pg_advantages: same shape, rho^pg_t (r_t + gamma_t v_{t+1} - V(x_t)).
  """
  vs: tf.Tensor
  pg_advantages: tf.Tensor


def _is_python_one(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool) and
          value == 1)


def _threshold(value, name, dtype):
  if value is None:
    return None
  if isinstance(value, numbers.Real) and value <= 0:
    raise ValueError(f'`{name}` must be positive or None, got {value}.')
  threshold = _checks.float_tensor(value, name, dtype)
  _checks.check_shape(threshold, name, [])
  return threshold


def _leaky_truncation(ratios, threshold, alpha):
  """(1 - alpha) * ratios + alpha * min(threshold, ratios), STAC eq. 5.

  Computed as min(threshold, ratios) + (1 - alpha) * excess with
  excess = max(ratios - threshold, 0), the same quantity rearranged. The
  product uses `multiply_no_nan`, so where 1 - alpha is exactly 0 a ratio that
  overflowed to inf contributes 0 rather than 0 * inf = NaN, and a tensor
  alpha of 1 agrees with the Python alpha of 1. `alpha=None` stands for that
  Python 1: the untruncated term is then left out, so classic V-trace is
  reproduced bit for bit.
  """
  if threshold is None:
    return ratios
  truncated = tf.minimum(threshold, ratios)
  if alpha is None:
    return truncated
  excess = ratios - truncated
  return truncated + tf.math.multiply_no_nan(excess, 1 - alpha)


def from_importance_weights(log_rhos: TensorLike,
                            discounts: TensorLike,
                            rewards: TensorLike,
                            values: TensorLike,
                            bootstrap_value: TensorLike,
                            clip_rho_threshold: Optional[TensorLike] = 1.0,
                            clip_pg_rho_threshold: Optional[TensorLike] = 1.0,
                            lambda_: TensorLike = 1.0,
                            alpha: TensorLike = 1.0,
                            alpha_c: Optional[TensorLike] = None,
                            masks: Optional[TensorLike] = None
                            ) -> VTraceReturns:
  r"""Leaky V-trace targets from log importance weights.

  With IS_t = exp(log_rhos_t) and V(x_T) = bootstrap_value
  (STAC supplement Algorithm 1; IMPALA eq. 1 when alpha = lambda_ = 1):

    rho_t = (1 - alpha) IS_t + alpha min(clip_rho_threshold, IS_t)
    c_t = lambda_t ((1 - alpha_c) IS_t + alpha_c min(1, IS_t))
    delta_t = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t))
    vs_t - V(x_t) = delta_t + gamma_t c_t (vs_{t+1} - V(x_{t+1}))
    pg_advantages_t = rho^pg_t (r_t + gamma_t vs_{t+1} - V(x_t)),  vs_T = V(x_T)

  where rho^pg uses `clip_pg_rho_threshold` in place of `clip_rho_threshold`
  and alpha_c = alpha unless `alpha_c` is given.

  Quantile axis (DrMG eq. 10): if `values` is `[T, B, N]`, every quantile is
  an independent V-trace problem sharing the importance weights; `[T, B]`
  (and `[T, B, 1]`) arguments are broadcast over N, and `discounts`,
  `lambda_`, `alpha` and `alpha_c` may carry a per-quantile axis.

  Args:
    log_rhos: `[T, B]` log pi(a_t|x_t) - log mu(a_t|x_t).
    discounts: `[T, B]` (or `[T, B, N]`) discount gamma_t applied to step t+1,
      0 where the episode ended.
    rewards: `[T, B]` (or `[T, B, N]`) rewards r_t.
    values: `[T, B]` or `[T, B, N]` estimates V(x_t); sets the dtype (float32
      or float64) that tensor arguments must share.
    bootstrap_value: `[B]` (or `[B, N]`) estimate V(x_T).
    clip_rho_threshold: rho-bar, positive scalar, or None for no truncation.
    clip_pg_rho_threshold: rho-bar of the policy-gradient weights, or None.
    lambda_: trace coefficient: a scalar, a tensor broadcastable to `[T, B]`,
      or with a quantile axis `[N]` or `[T, B, N]`. May require gradients.
    alpha: leaky mixing coefficient in [0, 1], same shapes as `lambda_`. 1 is
      classic V-trace, 0 uses the untruncated importance weights.
    alpha_c: optional separate leaky coefficient of the traces c_t (STAC's
      alpha_c, fig. 5b; `alpha` is then alpha_rho, used by rho_t and rho^pg).
      None (default) uses `alpha` for both, the main STAC agent.
    masks: optional `[T, B]` 1 at real steps, 0 at the padding steps that
      carry the final observation of a truncated episode: rho_t, c_t and
      rho^pg_t are 0 there, so vs_t = V(x_t), pg_advantages_t = 0, and the
      step before bootstraps from V(x_t) (Pardo et al. 2018). None (the
      default) is every step real, computed without the mask.

  Returns:
    `VTraceReturns(vs, pg_advantages)`, each shaped like `values`.

  Raises:
    ValueError: if a statically known shape or rank does not fit the layout,
      or a Python threshold is not positive.
    TypeError: if a tensor argument's dtype differs from `values`'.
  """
  values = _checks.float_tensor(values, 'values')
  layout = _checks.TimeMajorLayout.from_values(values)
  dtype = layout.dtype
  bootstrap_value = layout.bootstrap(bootstrap_value, 'bootstrap_value')
  log_rhos = layout.per_step(log_rhos, 'log_rhos', quantile_axis=False)
  discounts = layout.per_step(discounts, 'discounts')
  rewards = layout.per_step(rewards, 'rewards')
  lambda_ = layout.coefficient(lambda_, 'lambda_')
  alpha = None if _is_python_one(alpha) else layout.coefficient(alpha, 'alpha')
  if alpha_c is None:
    alpha_c = alpha
  elif _is_python_one(alpha_c):
    alpha_c = None
  else:
    alpha_c = layout.coefficient(alpha_c, 'alpha_c')
  rho_bar = _threshold(clip_rho_threshold, 'clip_rho_threshold', dtype)
  pg_rho_bar = _threshold(clip_pg_rho_threshold, 'clip_pg_rho_threshold',
                          dtype)

  ratios = tf.exp(log_rhos)
  rhos = _leaky_truncation(ratios, rho_bar, alpha)
  cs = lambda_ * _leaky_truncation(ratios, tf.constant(1, dtype), alpha_c)
  pg_rhos = _leaky_truncation(ratios, pg_rho_bar, alpha)
  if masks is not None:
    masks = layout.per_step(masks, 'masks', quantile_axis=False)
    # multiply_no_nan: a padding step's dummy action may have a ratio that
    # overflowed, which must not turn the zero weight into NaN.
    rhos, cs, pg_rhos = (tf.math.multiply_no_nan(w, masks)
                         for w in (rhos, cs, pg_rhos))

  next_values = tf.concat([values[1:], bootstrap_value[tf.newaxis]], axis=0)
  deltas = rhos * (rewards + discounts * next_values - values)
  vs = values + _recursion.reverse_linear_recursion(
      deltas, discounts * cs, tf.zeros_like(bootstrap_value))

  next_vs = tf.concat([vs[1:], bootstrap_value[tf.newaxis]], axis=0)
  pg_advantages = pg_rhos * (rewards + discounts * next_vs - values)
  return VTraceReturns(vs=vs, pg_advantages=pg_advantages)
