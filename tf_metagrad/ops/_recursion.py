"""Backward linear recursion over time, the core of every return estimator."""

import tensorflow as tf


def reverse_linear_recursion(offsets: tf.Tensor, factors: tf.Tensor,
                             last: tf.Tensor) -> tf.Tensor:
  """Solves x_t = offsets_t + factors_t * x_{t+1} for t = T-1, ..., 0.

  With a static T the loop is unrolled in Python: under XLA this becomes a
  straight-line graph, and it is differentiable to any order without the
  division that `tf.math.cumprod` gradients perform (which yields NaN as soon
  as a discount is 0). Without a static T it falls back to a reverse
  `tf.scan`.

  Args:
    offsets: `[T, ...]`.
    factors: `[T, ...]`, broadcastable per step against `last`.
    last: x_T, with the full per-step shape of the result.

  Returns:
    `[T, ...]` tensor of x_0, ..., x_{T-1}; each step has the shape of `last`.
  """
  num_steps = tf.compat.dimension_value(
      offsets.shape[:1].merge_with(factors.shape[:1])[0])
  if num_steps is None:
    return tf.scan(lambda acc, step: step[0] + step[1] * acc,
                   (offsets, factors), initializer=last, reverse=True)
  if num_steps == 0:
    return last[tf.newaxis][:0]
  result = []
  x = last
  for offset, factor in zip(reversed(tf.unstack(offsets, num=num_steps)),
                            reversed(tf.unstack(factors, num=num_steps))):
    x = offset + factor * x
    result.append(x)
  return tf.stack(result[::-1])
