"""On-policy return estimators: lambda-, n-step and discounted returns.

All are time-major. `values[t]` is V(x_t) for t in [0, T) and
`bootstrap_value` is V(x_T). `discounts[t]` is the discount applied to step
t+1 (0 where the episode ended), so multiplying discounts cuts returns at
episode boundaries inside the unroll. A trailing quantile axis N is supported
(DrMG, Yin et al., eq. 10): `[T, B]` and `[T, B, 1]` arguments are then
broadcast over N.

Time limits: a truncated episode is not terminated (Pardo et al. 2018,
"Time limits in reinforcement learning"), so returns must bootstrap from
V(x_final), the observation the limit cut the episode at. The actors write
x_final as the observation of an extra padding step (mask 0, discount 0,
see `tf_metagrad.system.reverb_actor`). With `masks`, the return at a padding
step is V(x_t) itself: the step is treated as reward V(x_t) and discount 0,
so every horizon that reaches it stops there with V(x_final).

Gradients flow to every input, including `discounts` and `lambda_`, so these
targets can be meta-learned; callers stop gradients where they want fixed
targets.

Reference: Sutton & Barto (2018), Reinforcement Learning: An Introduction,
section 7.1 (n-step returns) and section 12.8 (recursive lambda-return with
variable lambda and discount).
"""

import numbers
from typing import Optional

import tensorflow as tf
from tensorflow.types.experimental import TensorLike
from tf_metagrad.ops import _checks
from tf_metagrad.ops import _recursion


def _mask_padding(layout, rewards, discounts, values, masks):
  """(rewards, discounts) with padding steps as reward V(x_t), discount 0.

  A return that reaches a padding step t then ends there with V(x_t), and the
  return at t is V(x_t) (see the module docstring).
  """
  masks = layout.per_step(masks, 'masks', quantile_axis=False)
  return (masks * rewards + (1 - masks) * values, masks * discounts)


def lambda_returns(rewards: TensorLike, discounts: TensorLike,
                   values: TensorLike, bootstrap_value: TensorLike,
                   lambda_: TensorLike,
                   masks: Optional[TensorLike] = None) -> tf.Tensor:
  """Recursive lambda-returns with per-step discount and lambda.

    G_t = r_t + gamma_t ((1 - lambda_t) V(x_{t+1}) + lambda_t G_{t+1}),
    G_T = V(x_T) = bootstrap_value,

  so G_{T-1} = r_{T-1} + gamma_{T-1} V(x_T). lambda = 1 gives the discounted
  return bootstrapped from V(x_T); lambda = 0 gives one-step TD targets.

  Args:
    rewards: `[T, B]` (or `[T, B, N]`).
    discounts: `[T, B]` (or `[T, B, N]`).
    values: `[T, B]` or `[T, B, N]`, V(x_t); sets the dtype.
    bootstrap_value: `[B]` (or `[B, N]`), V(x_T).
    lambda_: a scalar, a tensor broadcastable to `[T, B]`, or with a quantile
      axis `[N]` or `[T, B, N]`.
    masks: optional `[T, B]`, 0 at padding steps (G_t = V(x_t) there, see
      the module docstring), 1 elsewhere; None: every step is real.

  Returns:
    `[T, B]` (or `[T, B, N]`) lambda-returns.

  Raises:
    ValueError: on shapes or ranks that do not fit the layout.
    TypeError: if a tensor argument's dtype differs from `values`'.
  """
  values = _checks.float_tensor(values, 'values')
  layout = _checks.TimeMajorLayout.from_values(values)
  bootstrap_value = layout.bootstrap(bootstrap_value, 'bootstrap_value')
  rewards = layout.per_step(rewards, 'rewards')
  discounts = layout.per_step(discounts, 'discounts')
  lambda_ = layout.coefficient(lambda_, 'lambda_')
  if masks is not None:
    rewards, discounts = _mask_padding(layout, rewards, discounts, values,
                                       masks)

  next_values = tf.concat([values[1:], bootstrap_value[tf.newaxis]], axis=0)
  return _recursion.reverse_linear_recursion(
      rewards + discounts * (1 - lambda_) * next_values,
      discounts * lambda_, bootstrap_value)


def n_step_returns(rewards: TensorLike, discounts: TensorLike,
                   values: TensorLike, bootstrap_value: TensorLike,
                   n: int, masks: Optional[TensorLike] = None) -> tf.Tensor:
  """n-step returns, truncated at the end of the unroll.

    G_t = sum_{k=0}^{m-1} (prod_{i<k} gamma_{t+i}) r_{t+k}
          + (prod_{i<m} gamma_{t+i}) V(x_{t+m}),   m = min(n, T - t),

  with V(x_T) = bootstrap_value.

  Args:
    rewards: `[T, B]` (or `[T, B, N]`).
    discounts: `[T, B]` (or `[T, B, N]`).
    values: `[T, B]` or `[T, B, N]`, V(x_t); sets the dtype.
    bootstrap_value: `[B]` (or `[B, N]`), V(x_T).
    n: Python int >= 1. n >= T gives discounted returns.
    masks: optional `[T, B]`, 0 at padding steps (G_t = V(x_t) there and
      horizons stop at them, see the module docstring), 1 elsewhere; None:
      every step is real.

  Returns:
    `[T, B]` (or `[T, B, N]`) n-step returns.

  Raises:
    ValueError: if `n` is not a positive int or on mismatched shapes.
    TypeError: if a tensor argument's dtype differs from `values`'.
  """
  if (not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1):
    raise ValueError(f'`n` must be a Python int >= 1, got {n!r}.')
  values = _checks.float_tensor(values, 'values')
  layout = _checks.TimeMajorLayout.from_values(values)
  bootstrap_value = layout.bootstrap(bootstrap_value, 'bootstrap_value')
  rewards = layout.per_step(rewards, 'rewards')
  discounts = layout.per_step(discounts, 'discounts')
  if masks is not None:
    rewards, discounts = _mask_padding(layout, rewards, discounts, values,
                                       masks)

  num_steps = _checks.static_dim((values, 0), (rewards, 0), (discounts, 0))
  if num_steps is None:
    num_steps = tf.shape(values)[0]
  else:
    n = max(1, min(n, num_steps))  # Longer horizons all truncate to V(x_T).
  # Past the end of the unroll, pad with reward 0, discount 1 and
  # V = bootstrap_value, which makes every horizon stop at V(x_T).
  padding = [[0, n - 1]] + [[0, 0]] * (rewards.shape.rank - 1)
  padded_rewards = tf.pad(rewards, padding)
  padded_discounts = tf.pad(discounts, padding, constant_values=1)
  padded_values = tf.concat(
      [values, tf.repeat(bootstrap_value[tf.newaxis], n, axis=0)], axis=0)
  returns = padded_values[n:n + num_steps]
  for k in reversed(range(n)):
    returns = (padded_rewards[k:k + num_steps] +
               padded_discounts[k:k + num_steps] * returns)
  return returns


def discounted_returns(rewards: TensorLike, discounts: TensorLike,
                       bootstrap_value: TensorLike) -> tf.Tensor:
  """Discounted returns G_t = r_t + gamma_t G_{t+1}, G_T = bootstrap_value.

  Args:
    rewards: `[T, B]` (or `[T, B, N]`).
    discounts: `[T, B]` (or `[T, B, N]`).
    bootstrap_value: `[B]` or `[B, N]`; its rank selects the quantile layout
      and it sets the dtype.

  Returns:
    `[T, B]` (or `[T, B, N]`) discounted returns.

  Raises:
    ValueError: on shapes or ranks that do not fit the layout.
    TypeError: if a tensor argument's dtype differs from `bootstrap_value`'s.
  """
  bootstrap_value = _checks.float_tensor(bootstrap_value, 'bootstrap_value')
  rewards = _checks.float_tensor(rewards, 'rewards', bootstrap_value.dtype)
  discounts = _checks.float_tensor(discounts, 'discounts',
                                   bootstrap_value.dtype)
  layout = _checks.TimeMajorLayout.from_bootstrap(
      bootstrap_value, _checks.static_dim((rewards, 0), (discounts, 0)))
  rewards = layout.per_step(rewards, 'rewards')
  discounts = layout.per_step(discounts, 'discounts')
  return _recursion.reverse_linear_recursion(rewards, discounts,
                                             bootstrap_value)
