"""Finite-difference helpers shared by the ops tests (exposed as fixtures)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.numerics import assert_close_relative

_EPS = 1e-6


def central_difference(fn, x, eps=_EPS):
  """Gradient of the float-valued `fn` at the numpy array `x`, O(eps^2)."""
  x = np.array(x, dtype=np.float64)
  grad = np.zeros_like(x)
  for index in np.ndindex(*x.shape):
    plus, minus = x.copy(), x.copy()
    plus[index] += eps
    minus[index] -= eps
    grad[index] = (fn(plus) - fn(minus)) / (2 * eps)
  return grad


def check_gradients(scalar_fn, inputs, names, rtol=1e-6):
  """Checks tape gradients of scalar_fn(**inputs) against finite differences.

  Args:
    scalar_fn: maps float64 tensors (keyword arguments) to a scalar tensor.
    inputs: dict of numpy float64 arrays.
    names: the inputs to differentiate with respect to.
    rtol: bound on the norm-wise relative error.
  """
  tensors = {k: tf.constant(v, tf.float64) for k, v in inputs.items()}
  with tf.GradientTape() as tape:
    tape.watch([tensors[name] for name in names])
    value = scalar_fn(**tensors)
  grads = tape.gradient(value, [tensors[name] for name in names])
  for name, grad in zip(names, grads):
    assert grad is not None, f'no gradient flows to {name}'

    def perturbed(x, name=name):
      moved = dict(tensors)
      moved[name] = tf.constant(x, tf.float64)
      return float(scalar_fn(**moved))

    numerical = central_difference(perturbed, inputs[name])
    assert np.linalg.norm(numerical) > 0, f'{name}: degenerate test'
    try:
      assert_close_relative(grad, numerical, rtol)
    except AssertionError as error:
      raise AssertionError(f'gradient w.r.t. {name}: {error}') from error


def check_second_order(scalar_fn, inputs, inner, outer, seed=0, rtol=1e-6):
  """d/d outer of <w, d scalar_fn / d inner> against finite differences.

  The mixed derivative is computed with a tape inside a tape, as a
  meta-gradient would be.
  """
  tensors = {k: tf.constant(v, tf.float64) for k, v in inputs.items()}
  weights = tf.constant(
      np.random.default_rng(seed).normal(size=np.shape(inputs[inner])),
      tf.float64)

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

  def perturbed(x):
    moved = dict(tensors)
    moved[outer] = tf.constant(x, tf.float64)
    return float(projected_gradient(moved))

  numerical = central_difference(perturbed, inputs[outer])
  assert np.linalg.norm(numerical) > 0, 'degenerate second-order test'
  assert_close_relative(mixed, numerical, rtol)


@pytest.fixture(name='check_gradients')
def check_gradients_fixture():
  return check_gradients


@pytest.fixture(name='check_second_order')
def check_second_order_fixture():
  return check_second_order


@pytest.fixture(name='assert_close_relative')
def assert_close_relative_fixture():
  return assert_close_relative
