"""Finite-difference checks for the ops tests (exposed as fixtures).

Both compare tape derivatives with central differences through
`tests.finite_differences.check_gradient`, whose tolerance follows the error
model in docs/CONVENTIONS.md.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests import finite_differences as fd


def check_gradients(scalar_fn, inputs, names, seed=0):
  """Checks tape gradients of scalar_fn(**inputs) against finite differences,
  every entry of each input in `names` in turn.

  Args:
    scalar_fn: maps float64 tensors (keyword arguments) to a scalar tensor.
    inputs: dict of numpy float64 arrays.
    names: the inputs to differentiate with respect to.
    seed: randomness of the check itself (its noise line).
  """
  tensors = {k: tf.constant(v, tf.float64) for k, v in inputs.items()}
  with tf.GradientTape() as tape:
    tape.watch([tensors[name] for name in names])
    value = scalar_fn(**tensors)
  grads = tape.gradient(value, [tensors[name] for name in names])
  rng = np.random.default_rng(seed)
  for name, grad in zip(names, grads):
    assert grad is not None, f'no gradient flows to {name}'

    def perturbed(point, name=name):
      moved = dict(tensors, **{name: tf.constant(point[name], tf.float64)})
      return float(scalar_fn(**moved))

    fd.check_gradient(perturbed, {name: inputs[name]}, {name: grad.numpy()},
                      rng=rng, label=f'd/d {name}')


def check_second_order(scalar_fn, inputs, inner, outer, seed=0):
  """d/d outer of <w, d scalar_fn / d inner> against finite differences.

  The mixed derivative is computed with a tape inside a tape, as a
  meta-gradient would be.
  """
  tensors = {k: tf.constant(v, tf.float64) for k, v in inputs.items()}
  rng = np.random.default_rng(seed)
  weights = tf.constant(rng.normal(size=np.shape(inputs[inner])), tf.float64)

  def projected_gradient(tensors):
    with tf.GradientTape() as tape:
      tape.watch(tensors[inner])
      value = scalar_fn(**tensors)
    return tf.reduce_sum(weights * tape.gradient(value, tensors[inner]))

  with tf.GradientTape() as outer_tape:
    outer_tape.watch(tensors[outer])
    value = projected_gradient(tensors)
  mixed = outer_tape.gradient(value, tensors[outer])
  assert mixed is not None, f'no second-order gradient to {outer}'

  def perturbed(point):
    moved = dict(tensors, **{outer: tf.constant(point[outer], tf.float64)})
    return float(projected_gradient(moved))

  fd.check_gradient(perturbed, {outer: inputs[outer]}, {outer: mixed.numpy()},
                    rng=rng, label=f'd/d {outer} <w, d/d {inner}>')


@pytest.fixture(name='check_gradients')
def check_gradients_fixture():
  return check_gradients


@pytest.fixture(name='check_second_order')
def check_second_order_fixture():
  return check_second_order

