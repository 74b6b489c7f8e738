"""Learning-rate schedules and gradient clipping (differentiable)."""

from typing import List, Optional, Sequence, Tuple, Union

import tensorflow as tf


def linear_schedule(step: Union[float, tf.Tensor, tf.Variable], start: float,
                    end: float, total_steps: Union[int, float, tf.Tensor],
                    dtype: tf.DType = tf.float32) -> tf.Tensor:
  """Linearly anneals from `start` at step 0 to `end` at `total_steps`.

  STAC Table 3: Atari 6e-4 -> 0 and control 1e-3 -> 1e-4 over training.
  After `total_steps` the value stays at `end`.

  Args:
    step: current step (int or float, tensor or Python number).
    start: value at step 0.
    end: value at and after `total_steps`.
    total_steps: length of the annealing, > 0.
    dtype: floating dtype of the result.

  Returns:
    Scalar tensor start + (end - start) * min(step / total_steps, 1).

  Raises:
    ValueError: if a Python `total_steps` is not positive.
  """
  if not tf.is_tensor(total_steps) and total_steps <= 0:
    raise ValueError(f'total_steps must be > 0, got {total_steps}.')
  def cast(value):
    if tf.is_tensor(value) or isinstance(value, tf.Variable):
      return tf.cast(value, dtype)
    return tf.convert_to_tensor(value, dtype=dtype)

  fraction = tf.clip_by_value(cast(step) / cast(total_steps), 0.0, 1.0)
  start, end = cast(start), cast(end)
  return start + (end - start) * fraction


def global_norm(tensors: Sequence[Optional[tf.Tensor]]) -> tf.Tensor:
  """sqrt(sum of squares) over all tensors (Nones skipped).

  The result has the dtype of the first tensor.

  Unlike `tf.linalg.global_norm`, the derivative is 0 rather than NaN when
  every tensor is zero, so second-order meta-gradients through clipping stay
  finite.
  """
  tensors = [tf.convert_to_tensor(t) for t in tensors if t is not None]
  if not tensors:
    return tf.constant(0.0)
  dtype = tensors[0].dtype
  total = tf.add_n([tf.cast(tf.reduce_sum(tf.square(t)), dtype)
                    for t in tensors])
  positive = total > 0
  safe = tf.where(positive, total, tf.ones_like(total))
  return tf.where(positive, tf.sqrt(safe), tf.zeros_like(total))


def clip_by_global_norm(tensors: Sequence[Optional[tf.Tensor]],
                        max_norm: float
                        ) -> Tuple[List[Optional[tf.Tensor]], tf.Tensor]:
  """Rescales `tensors` so their global norm is at most `max_norm`.

  Differentiable everywhere (see `global_norm`); Nones pass through.

  Args:
    tensors: list of tensors (e.g. gradients), Nones allowed.
    max_norm: positive clipping threshold.

  Returns:
    (clipped tensors, global norm before clipping).

  Raises:
    ValueError: if a Python `max_norm` is not positive.
  """
  if not tf.is_tensor(max_norm) and max_norm <= 0:
    raise ValueError(f'max_norm must be > 0, got {max_norm}.')
  tensors = list(tensors)
  norm = global_norm(tensors)
  max_norm = tf.cast(max_norm, norm.dtype)
  scale = max_norm / tf.maximum(norm, max_norm)
  clipped = [None if t is None else t * tf.cast(scale, t.dtype)
             for t in tensors]
  return clipped, norm
