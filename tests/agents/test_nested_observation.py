"""Learners built from a nested observation spec (a dict of tensors)."""

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests import finite_differences as fd
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(8,), head_hidden_sizes=(8,),
            learning_rate=0.05, max_grad_norm=None)
# tf.nest.flatten orders dict keys: "grid" (2 x 2 uint8) then "position" (3).
SPEC = {"position": tf.TensorSpec([3], tf.float64),
        "grid": tf.TensorSpec([2, 2], tf.uint8)}
SPACE = gymnasium.spaces.Discrete(3)


def _nested(trajectory, rng):
  """`trajectory` with a dict observation; also returns the flat vector the
  network must see ([T+1, B, 4 + 3], grid first)."""
  steps, batch = trajectory.observation.shape[:2]
  grid = rng.integers(0, 4, size=(steps, batch, 2, 2)).astype(np.uint8)
  position = trajectory.observation.numpy()[..., :3]
  flat = np.concatenate([grid.reshape(steps, batch, 4).astype(np.float64),
                         position], -1)
  nested = trajectory._replace(observation={
      "position": tf.constant(position), "grid": tf.constant(grid)})
  return nested, trajectory._replace(observation=tf.constant(flat))


def test_nested_spec_flattens_leaves_in_nest_order():
  rng = np.random.default_rng(0)
  nested_learner = agents.make_learner("stac", SPEC, SPACE, **TINY)
  flat_learner = agents.make_learner(
      "stac", tf.TensorSpec([7], tf.float64), SPACE, **TINY)
  for a, b in zip(flat_learner.network.variables,
                  nested_learner.network.variables):
    a.assign(b)
  nested, flat = _nested(helpers.random_trajectory(rng, 4, 3), rng)
  got, _ = nested_learner._forward(None, nested)
  want, _ = flat_learner._forward(None, flat)
  for g, w in zip(tf.nest.flatten(got), tf.nest.flatten(want)):
    np.testing.assert_array_equal(g.numpy(), w.numpy())
  np.testing.assert_array_equal(
      nested_learner.network.flatten_observation(nested.observation).numpy(),
      flat.observation.numpy())


@pytest.mark.parametrize("agent,overrides", [
    ("stac", {}),
    ("frodo", {"num_inner_steps": 1, "use_observation": True}),
])
def test_nested_metagradient_matches_finite_differences(agent, overrides,
                                                       fd_seed):
  rng = np.random.default_rng(fd.shaken(1, fd_seed))
  learner = agents.make_learner(agent, SPEC, SPACE, **TINY, **overrides)
  inner, _ = _nested(helpers.random_trajectory(rng, 4, 3), rng)
  outer, _ = _nested(helpers.random_trajectory(rng, 4, 3), rng)
  if agent == "stac":
    assert len(helpers.fd_check(learner, inner, outer, rng).labels) == 6
  else:
    helpers.fd_check(learner, inner, outer, rng, entries=2, directions=2)
  both, _ = _nested(helpers.random_trajectory(rng, 8, 3), rng)
  metrics = learner.step(both)
  assert float(metrics["skipped_updates"]) == 0


def test_bad_nested_specs_and_observations_are_clear_errors():
  with pytest.raises(TypeError, match="nest of them"):
    agents.make_learner("stac", {"a": tf.TensorSpec([3]), "b": 3}, SPACE)
  with pytest.raises(ValueError, match="fully defined"):
    agents.make_learner("stac", {"a": tf.TensorSpec([None])}, SPACE)
  with pytest.raises(ValueError, match="MLP torso"):
    agents.make_learner("stac", SPEC, SPACE, torso="resnet")
  learner = agents.make_learner("stac", SPEC, SPACE, **TINY)
  with pytest.raises(ValueError, match="nest of 2 tensors"):
    learner.network.flatten_observation({"position": np.zeros((1, 3))})
  with pytest.raises(ValueError, match=r"leaf 0 must end in shape \[2, 2\]"):
    learner.network.flatten_observation(
        {"grid": np.zeros((1, 3, 2)), "position": np.zeros((1, 3))})


def test_export_says_it_takes_single_tensor_observations(tmp_path):
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.serving import export_policy
  from tf_metagrad import runs
  learner = agents.make_learner("stac", SPEC, SPACE, **TINY)
  with pytest.raises(ValueError, match="single-tensor observations"):
    export_policy.export(learner, runs.RunSpec(agent="stac", env="catch"), 0,
                         str(tmp_path / "policy"))
  assert not (tmp_path / "policy").exists()
