"""FRODO's meta-gradient (meta-network weights) against finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(6,), head_hidden_sizes=(6,),
            learning_rate=0.05, max_grad_norm=None, meta_units=4)


def _check(learner, inner, outer, rng, eps=1e-6, per_tensor=2):
  grads = learner.metagradient(inner, outer)
  base = learner.meta_params()
  assert set(grads) == set(base) and len(base) == 5  # LSTM (3) + linear (2)

  def loss_at(meta):
    return float(learner.outer_loss_after_inner_update(inner, outer,
                                                       meta_params=meta))

  # A directional derivative covers every weight at once ...
  direction = {k: tf.constant(rng.normal(size=v.shape)) for k, v in
               base.items()}
  numeric = (loss_at({k: base[k] + eps * direction[k] for k in base})
             - loss_at({k: base[k] - eps * direction[k] for k in base})
             ) / (2 * eps)
  analytic = sum(float(tf.reduce_sum(grads[k] * direction[k])) for k in base)
  np.testing.assert_allclose(analytic, numeric, rtol=1e-5)
  # ... and single entries make sure no tensor is mixed up with another.
  for name, value in base.items():
    flat = value.numpy().reshape(-1)
    for i in rng.choice(flat.size, size=min(per_tensor, flat.size),
                        replace=False):
      def at(delta):
        moved = flat.copy()
        moved[i] += delta
        return loss_at(dict(base, **{name: tf.constant(
            moved.reshape(value.shape))}))
      numeric = (at(eps) - at(-eps)) / (2 * eps)
      analytic = grads[name].numpy().reshape(-1)[i]
      np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-10,
                                 err_msg=f"{name}[{i}]")


@pytest.mark.parametrize("num_inner_steps,overrides", [
    (1, {}),
    (3, {}),
    (3, {"pseudo_label_weight": 0.5, "pseudo_label_normalize": True}),
    (2, {"distributional": True, "num_quantiles": 3, "use_observation": True}),
])
def test_frodo_metagradient_matches_finite_differences(num_inner_steps,
                                                      overrides):
  rng = np.random.default_rng(num_inner_steps)
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space,
                                num_inner_steps=num_inner_steps, **TINY,
                                **overrides)
  inner = [helpers.random_trajectory(rng, 4, 3)
           for _ in range(num_inner_steps)]
  outer = helpers.random_trajectory(rng, 4, 3)
  _check(learner, inner if num_inner_steps > 1 else inner[0], outer, rng)


def test_frodo_metagradient_every_meta_weight_matches_finite_differences():
  """Central differences in every entry of every meta-network tensor, M = 1."""
  rng = np.random.default_rng(5)
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=1,
                                **TINY)
  inner = helpers.random_trajectory(rng, 4, 3)
  outer = helpers.random_trajectory(rng, 4, 3)
  grads = learner.metagradient(inner, outer)
  base = learner.meta_params()
  # LSTM kernels [3, 16], [4, 16] and bias [16]; linear [4, 1] and [1].
  assert sum(int(np.prod(v.shape)) for v in base.values()) == 133
  # Traced once, so the 266 evaluations below take about a second.
  loss_at = tf.function(lambda meta: learner.outer_loss_after_inner_update(
      inner, outer, meta_params=meta))
  eps = 1e-6
  for name, value in base.items():
    flat = value.numpy().reshape(-1)
    numeric = np.zeros_like(flat)
    for i in range(flat.size):
      losses = []
      for delta in (eps, -eps):
        moved = flat.copy()
        moved[i] += delta
        losses.append(float(loss_at(dict(base, **{name: tf.constant(
            moved.reshape(value.shape))}))))
      numeric[i] = (losses[0] - losses[1]) / (2 * eps)
    analytic = grads[name].numpy().reshape(-1)
    assert np.linalg.norm(numeric) > 1e-6, f"{name}: degenerate test"
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9,
                               err_msg=name)


def test_frodo_step_splits_unroll_into_consecutive_trajectories():
  rng = np.random.default_rng(0)
  spec, space = helpers.spaces(dtype=tf.float32)
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=2,
                                mlp_hidden_sizes=(6,), head_hidden_sizes=(6,))
  batch = helpers.random_trajectory(rng, 12, 2, dtype=np.float32)
  inner, outer = learner._split(batch)
  assert len(inner) == 2
  np.testing.assert_array_equal(inner[1].observation.numpy(),
                                batch.observation[4:9].numpy())
  np.testing.assert_array_equal(outer.reward.numpy(), batch.reward[8:].numpy())
  before = learner.meta_params()
  metrics = learner.step(batch)
  assert np.isfinite(metrics["outer_loss"])
  after = learner.meta_params()
  assert any(not np.allclose(before[k], after[k]) for k in before)
  with pytest.raises(ValueError, match="divisible by 3"):
    learner._split(helpers.random_trajectory(rng, 10, 2, dtype=np.float32))
