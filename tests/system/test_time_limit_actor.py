"""An actor writes time-limit truncations with a padding step (issue #17).

Two-colours with a horizon of 3 steps, so nearly every episode is cut by the
limit. The actor's items, read back through Reverb, must hold for each copy
exactly the observations a lone copy of the environment shows (its
`truncated` step returns the final observation x_final), with a padding step
after each truncation: observation x_final, mask 0, discount 0, reward 0,
action 0, behaviour log-prob 0, and discount 1 at the truncated step before
it. The policy is recurrent: re-running the learner's core from each item's
`core_state` (reset where the discount is 0) must reproduce the actor's
log-probabilities at every real step.
"""

import numpy as np

from tf_metagrad import envs
from tf_metagrad import runs
from tests.system import collection

UNROLL, ENVS, UNROLLS, HORIZON, SEED = 5, 2, 3, 3, 5


def _collect():
  spec = runs.RunSpec(
      agent="impala", env="two_colors", env_kwargs={"horizon": HORIZON},
      config_overrides={"mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,),
                        "core_units": 4}, seed=1)
  return collection.collect(spec, ENVS, UNROLL, UNROLLS, seed=SEED)


def test_truncations_are_written_with_a_padding_step():
  learner, batches = _collect()
  field = lambda name: np.concatenate(
      [getattr(b, name).numpy() for b in batches])
  mask, discount, reward = field("mask"), field("discount"), field("reward")
  action, log_prob = field("action"), field("behaviour_log_prob")
  observation = np.concatenate(
      [b.observation.numpy()[:-1] for b in batches]
      + [batches[-1].observation.numpy()[-1:]])
  padding = mask == 0
  assert padding.sum() >= ENVS * 2
  np.testing.assert_array_equal(discount[padding], 0)
  np.testing.assert_array_equal(reward[padding], 0)
  np.testing.assert_array_equal(action[padding], 0)
  np.testing.assert_array_equal(log_prob[padding], 0)
  assert not padding[0].any()
  # The truncated step before a padding step is not terminal.
  np.testing.assert_array_equal(discount[:-1][padding[1:]], 1)
  assert np.all(log_prob[~padding] < 0)
  # Each copy replayed alone: its real steps take the recorded actions, and
  # every truncation shows x_final, which the item holds at the padding step.
  for k in range(ENVS):
    single = envs.make("two_colors", seed=envs.derive_seed(SEED, k),
                       horizon=HORIZON)
    want, _ = single.reset()
    for t in range(len(mask)):
      np.testing.assert_array_equal(observation[t, k], want, f"{t}, {k}")
      if padding[t, k]:
        want, _ = single.reset()
        continue
      want, r, terminated, truncated, _ = single.step(action[t, k])
      assert r == reward[t, k]
      assert discount[t, k] == (0 if terminated else 1)
      if t + 1 < len(mask):
        assert padding[t + 1, k] == (truncated and not terminated)
      if terminated:
        want, _ = single.reset()
    np.testing.assert_array_equal(observation[-1, k], want)
  # The recurrent learner reproduces the actor's behaviour at real steps.
  for batch in batches:
    outputs, _ = learner._forward(None, batch)
    policy = learner.network.policy(outputs, 0, time_slice=slice(0, -1))
    real = batch.mask.numpy() == 1
    np.testing.assert_allclose(policy.log_prob(batch.action).numpy()[real],
                               batch.behaviour_log_prob.numpy()[real],
                               atol=1e-5)
  metrics = learner.step(batches[-1])
  assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
