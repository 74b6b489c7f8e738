"""Tests for tf_metagrad.ops.vtrace against brute-force numpy references."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.ops import returns
from tf_metagrad.ops import vtrace
from tests import finite_differences as fd

T, B, N = 5, 3, 4
TERMINAL_STEP = 2  # discounts[2, 0] = 0: an episode ends inside the unroll.


def make_inputs(seed, quantiles=False):
  rng = np.random.default_rng(seed)
  # |log rho| >= 0.1 keeps IS away from the kink of min(1, IS), where finite
  # differences would not match the one-sided gradient.
  log_rhos = rng.uniform(0.1, 1.2, [T, B]) * rng.choice([-1.0, 1.0], [T, B])
  value_shape = [T, B, N] if quantiles else [T, B]
  discounts = rng.uniform(0.5, 1.0, value_shape)
  discounts[TERMINAL_STEP, 0] = 0.0
  return dict(
      log_rhos=log_rhos,
      discounts=discounts,
      rewards=rng.normal(size=[T, B]),
      values=rng.normal(size=value_shape),
      bootstrap_value=rng.normal(size=value_shape[1:]))


def reference_vtrace(log_rhos, discounts, rewards, values, bootstrap_value,
                     clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0,
                     lambda_=1.0, alpha=1.0, alpha_c=None):
  """Direct O(T^2) sums of STAC Algorithm 1; per-step args pre-broadcast."""
  ratios = np.exp(log_rhos)
  alpha_c = alpha if alpha_c is None else alpha_c

  def leaky(threshold, mix):
    truncated = ratios if threshold is None else np.minimum(threshold, ratios)
    return (1 - mix) * ratios + mix * truncated

  rhos = leaky(clip_rho_threshold, alpha)
  cs = lambda_ * leaky(1.0, alpha_c)
  pg_rhos = leaky(clip_pg_rho_threshold, alpha)
  all_values = np.concatenate([values, bootstrap_value[None]])
  num_steps = values.shape[0]
  vs = []
  for t in range(num_steps):
    total = values[t]
    for k in range(t, num_steps):
      trace = 1.0
      for i in range(t, k):
        trace = trace * discounts[i] * cs[i]
      total = total + trace * rhos[k] * (
          rewards[k] + discounts[k] * all_values[k + 1] - values[k])
    vs.append(total)
  vs = np.stack(vs)
  next_vs = np.concatenate([vs[1:], bootstrap_value[None]])
  pg_advantages = pg_rhos * (rewards + discounts * next_vs - values)
  return vs, pg_advantages


def reference_classic_vtrace(log_rhos, discounts, rewards, values,
                             bootstrap_value, clip_rho_threshold,
                             clip_pg_rho_threshold):
  """IMPALA eq. 1 written out, with min(clip, IS) and c = min(1, IS)."""
  ratios = np.exp(log_rhos)
  rhos = np.minimum(clip_rho_threshold, ratios)
  cs = np.minimum(1.0, ratios)
  all_values = np.concatenate([values, bootstrap_value[None]])
  vs = np.zeros_like(values)
  for t in range(T):
    vs[t] = values[t]
    for k in range(t, T):
      trace = np.prod(discounts[t:k] * cs[t:k], axis=0)
      vs[t] += trace * rhos[k] * (
          rewards[k] + discounts[k] * all_values[k + 1] - values[k])
  next_vs = np.concatenate([vs[1:], bootstrap_value[None]])
  pg = np.minimum(clip_pg_rho_threshold, ratios) * (
      rewards + discounts * next_vs - values)
  return vs, pg


def run(inputs, dtype=tf.float64, **kwargs):
  args = {k: tf.constant(v, dtype) for k, v in inputs.items()}
  result = vtrace.from_importance_weights(**args, **kwargs)
  return result.vs.numpy(), result.pg_advantages.numpy()


LAMBDA_PER_STEP = np.random.default_rng(7).uniform(0.3, 1.0, [T, B])


@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 2e-5),
                                        (tf.float64, 1e-12)])
@pytest.mark.parametrize('lambda_', [1.0, 0.7, 'per_step'])
@pytest.mark.parametrize('alpha', [1.0, 0.3, 0.0])
@pytest.mark.parametrize('clips', [(1.0, 1.0), (2.0, 0.5), (None, None)])
def test_matches_brute_force(dtype, rtol, lambda_, alpha, clips):
  inputs = make_inputs(seed=1)
  lambda_ = LAMBDA_PER_STEP if lambda_ == 'per_step' else lambda_
  kwargs = dict(clip_rho_threshold=clips[0], clip_pg_rho_threshold=clips[1],
                lambda_=lambda_, alpha=alpha)
  expected = reference_vtrace(**inputs, **kwargs)
  if isinstance(lambda_, np.ndarray):
    kwargs['lambda_'] = tf.constant(lambda_, dtype)
  actual = run(inputs, dtype, **kwargs)
  np.testing.assert_allclose(actual[0], expected[0], rtol=rtol, atol=rtol)
  np.testing.assert_allclose(actual[1], expected[1], rtol=rtol, atol=rtol)


@pytest.mark.parametrize('clips', [(1.0, 1.0), (2.0, 0.5)])
def test_alpha_one_is_classic_vtrace(clips):
  inputs = make_inputs(seed=2)
  expected = reference_classic_vtrace(**inputs, clip_rho_threshold=clips[0],
                                      clip_pg_rho_threshold=clips[1])
  kwargs = dict(clip_rho_threshold=clips[0], clip_pg_rho_threshold=clips[1])
  python_alpha = run(inputs, **kwargs)
  tensor_alpha = run(inputs, alpha=tf.constant(1.0, tf.float64),
                     lambda_=tf.constant(1.0, tf.float64), **kwargs)
  for actual in (python_alpha, tensor_alpha):
    np.testing.assert_allclose(actual[0], expected[0], rtol=1e-13)
    np.testing.assert_allclose(actual[1], expected[1], rtol=1e-13)


@pytest.mark.parametrize('alpha,alpha_c', [(0.3, 0.8), (1.0, 0.2),
                                           (0.6, 1.0)])
def test_separate_trace_alpha_matches_brute_force(alpha, alpha_c):
  inputs = make_inputs(seed=15)
  kwargs = dict(clip_rho_threshold=2.0, lambda_=0.9, alpha=alpha)
  expected = reference_vtrace(**inputs, **kwargs, alpha_c=alpha_c)
  actual = run(inputs, **kwargs, alpha_c=alpha_c)
  np.testing.assert_allclose(actual[0], expected[0], rtol=1e-12)
  np.testing.assert_allclose(actual[1], expected[1], rtol=1e-12)
  same = run(inputs, **dict(kwargs, alpha=tf.constant(alpha, tf.float64)),
             alpha_c=alpha)
  default = run(inputs, **dict(kwargs, alpha=tf.constant(alpha, tf.float64)))
  np.testing.assert_array_equal(same[0], default[0])
  np.testing.assert_array_equal(same[1], default[1])


def test_python_alpha_one_survives_overflowing_ratios():
  inputs = make_inputs(seed=2)
  inputs['log_rhos'][1, 1] = 1000.0  # exp overflows to inf
  vs, pg = run(inputs)
  assert np.all(np.isfinite(vs)) and np.all(np.isfinite(pg))


@pytest.mark.parametrize('dtype', [tf.float32, tf.float64])
@pytest.mark.parametrize('alpha_c', [None, 'tensor_one'])
def test_tensor_alpha_one_survives_overflowing_ratios(dtype, alpha_c):
  inputs = make_inputs(seed=2)
  inputs['log_rhos'][1, 1] = 1000.0  # exp overflows to inf
  kwargs = dict(clip_rho_threshold=2.0, clip_pg_rho_threshold=0.5,
                lambda_=0.9)
  python_vs, python_pg = run(inputs, dtype, **kwargs)
  one = tf.constant(1.0, dtype)
  tensor_vs, tensor_pg = run(
      inputs, dtype, alpha=one,
      alpha_c=None if alpha_c is None else one, **kwargs)
  assert np.all(np.isfinite(tensor_vs)) and np.all(np.isfinite(tensor_pg))
  np.testing.assert_array_equal(tensor_vs, python_vs)
  np.testing.assert_array_equal(tensor_pg, python_pg)
  # With alpha = 1 any ratio above the thresholds is truncated to them, so a
  # large finite log rho gives the reference the same targets.
  finite = dict(inputs, log_rhos=np.where(inputs['log_rhos'] > 100, 50.0,
                                          inputs['log_rhos']))
  rtol = 2e-5 if dtype == tf.float32 else 1e-12
  expected = reference_vtrace(**finite, **kwargs)
  np.testing.assert_allclose(tensor_vs, expected[0], rtol=rtol, atol=rtol)
  np.testing.assert_allclose(tensor_pg, expected[1], rtol=rtol, atol=rtol)


def test_on_policy_lambda_one_equals_discounted_returns():
  inputs = make_inputs(seed=3)
  inputs['log_rhos'] = np.zeros([T, B])
  vs, pg = run(inputs, alpha=0.4)
  args = {k: tf.constant(v) for k, v in inputs.items()}
  expected = returns.discounted_returns(args['rewards'], args['discounts'],
                                        args['bootstrap_value']).numpy()
  n_step = returns.n_step_returns(args['rewards'], args['discounts'],
                                  args['values'], args['bootstrap_value'],
                                  n=T).numpy()
  np.testing.assert_allclose(vs, expected, rtol=1e-12)
  np.testing.assert_allclose(n_step, expected, rtol=1e-12)
  next_vs = np.concatenate([expected[1:], inputs['bootstrap_value'][None]])
  np.testing.assert_allclose(
      pg,
      inputs['rewards'] + inputs['discounts'] * next_vs - inputs['values'],
      rtol=1e-12, atol=1e-12)


def test_on_policy_equals_lambda_returns():
  inputs = make_inputs(seed=4)
  inputs['log_rhos'] = np.zeros([T, B])
  vs, _ = run(inputs, lambda_=tf.constant(LAMBDA_PER_STEP), alpha=0.5)
  args = {k: tf.constant(v) for k, v in inputs.items()}
  expected = returns.lambda_returns(
      args['rewards'], args['discounts'], args['values'],
      args['bootstrap_value'], tf.constant(LAMBDA_PER_STEP)).numpy()
  np.testing.assert_allclose(vs, expected, rtol=1e-12, atol=1e-12)


def test_episode_boundary_cuts_the_trace():
  inputs = make_inputs(seed=5)
  vs, pg = run(inputs, alpha=0.5, lambda_=0.9)
  changed = {k: v.copy() for k, v in inputs.items()}
  changed['values'][TERMINAL_STEP + 1:, 0] += 10.0
  changed['rewards'][TERMINAL_STEP + 1:, 0] += 10.0
  changed['log_rhos'][TERMINAL_STEP + 1:, 0] += 0.5
  changed['bootstrap_value'][0] += 10.0
  changed_vs, changed_pg = run(changed, alpha=0.5, lambda_=0.9)
  cut = slice(0, TERMINAL_STEP + 1)
  np.testing.assert_array_equal(changed_vs[cut, 0], vs[cut, 0])
  np.testing.assert_array_equal(changed_pg[cut, 0], pg[cut, 0])
  after = slice(TERMINAL_STEP + 1, None)
  assert not np.allclose(changed_vs[after, 0], vs[after, 0])
  # At the terminal step the target is just the (weighted) last reward.
  rho = min(1.0, np.exp(inputs['log_rhos'][TERMINAL_STEP, 0]))
  rho = 0.5 * np.exp(inputs['log_rhos'][TERMINAL_STEP, 0]) + 0.5 * rho
  value = inputs['values'][TERMINAL_STEP, 0]
  np.testing.assert_allclose(
      vs[TERMINAL_STEP, 0],
      value + rho * (inputs['rewards'][TERMINAL_STEP, 0] - value), rtol=1e-12)


def test_quantile_axis_equals_per_quantile_scalar_op():
  inputs = make_inputs(seed=6, quantiles=True)
  rng = np.random.default_rng(6)
  lambda_ = rng.uniform(0.3, 1.0, [N])
  vs, pg = run(inputs, lambda_=tf.constant(lambda_), alpha=0.6,
               clip_rho_threshold=2.0)
  assert vs.shape == pg.shape == (T, B, N)
  for n in range(N):
    scalar_inputs = dict(inputs)
    scalar_inputs['discounts'] = inputs['discounts'][..., n]
    scalar_inputs['values'] = inputs['values'][..., n]
    scalar_inputs['bootstrap_value'] = inputs['bootstrap_value'][..., n]
    vs_n, pg_n = run(scalar_inputs, lambda_=float(lambda_[n]), alpha=0.6,
                     clip_rho_threshold=2.0)
    np.testing.assert_allclose(vs[..., n], vs_n, rtol=1e-12)
    np.testing.assert_allclose(pg[..., n], pg_n, rtol=1e-12)


def test_quantile_axis_per_step_lambda_and_brute_force():
  inputs = make_inputs(seed=8, quantiles=True)
  lambda_ = np.random.default_rng(8).uniform(0.3, 1.0, [T, B, N])
  vs, pg = run(inputs, lambda_=tf.constant(lambda_), alpha=0.2)
  broadcast = dict(inputs)
  broadcast['log_rhos'] = inputs['log_rhos'][..., None]
  broadcast['rewards'] = inputs['rewards'][..., None]
  expected = reference_vtrace(**broadcast, lambda_=lambda_, alpha=0.2)
  np.testing.assert_allclose(vs, expected[0], rtol=1e-12)
  np.testing.assert_allclose(pg, expected[1], rtol=1e-12)


def leaky_vtrace_objective(weights_vs, weights_pg):
  def objective(lambda_, alpha, alpha_c=None, **inputs):
    result = vtrace.from_importance_weights(**inputs, lambda_=lambda_,
                                            alpha=alpha, alpha_c=alpha_c)
    return (tf.reduce_sum(weights_vs * result.vs) +
            tf.reduce_sum(weights_pg * result.pg_advantages))
  return objective


@pytest.mark.parametrize('quantiles', [False, True])
def test_gradients_match_finite_differences(check_gradients, quantiles,
                                           fd_seed):
  seed = fd.shaken(9, fd_seed)
  inputs = make_inputs(seed=seed, quantiles=quantiles)
  rng = np.random.default_rng(seed)
  shape = inputs['values'].shape
  inputs['lambda_'] = rng.uniform(0.3, 1.0, [N] if quantiles else [T, B])
  inputs['alpha'] = np.array(0.4)
  objective = leaky_vtrace_objective(rng.normal(size=shape),
                                     rng.normal(size=shape))
  check_gradients(objective, inputs, list(inputs), seed=seed)


def test_scalar_lambda_gradient(check_gradients, fd_seed):
  seed = fd.shaken(10, fd_seed)
  inputs = make_inputs(seed=seed)
  inputs['lambda_'] = np.array(0.8)
  inputs['alpha'] = np.array(0.7)
  inputs['alpha_c'] = np.random.default_rng(seed).uniform(0.2, 0.9, [T, B])
  rng = np.random.default_rng(seed)
  objective = leaky_vtrace_objective(rng.normal(size=[T, B]),
                                     rng.normal(size=[T, B]))
  check_gradients(objective, inputs,
                  ['lambda_', 'alpha', 'alpha_c', 'discounts'], seed=seed)


@pytest.mark.parametrize('inner,outer', [('values', 'alpha'),
                                         ('values', 'lambda_'),
                                         ('discounts', 'lambda_'),
                                         ('log_rhos', 'alpha'),
                                         ('alpha', 'discounts'),
                                         ('values', 'alpha_c')])
def test_second_order_matches_finite_differences(check_second_order, inner,
                                                 outer, fd_seed):
  seed = fd.shaken(11, fd_seed)
  inputs = make_inputs(seed=seed)
  inputs['lambda_'] = np.array(0.8)
  inputs['alpha'] = np.array(0.4)
  inputs['alpha_c'] = np.array(0.6)
  rng = np.random.default_rng(seed)
  objective = leaky_vtrace_objective(rng.normal(size=[T, B]),
                                     rng.normal(size=[T, B]))
  check_second_order(objective, inputs, inner=inner, outer=outer, seed=seed)


def meta_gradients(log_rhos, discounts, rewards, values, bootstrap_value,
                   lambda_, alpha):
  """Forward pass, first- and second-order gradients, as a learner would."""
  with tf.GradientTape() as outer_tape:
    outer_tape.watch([alpha, lambda_])
    with tf.GradientTape() as tape:
      tape.watch(values)
      result = vtrace.from_importance_weights(
          log_rhos, discounts, rewards, values, bootstrap_value,
          lambda_=lambda_, alpha=alpha)
      loss = tf.reduce_sum(tf.square(tf.stop_gradient(result.vs) - values))
      loss += tf.reduce_sum(result.pg_advantages * log_rhos)
    grad_values = tape.gradient(loss, values)
    meta_loss = tf.reduce_sum(grad_values * result.vs)
  grad_alpha, grad_lambda = outer_tape.gradient(meta_loss, [alpha, lambda_])
  return result.vs, result.pg_advantages, grad_values, grad_alpha, grad_lambda


@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 1e-5),
                                        (tf.float64, 1e-12)])
def test_jit_matches_eager(dtype, rtol):
  inputs = make_inputs(seed=12)
  args = [tf.constant(inputs[k], dtype)
          for k in ('log_rhos', 'discounts', 'rewards', 'values',
                    'bootstrap_value')]
  args += [tf.constant(0.9, dtype), tf.constant(0.5, dtype)]
  eager = meta_gradients(*args)
  jitted = tf.function(meta_gradients, jit_compile=True,
                       autograph=False)(*args)
  for e, j in zip(eager, jitted):
    assert j.dtype == dtype
    assert np.all(np.isfinite(j.numpy()))
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=rtol, atol=rtol)
  expected = reference_vtrace(**inputs, lambda_=0.9, alpha=0.5)
  np.testing.assert_allclose(jitted[0].numpy(), expected[0], rtol=rtol,
                             atol=rtol)


def test_unknown_time_dimension_falls_back_to_scan():
  inputs = make_inputs(seed=13)
  step = tf.TensorSpec([None, B], tf.float64)
  scalar = tf.TensorSpec([], tf.float64)
  signature = [step, step, step, step, tf.TensorSpec([B], tf.float64),
               scalar, scalar]
  dynamic = tf.function(meta_gradients, input_signature=signature,
                        autograph=False)
  args = [tf.constant(inputs[k]) for k in ('log_rhos', 'discounts', 'rewards',
                                           'values', 'bootstrap_value')]
  args += [tf.constant(0.9, tf.float64), tf.constant(0.5, tf.float64)]
  graph_def = dynamic.get_concrete_function().graph.as_graph_def()
  assert any(node.op in ('While', 'StatelessWhile')
             for function in graph_def.library.function
             for node in function.node_def)
  for d, e in zip(dynamic(*args), meta_gradients(*args)):
    np.testing.assert_allclose(d.numpy(), e.numpy(), rtol=1e-12, atol=1e-12)


def test_bad_shapes_raise():
  inputs = make_inputs(seed=14)
  args = {k: tf.constant(v) for k, v in inputs.items()}

  def call(**overrides):
    return vtrace.from_importance_weights(**dict(args, **overrides))

  with pytest.raises(ValueError,
                     match=r'`bootstrap_value` must have shape \[B\] = \[3\], '
                     r'got \[5, 3\]'):
    call(bootstrap_value=args['values'])
  with pytest.raises(ValueError, match=r'`values` must have shape \[T, B\] or '
                     r'\[T, B, N\], got \[5\]'):
    call(values=args['values'][:, 0])
  with pytest.raises(ValueError, match=r'`rewards` must have shape \[T, B\] = '
                     r'\[5, 3\], got \[5, 2\]'):
    call(rewards=args['rewards'][:, :2])
  with pytest.raises(ValueError, match=r'`discounts` must have shape'):
    call(discounts=args['discounts'][:4])
  with pytest.raises(ValueError, match=r'`lambda_` must be broadcastable .* '
                     r'got \[3\]'):
    call(lambda_=tf.ones([3], tf.float64))
  with pytest.raises(TypeError, match=r'`discounts` must have dtype float64, '
                     r'got float32'):
    call(discounts=tf.ones([T, B], tf.float32))
  with pytest.raises(ValueError, match=r'`clip_rho_threshold` must be '
                     'positive'):
    call(clip_rho_threshold=-1.0)
  quantile_values = tf.zeros([T, B, N], tf.float64)
  with pytest.raises(ValueError, match=r'`log_rhos` must have shape \[T, B\] = '
                     r'\[5, 3\], got \[5, 3, 4\]'):
    call(values=quantile_values, bootstrap_value=tf.zeros([B, N], tf.float64),
         log_rhos=quantile_values)
  with pytest.raises(ValueError, match=r'`bootstrap_value` must have shape '
                     r'\[B, N\] = \[3, 4\], got \[3\]'):
    call(values=quantile_values)
