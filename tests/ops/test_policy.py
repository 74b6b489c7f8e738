"""Tests for tf_metagrad.ops.policy against numpy and tfp references."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tf_metagrad.ops import policy
from tests import finite_differences as fd

tfd = tfp.distributions
T, B, A = 2, 3, 4


def make_logits(seed, shape=(T, B, A)):
  return np.random.default_rng(seed).normal(size=shape) * 2


def numpy_log_softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# Categorical policies.


@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 1e-5),
                                        (tf.float64, 1e-12)])
def test_categorical_ops_match_numpy(dtype, rtol):
  p_logits, q_logits = make_logits(1), make_logits(2)
  actions = np.random.default_rng(1).integers(0, A, size=(T, B))
  log_p, log_q = numpy_log_softmax(p_logits), numpy_log_softmax(q_logits)
  expected_log_prob = np.take_along_axis(log_p, actions[..., None], -1)[..., 0]
  expected_entropy = -(np.exp(log_p) * log_p).sum(-1)
  expected_kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)
  p, q = tf.constant(p_logits, dtype), tf.constant(q_logits, dtype)
  results = [policy.categorical_log_prob(p, tf.constant(actions)),
             policy.categorical_entropy(p), policy.categorical_kl(p, q)]
  for result, expected in zip(
      results, [expected_log_prob, expected_entropy, expected_kl]):
    assert result.dtype == dtype and result.shape == (T, B)
    np.testing.assert_allclose(result.numpy(), expected, rtol=rtol)


def test_categorical_ops_match_tfp():
  p_logits, q_logits = make_logits(3), make_logits(4)
  actions = np.random.default_rng(3).integers(0, A, size=(T, B))
  p, q = tfd.Categorical(logits=p_logits), tfd.Categorical(logits=q_logits)
  np.testing.assert_allclose(
      policy.categorical_log_prob(p_logits, actions).numpy(),
      p.log_prob(actions).numpy(), rtol=1e-12)
  np.testing.assert_allclose(policy.categorical_entropy(p_logits).numpy(),
                             p.entropy().numpy(), rtol=1e-12)
  np.testing.assert_allclose(
      policy.categorical_kl(p_logits, q_logits).numpy(),
      tfd.kl_divergence(p, q).numpy(), rtol=1e-10)
  assert np.all(policy.categorical_kl(p_logits, p_logits).numpy() == 0)


def test_categorical_gradients(check_gradients, check_second_order, fd_seed):
  seed = fd.shaken(5, fd_seed)
  actions = tf.constant(
      np.random.default_rng(seed).integers(0, A, size=(T, B)))
  weights = tf.constant(np.random.default_rng(seed).normal(size=(3, T, B)))

  def objective(p_logits, q_logits):
    return (tf.reduce_sum(weights[0] * policy.categorical_log_prob(
        p_logits, actions)) +
            tf.reduce_sum(weights[1] * policy.categorical_entropy(p_logits)) +
            tf.reduce_sum(weights[2] * policy.categorical_kl(p_logits,
                                                             q_logits)))

  inputs = dict(p_logits=make_logits(seed), q_logits=make_logits(seed + 1))
  check_gradients(objective, inputs, ['p_logits', 'q_logits'], seed=seed)
  # A sparse softmax cross-entropy would refuse this second derivative.
  check_second_order(objective, inputs, inner='p_logits', outer='p_logits',
                     seed=seed)
  check_second_order(objective, inputs, inner='p_logits', outer='q_logits',
                     seed=seed)


def test_policy_gradient_loss():
  rng = np.random.default_rng(7)
  log_probs = tf.constant(rng.normal(size=(T, B)))
  advantages = tf.constant(rng.normal(size=(T, B)))
  with tf.GradientTape() as tape:
    tape.watch([log_probs, advantages])
    loss = policy.policy_gradient_loss(log_probs, advantages)
    total = tf.reduce_sum(loss)
  np.testing.assert_array_equal(loss.numpy(),
                                -log_probs.numpy() * advantages.numpy())
  grad_log_probs, grad_advantages = tape.gradient(total,
                                                  [log_probs, advantages])
  # No stop-gradient inside: both inputs receive gradients.
  np.testing.assert_array_equal(grad_log_probs.numpy(), -advantages.numpy())
  np.testing.assert_array_equal(grad_advantages.numpy(), -log_probs.numpy())


# Tanh-squashed diagonal Gaussians.


def make_gaussian(seed, shape=(T, B, A)):
  rng = np.random.default_rng(seed)
  return rng.normal(size=shape) * 0.5, rng.uniform(0.3, 1.2, size=shape)


def tfp_squashed(mean, std):
  return tfd.Independent(
      tfd.TransformedDistribution(tfd.Normal(mean, std), tfp.bijectors.Tanh()),
      reinterpreted_batch_ndims=1)


@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 1e-4),
                                        (tf.float64, 1e-10)])
def test_squashed_log_prob_matches_tfp(dtype, rtol):
  mean, std = make_gaussian(8)
  actions = np.random.default_rng(8).uniform(-0.95, 0.95, size=(T, B, A))
  actual = policy.squashed_gaussian_log_prob(
      tf.constant(mean, dtype), tf.constant(std, dtype),
      tf.constant(actions, dtype))
  assert actual.dtype == dtype and actual.shape == (T, B)
  expected = tfp_squashed(mean, std).log_prob(actions).numpy()
  np.testing.assert_allclose(actual.numpy(), expected, rtol=rtol)


@pytest.mark.parametrize('mean,std', [(0.0, 0.5), (0.7, 0.9), (-1.5, 0.4)])
def test_squashed_density_integrates_to_one(mean, std):
  grid = np.linspace(-1, 1, 400001)[1:-1]
  log_prob = policy.squashed_gaussian_log_prob(
      tf.fill([grid.size, 1], tf.constant(mean, tf.float64)),
      tf.fill([grid.size, 1], tf.constant(std, tf.float64)),
      tf.constant(grid[:, None]))
  density = np.exp(log_prob.numpy())
  mass = np.sum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))
  np.testing.assert_allclose(mass, 1.0, atol=1e-4)


def test_sample_uses_pre_squash_value():
  mean, std = make_gaussian(9)
  noise = np.random.default_rng(9).normal(size=mean.shape)
  noise[0, 0, 0] = 9.0  # tanh rounds to exactly 1 in float32
  for dtype in (tf.float32, tf.float64):
    action, log_prob = policy.squashed_gaussian_sample(
        tf.constant(mean, dtype), tf.constant(std, dtype),
        noise=tf.constant(noise, dtype))
    pre_squash = mean + std * noise
    np.testing.assert_allclose(action.numpy(), np.tanh(pre_squash), rtol=1e-6)
    expected = (tfd.Normal(mean, std).log_prob(pre_squash).numpy() -
                np.log1p(-np.tanh(pre_squash)**2)).sum(-1)
    assert np.all(np.isfinite(log_prob.numpy()))
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-5)
  assert action.numpy()[0, 0, 0] < 1  # float64 still resolves it
  interior = np.abs(np.tanh(pre_squash)).max(axis=-1) < 0.99
  np.testing.assert_allclose(
      policy.squashed_gaussian_log_prob(mean, std, action).numpy()[interior],
      log_prob.numpy()[interior], rtol=1e-9)


def test_sample_with_seed_is_deterministic_and_distributed():
  mean, std = tf.constant([[0.3, -0.2]]), tf.constant([[0.5, 1.0]])
  mean = tf.tile(mean, [20000, 1])
  std = tf.tile(std, [20000, 1])
  first, first_log_prob = policy.squashed_gaussian_sample(mean, std,
                                                          seed=[1, 2])
  second, _ = policy.squashed_gaussian_sample(mean, std, seed=[1, 2])
  np.testing.assert_array_equal(first.numpy(), second.numpy())
  pre_squash = np.arctanh(first.numpy().astype(np.float64))
  np.testing.assert_allclose(pre_squash.mean(0), [0.3, -0.2], atol=0.02)
  np.testing.assert_allclose(pre_squash.std(0), [0.5, 1.0], atol=0.02)
  assert first_log_prob.shape == (20000,)


def test_gaussian_kls_match_tfp():
  mean_p, std_p = make_gaussian(10)
  mean_q, std_q = make_gaussian(11)
  p = tfd.Independent(tfd.Normal(mean_p, std_p), 1)
  q = tfd.Independent(tfd.Normal(mean_q, std_q), 1)
  standard = tfd.Independent(tfd.Normal(np.zeros_like(mean_p),
                                        np.ones_like(std_p)), 1)
  np.testing.assert_allclose(
      policy.gaussian_kl(mean_p, std_p, mean_q, std_q).numpy(),
      tfd.kl_divergence(p, q).numpy(), rtol=1e-10)
  np.testing.assert_allclose(
      policy.gaussian_kl_to_standard_normal(mean_p, std_p).numpy(),
      tfd.kl_divergence(p, standard).numpy(), rtol=1e-10)
  np.testing.assert_allclose(
      policy.gaussian_kl_to_standard_normal(mean_p, std_p).numpy(),
      policy.gaussian_kl(mean_p, std_p, np.zeros_like(mean_p),
                         np.ones_like(std_p)).numpy(), rtol=1e-12)


def test_gaussian_kl_equals_monte_carlo_kl_of_squashed_policies():
  mean_p, std_p = np.array([0.4, -0.3]), np.array([0.6, 0.9])
  mean_q, std_q = np.array([-0.1, 0.2]), np.array([0.8, 0.5])
  count = 200000
  noise = np.random.default_rng(12).normal(size=(count, 2))
  action, log_p = policy.squashed_gaussian_sample(
      np.tile(mean_p, (count, 1)), np.tile(std_p, (count, 1)), noise=noise)
  # Score the same squashed actions under q via the pre-squash value (exact
  # atanh of the samples), so no clipping enters the estimate.
  pre_squash = mean_p + std_p * noise
  log_q = policy.squashed_gaussian_sample(
      np.tile(mean_q, (count, 1)), np.tile(std_q, (count, 1)),
      noise=(pre_squash - mean_q) / std_q)[1]
  np.testing.assert_allclose(action.numpy(), np.tanh(pre_squash))
  monte_carlo = np.mean(log_p.numpy() - log_q.numpy())
  exact = policy.gaussian_kl(mean_p, std_p, mean_q, std_q).numpy()
  np.testing.assert_allclose(monte_carlo, exact, rtol=0.02)


def test_gaussian_gradients(check_gradients, check_second_order, fd_seed):
  seed = fd.shaken(13, fd_seed)
  mean, std = make_gaussian(seed)
  mean_q, std_q = make_gaussian(seed + 1)
  actions = np.random.default_rng(seed).uniform(-0.9, 0.9, size=mean.shape)
  noise = np.random.default_rng(seed + 1).normal(size=mean.shape)
  weights = tf.constant(np.random.default_rng(seed + 2).normal(
      size=(4, T, B)))

  def objective(mean, std, actions, mean_q, std_q, noise):
    _, sample_log_prob = policy.squashed_gaussian_sample(mean, std,
                                                         noise=noise)
    terms = [policy.squashed_gaussian_log_prob(mean, std, actions),
             sample_log_prob, policy.gaussian_kl(mean, std, mean_q, std_q),
             policy.gaussian_kl_to_standard_normal(mean, std)]
    return sum(tf.reduce_sum(w * term) for w, term in zip(weights, terms))

  inputs = dict(mean=mean, std=std, actions=actions, mean_q=mean_q,
                std_q=std_q, noise=noise)
  check_gradients(objective, inputs, list(inputs), seed=seed)
  check_second_order(objective, inputs, inner='mean', outer='std', seed=seed)
  check_second_order(objective, inputs, inner='std', outer='actions',
                     seed=seed)


@pytest.mark.parametrize('dtype,rtol,atol', [(tf.float32, 1e-4, 1e-5),
                                             (tf.float64, 1e-11, 1e-12)])
def test_jit_matches_eager(dtype, rtol, atol):
  mean, std = make_gaussian(16)
  logits = make_logits(16)
  actions = np.random.default_rng(16).integers(0, A, size=(T, B))

  def everything(mean, std, logits, actions):
    with tf.GradientTape() as tape:
      tape.watch([mean, std, logits])
      action, log_prob = policy.squashed_gaussian_sample(mean, std,
                                                         seed=[3, 4])
      outputs = (action, log_prob,
                 policy.squashed_gaussian_log_prob(mean, std, action),
                 policy.gaussian_kl_to_standard_normal(mean, std),
                 policy.gaussian_kl(mean, std, std, std),
                 policy.categorical_log_prob(logits, actions),
                 policy.categorical_entropy(logits),
                 policy.categorical_kl(logits, -logits))
      total = sum(tf.reduce_sum(o) for o in outputs)
    return outputs + tuple(tape.gradient(total, [mean, std, logits]))

  args = (tf.constant(mean, dtype), tf.constant(std, dtype),
          tf.constant(logits, dtype), tf.constant(actions))
  eager = everything(*args)
  jitted = tf.function(everything, jit_compile=True,
                       autograph=False)(*args)
  for e, j in zip(eager, jitted):
    assert j.dtype == dtype
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=rtol, atol=atol)


def test_bad_arguments_raise():
  logits = tf.constant(make_logits(17))
  mean, std = (tf.constant(x) for x in make_gaussian(17))
  with pytest.raises(ValueError, match=r'`actions` must have shape \[2, 3\] '
                     r'\(the shape of `logits` without the action axis\), '
                     r'got \[2\]'):
    policy.categorical_log_prob(logits, tf.constant([0, 1]))
  with pytest.raises(TypeError, match=r'`actions` must be an integer tensor'):
    policy.categorical_log_prob(logits, tf.zeros([T, B]))
  with pytest.raises(ValueError, match=r'`q_logits` must have the shape of '
                     r'`p_logits` \[2, 3, 4\], got \[2, 3, 3\]'):
    policy.categorical_kl(logits, logits[..., :3])
  with pytest.raises(ValueError, match=r'`advantages` must have the shape of '
                     r'`log_probs`'):
    policy.policy_gradient_loss(logits[..., 0], logits[0, 0])
  with pytest.raises(ValueError, match=r'`std` must have the shape of `mean` '
                     r'\[2, 3, 4\], got \[2, 3\]'):
    policy.squashed_gaussian_log_prob(mean, std[..., 0], mean)
  with pytest.raises(ValueError, match=r'`actions` must have the shape of '
                     r'`mean`'):
    policy.squashed_gaussian_log_prob(mean, std, mean[0])
  with pytest.raises(ValueError, match=r'Exactly one of `seed` and `noise`'):
    policy.squashed_gaussian_sample(mean, std)
  with pytest.raises(ValueError, match=r'Exactly one of `seed` and `noise`'):
    policy.squashed_gaussian_sample(mean, std, seed=[1, 2], noise=mean)
  with pytest.raises(ValueError, match=r'`std_q` must have the shape of '
                     r'`mean_p`'):
    policy.gaussian_kl(mean, std, mean, std[0])
  with pytest.raises(TypeError, match=r'`std` must have dtype float64, got '
                     r'float32'):
    policy.gaussian_kl_to_standard_normal(mean, tf.cast(std, tf.float32))
