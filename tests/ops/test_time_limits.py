"""Masked padding steps: returns bootstrap across a time-limit truncation.

The layout is the actors' (see `tf_metagrad.system.reverb_actor`): copy 0 is
truncated at step PAD - 1 (discount 1 there), step PAD is a padding step
whose observation is x_final (mask 0, discount 0, reward 0) and a new
episode starts at PAD + 1. The references cut the unroll at the padding
step into two independent problems: [0, PAD) bootstrapped from
V(x_PAD) = V(x_final), and [PAD + 1, T) bootstrapped from V(x_T); at the
padding step itself the target is V(x_final) and the advantage 0.
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.ops import returns
from tf_metagrad.ops import vtrace
from tests import finite_differences as fd
from tests.ops import test_returns
from tests.ops import test_vtrace

T, B, N = 7, 3, 4
PAD = 3


def make_inputs(seed, quantiles=False):
  rng = np.random.default_rng(seed)
  value_shape = [T, B, N] if quantiles else [T, B]
  # |log rho| >= 0.1 keeps IS off the kink of min(1, IS) (finite differences).
  log_rhos = rng.uniform(0.1, 1.2, [T, B]) * rng.choice([-1.0, 1.0], [T, B])
  discounts = rng.uniform(0.5, 1.0, value_shape)
  rewards = rng.normal(size=[T, B])
  masks = np.ones([T, B])
  masks[PAD, 0] = 0.0
  discounts[PAD, 0] = 0.0
  rewards[PAD, 0] = 0.0
  return dict(log_rhos=log_rhos, discounts=discounts, rewards=rewards,
              values=rng.normal(size=value_shape),
              bootstrap_value=rng.normal(size=value_shape[1:]), masks=masks)


def by_segments(reference, inputs, per_step, padding_target):
  """`reference` on the pieces of column 0 around the padding step and on
  the other columns whole; `padding_target(values)` fills the padding step.

  Args:
    reference: maps the inputs of one piece (numpy, time-major, the keys
      of `per_step` plus values and bootstrap_value) to a tuple of arrays.
    inputs: `make_inputs(...)`.
    per_step: the names of the per-step inputs besides values.
    padding_target: the outputs at the padding step, from V(x_final).
  """
  values, bootstrap = inputs['values'], inputs['bootstrap_value']

  def piece(columns, steps, bootstrap_value):
    args = {k: inputs[k][steps][:, columns] for k in per_step}
    return reference(values=values[steps][:, columns],
                     bootstrap_value=bootstrap_value, **args)

  rest = piece(slice(1, None), slice(None), bootstrap[1:])
  before = piece(slice(0, 1), slice(0, PAD), values[PAD][:1])
  after = piece(slice(0, 1), slice(PAD + 1, None), bootstrap[:1])
  at = padding_target(values[PAD:PAD + 1, :1])
  return tuple(
      np.concatenate([np.concatenate([b, p, a]), r], axis=1)
      for b, p, a, r in zip(before, at, after, rest))


def reference_lambda(rewards, discounts, values, bootstrap_value, lambda_):
  """G_t = sum_k (prod_{t<=i<k} gamma_i lambda_i)
  (r_k + gamma_k (1 - lambda_k) V(x_{k+1})) + (prod gamma_i lambda_i) V(x_L)
  over a piece of length L (Sutton & Barto 2018, section 12.8, unrolled)."""
  length = len(values)
  all_values = np.concatenate([values, bootstrap_value[None]])
  result = []
  for t in range(length):
    total, trace = 0.0, 1.0
    for k in range(t, length):
      total = total + trace * (rewards[k] + discounts[k] * (
          1 - lambda_[k]) * all_values[k + 1])
      trace = trace * discounts[k] * lambda_[k]
    result.append(total + trace * bootstrap_value)
  return (np.stack(result),)


def tensors(inputs, names):
  return {k: tf.constant(inputs[k], tf.float64) for k in names}


VTRACE_ARGS = ('log_rhos', 'discounts', 'rewards', 'values',
               'bootstrap_value', 'masks')


@pytest.mark.parametrize('quantiles', [False, True])
@pytest.mark.parametrize('lambda_,alpha', [(1.0, 1.0), (0.8, 0.4)])
def test_vtrace_bootstraps_from_the_final_observation(quantiles, lambda_,
                                                      alpha):
  inputs = make_inputs(seed=1, quantiles=quantiles)
  result = vtrace.from_importance_weights(
      **tensors(inputs, VTRACE_ARGS), lambda_=lambda_, alpha=alpha)
  broadcast = dict(inputs)
  if quantiles:
    broadcast['log_rhos'] = inputs['log_rhos'][..., None]
    broadcast['rewards'] = inputs['rewards'][..., None]

  def reference(**args):
    return test_vtrace.reference_vtrace(**args, lambda_=lambda_, alpha=alpha)

  vs, pg = by_segments(
      reference, broadcast, ('log_rhos', 'discounts', 'rewards'),
      lambda v: (v, np.zeros_like(v)))
  np.testing.assert_allclose(result.vs.numpy(), vs, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(result.pg_advantages.numpy(), pg, rtol=1e-12,
                             atol=1e-12)
  # The truncated step's target is the one-step bootstrap from x_final plus
  # nothing beyond it: V + rho (r + gamma V(x_final) - V).
  ratio = np.exp(broadcast['log_rhos'][PAD - 1, 0])
  rho = (1 - alpha) * ratio + alpha * np.minimum(1.0, ratio)
  v = inputs['values']
  want = v[PAD - 1, 0] + rho * (broadcast['rewards'][PAD - 1, 0] + inputs[
      'discounts'][PAD - 1, 0] * v[PAD, 0] - v[PAD - 1, 0])
  np.testing.assert_allclose(result.vs.numpy()[PAD - 1, 0], want, rtol=1e-12)


@pytest.mark.parametrize('quantiles', [False, True])
def test_lambda_returns_bootstrap_from_the_final_observation(quantiles):
  inputs = make_inputs(seed=2, quantiles=quantiles)
  lambda_ = np.random.default_rng(3).uniform(0.3, 1.0, [T, B])
  inputs['lambda_'] = lambda_[..., None] if quantiles else lambda_
  got = returns.lambda_returns(**tensors(
      inputs, ('rewards', 'discounts', 'values', 'bootstrap_value',
               'lambda_', 'masks'))).numpy()
  if quantiles:
    inputs['rewards'] = inputs['rewards'][..., None]
  expected, = by_segments(
      reference_lambda, inputs,
      ('rewards', 'discounts', 'lambda_'), lambda v: (v,))
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
  # G at the truncated step is r + gamma V(x_final), whatever lambda.
  np.testing.assert_allclose(
      got[PAD - 1, 0], inputs['rewards'][PAD - 1, 0] + inputs['discounts'][
          PAD - 1, 0] * inputs['values'][PAD, 0], rtol=1e-12)


@pytest.mark.parametrize('quantiles', [False, True])
@pytest.mark.parametrize('n', [1, 2, 4, T])
def test_n_step_returns_bootstrap_from_the_final_observation(quantiles, n):
  inputs = make_inputs(seed=4, quantiles=quantiles)
  got = returns.n_step_returns(**tensors(
      inputs, ('rewards', 'discounts', 'values', 'bootstrap_value',
               'masks')), n=n).numpy()
  if quantiles:
    inputs['rewards'] = inputs['rewards'][..., None]
  expected, = by_segments(
      lambda **args: (test_returns.reference_n_step(**args, n=n),), inputs,
      ('rewards', 'discounts'), lambda v: (v,))
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_all_ones_mask_is_bit_identical_to_no_mask():
  for quantiles in (False, True):
    inputs = make_inputs(seed=5, quantiles=quantiles)
    inputs['masks'] = np.ones([T, B])
    args = {k: tf.constant(v, tf.float32) for k, v in inputs.items()}
    no_mask = dict(args)
    del no_mask['masks']
    pairs = [
        (vtrace.from_importance_weights(**args, lambda_=0.9, alpha=0.5),
         vtrace.from_importance_weights(**no_mask, lambda_=0.9, alpha=0.5))]
    del args['log_rhos'], no_mask['log_rhos']
    pairs.append((returns.lambda_returns(**args, lambda_=0.9),
                  returns.lambda_returns(**no_mask, lambda_=0.9)))
    pairs.append((returns.n_step_returns(**args, n=3),
                  returns.n_step_returns(**no_mask, n=3)))
    for masked, plain in pairs:
      for a, b in zip(tf.nest.flatten(masked), tf.nest.flatten(plain)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_overflowing_ratio_at_a_padding_step_stays_finite():
  inputs = make_inputs(seed=6)
  inputs['log_rhos'][PAD, 0] = 1e4  # exp overflows to inf.
  result = vtrace.from_importance_weights(
      **tensors(inputs, VTRACE_ARGS), alpha=0.5)
  assert np.isfinite(result.vs.numpy()).all()
  assert np.isfinite(result.pg_advantages.numpy()).all()


@pytest.mark.parametrize('quantiles', [False, True])
def test_masked_gradients_match_finite_differences(quantiles, fd_seed):
  """d/d every input of the three masked ops together (a few entries of
  each and random directions through all of them, to keep it cheap)."""
  seed = fd.shaken(12, fd_seed)
  inputs = make_inputs(seed=seed, quantiles=quantiles)
  rng = np.random.default_rng(seed)
  shape = inputs['values'].shape
  masks = tf.constant(inputs.pop('masks'), tf.float64)
  inputs['lambda_'] = rng.uniform(0.3, 1.0, [N] if quantiles else [T, B])
  inputs['alpha'] = np.array(0.4)
  w_vs, w_pg, w_lambda, w_n = (rng.normal(size=shape) for _ in range(4))

  @tf.function(autograph=False)
  def objective(args):
    result = vtrace.from_importance_weights(
        args['log_rhos'], args['discounts'], args['rewards'], args['values'],
        args['bootstrap_value'], lambda_=args['lambda_'],
        alpha=args['alpha'], masks=masks)
    plain = [args[k] for k in ('rewards', 'discounts', 'values',
                               'bootstrap_value')]
    lam = returns.lambda_returns(*plain, args['lambda_'], masks=masks)
    n_step = returns.n_step_returns(*plain, 3, masks=masks)
    return (tf.reduce_sum(w_vs * result.vs)
            + tf.reduce_sum(w_pg * result.pg_advantages)
            + tf.reduce_sum(w_lambda * lam) + tf.reduce_sum(w_n * n_step))

  point = tensors(inputs, list(inputs))
  with tf.GradientTape() as tape:
    tape.watch(point)
    value = objective(point)
  grads = {k: g.numpy() for k, g in tape.gradient(value, point).items()}
  fd.check_gradient(
      lambda p: float(objective(tensors(p, list(p)))), inputs, grads,
      entries=4, directions=3, rng=rng, label='masked returns')


def test_bad_mask_shape_raises():
  inputs = make_inputs(seed=7)
  inputs['masks'] = np.ones([T, B + 1])
  with pytest.raises(ValueError, match='masks'):
    vtrace.from_importance_weights(**tensors(inputs, VTRACE_ARGS))
  del inputs['log_rhos']
  with pytest.raises(ValueError, match='masks'):
    returns.lambda_returns(**tensors(inputs, (
        'rewards', 'discounts', 'values', 'bootstrap_value', 'masks')),
                           lambda_=0.5)
