"""Quantile regression for distributional value learning.

References:
  QR-DQN (Dabney et al. 2018): quantile midpoints tau_i = (2i + 1) / (2N)
  and the quantile Huber loss.
  Yin et al. (2023) eqs. 1-3: the same loss used to train the quantile value heads.
"""

import numbers

import tensorflow as tf
from tensorflow.types.experimental import TensorLike
from tf_metagrad.ops import _checks


def quantile_midpoints(num_quantiles: int,
                       dtype: tf.DType = tf.float32) -> tf.Tensor:
  """Quantile midpoints tau_i = (2i + 1) / (2N), i = 0..N-1 (QR-DQN).

  Args:
    num_quantiles: N, a Python int >= 1.
    dtype: floating dtype of the result.

  Returns:
    `[N]` tensor of increasing taus in (0, 1).

  Raises:
    ValueError: if `num_quantiles` is not a positive int.
  """
  if (not isinstance(num_quantiles, numbers.Integral) or
      isinstance(num_quantiles, bool) or num_quantiles < 1):
    raise ValueError('`num_quantiles` must be a Python int >= 1, got '
                     f'{num_quantiles!r}.')
  return (tf.range(num_quantiles, dtype=dtype) + 0.5) / num_quantiles


def quantile_huber_loss(predictions: TensorLike, targets: TensorLike,
                        taus: TensorLike, kappa: float = 1.0,
                        reduce_quantiles: bool = True) -> tf.Tensor:
  """Quantile Huber loss between predicted and target quantiles.

  With u_ij = targets_j - predictions_i (QR-DQN; Yin et al. (2023) eqs. 1-3):

    H_kappa(u) = 0.5 u^2                   if |u| <= kappa
               = kappa (|u| - kappa / 2)   otherwise
    loss = sum_i mean_j |tau_i - 1{u_ij < 0}| H_kappa(u_ij).

  H_kappa is not divided by kappa, and kappa = 0 means H_0(u) = |u| (the pure
  quantile regression loss). Gradients flow into `targets` as well; callers
  stop them when the targets are meant to be fixed.

  Args:
    predictions: `[..., N]` predicted quantiles; any number of leading
      dimensions (`[B, N]`, `[T, B, N]`, ...). Sets the dtype.
    targets: `[..., M]` target samples with the same leading dimensions.
    taus: `[N]` quantile levels of `predictions`, or `[..., N]` (e.g. sampled
      per example).
    kappa: Python number >= 0, the Huber threshold.
    reduce_quantiles: if False, skip the sum over i and return the loss of
      each predicted quantile (e.g. to weight quantiles differently).

  Returns:
    `[...]` loss per leading index (`[B]` for `[B, N]` predictions), or
    `[..., N]` if `reduce_quantiles` is False.

  Raises:
    ValueError: on mismatched shapes or a negative kappa.
    TypeError: if `kappa` is not a Python number or dtypes differ.
  """
  if not isinstance(kappa, numbers.Real) or isinstance(kappa, bool):
    raise TypeError(f'`kappa` must be a Python number, got {kappa!r}.')
  if kappa < 0:
    raise ValueError(f'`kappa` must be >= 0, got {kappa}.')
  predictions = _checks.float_tensor(predictions, 'predictions')
  dtype = predictions.dtype
  targets = _checks.float_tensor(targets, 'targets', dtype)
  taus = _checks.float_tensor(taus, 'taus', dtype)
  _checks.require_known_rank(predictions, 'predictions')
  rank = predictions.shape.rank
  if rank < 1:
    raise ValueError('`predictions` must have shape [..., N], got a scalar.')
  lead = predictions.shape[:-1]
  _checks.require_known_rank(targets, 'targets')
  if (targets.shape.rank != rank or
      not targets.shape[:-1].is_compatible_with(lead)):
    raise ValueError(
        '`targets` must have shape [..., M] with the leading dimensions '
        f'{_checks.shape_str(lead)} of `predictions`, got '
        f'{_checks.shape_str(targets.shape)}.')
  _checks.require_known_rank(taus, 'taus')
  num_quantiles = predictions.shape[-1:]
  if not (taus.shape.is_compatible_with(num_quantiles) or
          taus.shape.is_compatible_with(predictions.shape)):
    raise ValueError(
        f'`taus` must have shape [N] = {_checks.shape_str(num_quantiles)} '
        'or the shape of `predictions` '
        f'{_checks.shape_str(predictions.shape)}, got '
        f'{_checks.shape_str(taus.shape)}.')

  # [..., N, M]: target sample j minus predicted quantile i.
  errors = targets[..., tf.newaxis, :] - predictions[..., :, tf.newaxis]
  abs_errors = tf.abs(errors)
  if kappa == 0:
    huber = abs_errors
  else:
    # With q = min(|u|, kappa), 0.5 q^2 + kappa (|u| - q) is H_kappa in both
    # regimes: one branch-free expression, smooth enough to differentiate
    # twice.
    quadratic = tf.minimum(abs_errors, tf.constant(kappa, dtype))
    huber = 0.5 * quadratic * quadratic + kappa * (abs_errors - quadratic)
  weights = tf.abs(taus[..., tf.newaxis] - tf.cast(errors < 0, dtype))
  per_quantile = tf.reduce_mean(weights * huber, axis=-1)
  if not reduce_quantiles:
    return per_quantile
  return tf.reduce_sum(per_quantile, axis=-1)
