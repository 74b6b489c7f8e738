"""Tests for tf_metagrad.ops.returns against brute-force numpy references."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.ops import returns
from tests import finite_differences as fd

T, B, N = 6, 3, 4
TERMINAL_STEP = 2


def make_inputs(seed, quantiles=False):
  rng = np.random.default_rng(seed)
  value_shape = [T, B, N] if quantiles else [T, B]
  discounts = rng.uniform(0.5, 1.0, value_shape)
  discounts[TERMINAL_STEP, 0] = 0.0
  return dict(
      rewards=rng.normal(size=[T, B]),
      discounts=discounts,
      values=rng.normal(size=value_shape),
      bootstrap_value=rng.normal(size=value_shape[1:]))


def value_at(values, bootstrap_value, k):
  return bootstrap_value if k == len(values) else values[k]


def reference_n_step(rewards, discounts, values, bootstrap_value, n):
  """Sums at most n discounted rewards, then bootstraps (truncated at T)."""
  result = []
  for t in range(len(values)):
    total, trace = 0.0, 1.0
    end = min(t + n, len(values))
    for k in range(t, end):
      total = total + trace * rewards[k]
      trace = trace * discounts[k]
    result.append(total + trace * value_at(values, bootstrap_value, end))
  return np.stack(result)


def reference_discounted(rewards, discounts, bootstrap_value):
  result = []
  for t in range(len(rewards)):
    total, trace = 0.0, 1.0
    for k in range(t, len(rewards)):
      total = total + trace * rewards[k]
      trace = trace * discounts[k]
    result.append(total + trace * bootstrap_value)
  return np.stack(result)


def reference_lambda_sum(rewards, discounts, values, bootstrap_value, lambda_):
  """Unrolled recursion with per-step lambda: an explicit O(T^2) sum.

  G_t = sum_k (prod_{t<=i<k} gamma_i lambda_i)
        (r_k + gamma_k (1 - lambda_k) V(x_{k+1}))
        + (prod_{t<=i<T} gamma_i lambda_i) V(x_T).
  """
  lambda_ = np.broadcast_to(lambda_, np.broadcast(discounts, values).shape)
  result = []
  for t in range(T):
    total, trace = 0.0, 1.0
    for k in range(t, T):
      next_value = value_at(values, bootstrap_value, k + 1)
      total = total + trace * (
          rewards[k] + discounts[k] * (1 - lambda_[k]) * next_value)
      trace = trace * discounts[k] * lambda_[k]
    result.append(total + trace * bootstrap_value)
  return np.stack(result)


def reference_lambda_mixture(rewards, discounts, values, bootstrap_value,
                             lambda_):
  """Constant lambda: (1 - lambda) sum_n lambda^(n-1) G^(n), tail to G^(T-t)."""
  n_step = {n: reference_n_step(rewards, discounts, values, bootstrap_value, n)
            for n in range(1, T + 1)}
  result = []
  for t in range(T):
    horizon = T - t
    total = lambda_**(horizon - 1) * n_step[horizon][t]
    for n in range(1, horizon):
      total = total + (1 - lambda_) * lambda_**(n - 1) * n_step[n][t]
    result.append(total)
  return np.stack(result)


def tensors(inputs, dtype=tf.float64):
  return {k: tf.constant(v, dtype) for k, v in inputs.items()}


@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 2e-5),
                                        (tf.float64, 1e-12)])
def test_lambda_returns_per_step_lambda_matches_brute_force(dtype, rtol):
  inputs = make_inputs(seed=1)
  lambda_ = np.random.default_rng(1).uniform(0, 1, [T, B])
  actual = returns.lambda_returns(**tensors(inputs, dtype),
                                  lambda_=tf.constant(lambda_, dtype))
  assert actual.dtype == dtype
  np.testing.assert_allclose(
      actual.numpy(), reference_lambda_sum(**inputs, lambda_=lambda_),
      rtol=rtol, atol=rtol)


@pytest.mark.parametrize('lambda_', [0.0, 0.5, 0.95, 1.0])
def test_lambda_returns_constant_lambda_is_n_step_mixture(lambda_):
  inputs = make_inputs(seed=2)
  actual = returns.lambda_returns(**tensors(inputs), lambda_=lambda_)
  np.testing.assert_allclose(
      actual.numpy(), reference_lambda_mixture(**inputs, lambda_=lambda_),
      rtol=1e-12, atol=1e-12)


def test_lambda_one_is_discounted_and_lambda_zero_is_td():
  inputs = make_inputs(seed=3)
  args = tensors(inputs)
  discounted = returns.discounted_returns(args['rewards'], args['discounts'],
                                          args['bootstrap_value'])
  np.testing.assert_allclose(
      returns.lambda_returns(**args, lambda_=1.0).numpy(), discounted.numpy(),
      rtol=1e-12)
  next_values = np.concatenate([inputs['values'][1:],
                                inputs['bootstrap_value'][None]])
  td = inputs['rewards'] + inputs['discounts'] * next_values
  np.testing.assert_allclose(
      returns.lambda_returns(**args, lambda_=0.0).numpy(), td, rtol=1e-12)
  np.testing.assert_allclose(
      returns.n_step_returns(**args, n=1).numpy(), td, rtol=1e-12)


@pytest.mark.parametrize('n', [1, 2, 3, T, T + 3])
@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 2e-5),
                                        (tf.float64, 1e-12)])
def test_n_step_returns_match_brute_force(n, dtype, rtol):
  inputs = make_inputs(seed=4)
  actual = returns.n_step_returns(**tensors(inputs, dtype), n=n)
  np.testing.assert_allclose(actual.numpy(),
                             reference_n_step(**inputs, n=n),
                             rtol=rtol, atol=rtol)


def test_long_n_step_equals_discounted_returns():
  inputs = make_inputs(seed=5)
  args = tensors(inputs)
  discounted = returns.discounted_returns(args['rewards'], args['discounts'],
                                          args['bootstrap_value'])
  np.testing.assert_allclose(
      discounted.numpy(),
      reference_discounted(inputs['rewards'], inputs['discounts'],
                           inputs['bootstrap_value']), rtol=1e-12)
  for n in (T, T + 5):
    np.testing.assert_allclose(
        returns.n_step_returns(**args, n=n).numpy(), discounted.numpy(),
        rtol=1e-12)


def test_episode_boundary_cuts_all_returns():
  inputs = make_inputs(seed=6)
  changed = {k: v.copy() for k, v in inputs.items()}
  changed['rewards'][TERMINAL_STEP + 1:, 0] += 10.0
  changed['values'][TERMINAL_STEP + 1:, 0] += 10.0
  changed['bootstrap_value'][0] += 10.0
  cut = slice(0, TERMINAL_STEP + 1)
  ops = {
      'lambda': lambda a: returns.lambda_returns(**a, lambda_=0.8),
      'n_step': lambda a: returns.n_step_returns(**a, n=4),
      'discounted': lambda a: returns.discounted_returns(
          a['rewards'], a['discounts'], a['bootstrap_value']),
  }
  for name, op in ops.items():
    before = op(tensors(inputs)).numpy()
    after = op(tensors(changed)).numpy()
    np.testing.assert_array_equal(after[cut, 0], before[cut, 0], err_msg=name)
    assert not np.allclose(after[TERMINAL_STEP + 1:, 0],
                           before[TERMINAL_STEP + 1:, 0]), name
    np.testing.assert_allclose(before[TERMINAL_STEP, 0],
                               inputs['rewards'][TERMINAL_STEP, 0],
                               rtol=1e-12, err_msg=name)


def test_quantile_axis_equals_per_quantile_scalar_op():
  inputs = make_inputs(seed=7, quantiles=True)
  lambda_ = np.random.default_rng(7).uniform(0, 1, [N])
  args = tensors(inputs)
  quantile_results = {
      'lambda': returns.lambda_returns(**args, lambda_=tf.constant(lambda_)),
      'n_step': returns.n_step_returns(**args, n=2),
      'discounted': returns.discounted_returns(
          args['rewards'], args['discounts'], args['bootstrap_value']),
  }
  for result in quantile_results.values():
    assert result.shape == (T, B, N)
  for n in range(N):
    scalar = tensors(dict(
        rewards=inputs['rewards'], discounts=inputs['discounts'][..., n],
        values=inputs['values'][..., n],
        bootstrap_value=inputs['bootstrap_value'][..., n]))
    scalar_results = {
        'lambda': returns.lambda_returns(**scalar, lambda_=float(lambda_[n])),
        'n_step': returns.n_step_returns(**scalar, n=2),
        'discounted': returns.discounted_returns(
            scalar['rewards'], scalar['discounts'],
            scalar['bootstrap_value']),
    }
    for name, result in scalar_results.items():
      np.testing.assert_allclose(quantile_results[name][..., n].numpy(),
                                 result.numpy(), rtol=1e-12, err_msg=name)


def test_quantile_rewards_and_shared_discounts():
  rng = np.random.default_rng(8)
  rewards = rng.normal(size=[T, B, N])
  discounts = rng.uniform(0.5, 1, [T, B])
  values = rng.normal(size=[T, B, N])
  bootstrap_value = rng.normal(size=[B, N])
  actual = returns.lambda_returns(
      tf.constant(rewards), tf.constant(discounts), tf.constant(values),
      tf.constant(bootstrap_value), 0.7)
  expected = reference_lambda_sum(rewards, discounts[..., None], values,
                                  bootstrap_value, 0.7)
  np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12)
  actual = returns.discounted_returns(tf.constant(rewards),
                                      tf.constant(discounts),
                                      tf.constant(bootstrap_value))
  np.testing.assert_allclose(
      actual.numpy(),
      reference_discounted(rewards, discounts[..., None], bootstrap_value),
      rtol=1e-12)


def test_size_one_quantile_axis_broadcasts():
  inputs = make_inputs(seed=17, quantiles=True)
  shared = inputs['discounts'][..., :1]
  args = tensors(dict(inputs, discounts=shared))
  expected = returns.lambda_returns(
      **dict(args, discounts=tf.constant(shared[..., 0])), lambda_=0.7)
  np.testing.assert_array_equal(
      returns.lambda_returns(**args, lambda_=0.7).numpy(), expected.numpy())
  with pytest.raises(ValueError, match=r'`discounts` must have shape \[T, B\] '
                     r'= \[6, 3\] or \[T, B, N\] = \[6, 3, 4\], got '
                     r'\[6, 3, 2\]'):
    returns.lambda_returns(**dict(args, discounts=tf.ones([T, B, 2],
                                                          tf.float64)),
                           lambda_=0.7)


def weighted(op, seed, shape):
  weights = tf.constant(np.random.default_rng(seed).normal(size=shape))
  return lambda **kwargs: tf.reduce_sum(weights * op(**kwargs))


@pytest.mark.parametrize('quantiles', [False, True])
def test_gradients_match_finite_differences(check_gradients, quantiles,
                                           fd_seed):
  seed = fd.shaken(9, fd_seed)
  inputs = make_inputs(seed=seed, quantiles=quantiles)
  shape = inputs['values'].shape
  inputs['lambda_'] = np.random.default_rng(seed).uniform(
      0.2, 0.9, [N] if quantiles else [T, B])
  check_gradients(weighted(returns.lambda_returns, seed, shape), inputs,
                  list(inputs), seed=seed)
  del inputs['lambda_']
  n_step = lambda **kwargs: returns.n_step_returns(**kwargs, n=3)
  check_gradients(weighted(n_step, seed + 1, shape), inputs, list(inputs),
                  seed=seed)
  del inputs['values']
  check_gradients(weighted(returns.discounted_returns, seed + 2, shape),
                  inputs, list(inputs), seed=seed)


def test_scalar_lambda_gradient(check_gradients, fd_seed):
  seed = fd.shaken(12, fd_seed)
  inputs = make_inputs(seed=seed)
  inputs['lambda_'] = np.array(0.6)
  check_gradients(weighted(returns.lambda_returns, seed, [T, B]), inputs,
                  ['lambda_'], seed=seed)


@pytest.mark.parametrize('inner,outer', [('values', 'lambda_'),
                                         ('discounts', 'lambda_'),
                                         ('lambda_', 'discounts')])
def test_second_order_matches_finite_differences(check_second_order, inner,
                                                 outer, fd_seed):
  seed = fd.shaken(13, fd_seed)
  inputs = make_inputs(seed=seed)
  inputs['lambda_'] = np.array(0.6)
  objective = weighted(returns.lambda_returns, seed, [T, B])
  squared = lambda **kwargs: objective(**kwargs)**2
  check_second_order(squared, inputs, inner=inner, outer=outer, seed=seed)


def squared_n_step(**kwargs):
  return weighted(returns.n_step_returns, 18, [T, B])(**kwargs, n=3)**2


def squared_discounted(**kwargs):
  return weighted(returns.discounted_returns, 19, [T, B])(**kwargs)**2


@pytest.mark.parametrize('op,inner,outer', [
    (squared_n_step, 'discounts', 'discounts'),
    (squared_n_step, 'values', 'discounts'),
    (squared_n_step, 'bootstrap_value', 'discounts'),
    (squared_n_step, 'discounts', 'values'),
    (squared_discounted, 'discounts', 'discounts'),
    (squared_discounted, 'bootstrap_value', 'discounts'),
    (squared_discounted, 'discounts', 'rewards'),
])
def test_n_step_and_discounted_second_order(check_second_order, op, inner,
                                            outer, fd_seed):
  seed = fd.shaken(18, fd_seed)
  inputs = make_inputs(seed=seed)
  if op is squared_discounted:
    del inputs['values']
  check_second_order(op, inputs, inner=inner, outer=outer, seed=seed)


def all_returns(rewards, discounts, values, bootstrap_value, lambda_):
  with tf.GradientTape() as tape:
    tape.watch([discounts, lambda_])
    outputs = (
        returns.lambda_returns(rewards, discounts, values, bootstrap_value,
                               lambda_),
        returns.n_step_returns(rewards, discounts, values, bootstrap_value, 3),
        returns.discounted_returns(rewards, discounts, bootstrap_value))
    total = sum(tf.reduce_sum(tf.square(o)) for o in outputs)
  return outputs + tuple(tape.gradient(total, [discounts, lambda_]))


@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 1e-5),
                                        (tf.float64, 1e-12)])
def test_jit_matches_eager(dtype, rtol):
  inputs = make_inputs(seed=14, quantiles=True)
  args = [tf.constant(inputs[k], dtype)
          for k in ('rewards', 'discounts', 'values', 'bootstrap_value')]
  args.append(tf.constant([0.2, 0.5, 0.8, 1.0], dtype))
  eager = all_returns(*args)
  jitted = tf.function(all_returns, jit_compile=True,
                       autograph=False)(*args)
  for e, j in zip(eager, jitted):
    assert j.dtype == dtype
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=rtol, atol=rtol)


def test_unknown_time_dimension():
  inputs = make_inputs(seed=15)
  step = tf.TensorSpec([None, B], tf.float64)
  dynamic = tf.function(all_returns, autograph=False, input_signature=[
      step, step, step, tf.TensorSpec([B], tf.float64),
      tf.TensorSpec([], tf.float64)])
  args = [tf.constant(inputs[k])
          for k in ('rewards', 'discounts', 'values', 'bootstrap_value')]
  args.append(tf.constant(0.7, tf.float64))
  for d, e in zip(dynamic(*args), all_returns(*args)):
    np.testing.assert_allclose(d.numpy(), e.numpy(), rtol=1e-12)


def test_bad_arguments_raise():
  args = tensors(make_inputs(seed=16))
  with pytest.raises(ValueError, match=r'`n` must be a Python int >= 1, got 0'):
    returns.n_step_returns(**args, n=0)
  with pytest.raises(ValueError, match=r'`bootstrap_value` must have shape '
                     r'\[B\] = \[3\], got \[3, 1\]'):
    returns.lambda_returns(**dict(
        args, bootstrap_value=args['bootstrap_value'][:, None]), lambda_=0.5)
  with pytest.raises(ValueError, match=r'`rewards` must have shape \[T, B\] = '
                     r'\[6, 3\], got \[5, 3\]'):
    returns.n_step_returns(**dict(args, rewards=args['rewards'][1:]), n=2)
  with pytest.raises(ValueError, match=r'`discounts` must have shape \[T, B\] '
                     r'= \[6, 3\], got \[6\]'):
    returns.discounted_returns(args['rewards'], args['discounts'][:, 0],
                               args['bootstrap_value'])
  with pytest.raises(ValueError, match=r'`bootstrap_value` must have shape '
                     r'\[B\] or \[B, N\], got \[\]'):
    returns.discounted_returns(args['rewards'], args['discounts'],
                               args['bootstrap_value'][0])
  with pytest.raises(ValueError, match=r'`lambda_` must be broadcastable'):
    returns.lambda_returns(**args, lambda_=tf.ones([T, B, 2], tf.float64))
  with pytest.raises(TypeError, match=r'`rewards` must have dtype float64'):
    returns.lambda_returns(**dict(args, rewards=tf.ones([T, B])), lambda_=0.5)
