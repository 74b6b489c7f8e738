"""Overlapping unrolls (STAC supplement Table 3, control: overlap 30 of 40).

An actor writing every S steps the last T must write the same steps as one
writing unroll by unroll: both act at the same global steps with the same
stateless sampling seeds, so item j of the overlapping actor is exactly the
steps [j S, j S + T) of the other's stream. Episode statistics must reach
the learner once, and the recurrent state of every item must be the state
before its first step.
"""

import numpy as np
import pytest

from tf_metagrad import runs
from tf_metagrad.system import reverb_actor as actor_lib
from tests.system import collection

TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,),
        "core_units": 8}
T, S, ENVS = 6, 2, 3
# Three plain unrolls cover the steps [0, 3T); overlapping items j = 0..6
# cover [j S, j S + T), the last one ending at 3T too.
PLAIN, OVERLAPPING = 3, 1 + (3 * T - T) // S
_STEP_FIELDS = ("action", "reward", "discount", "mask", "behaviour_log_prob")


def _spec():
  return runs.RunSpec(agent="stac", env="catch", config_overrides=TINY,
                      seed=1)


def _stream(batches, field):
  """The plain actor's items joined in time: `[3T(+1), K, ...]`."""
  parts = [getattr(b, field).numpy() for b, _ in batches]
  if field == "observation":
    # Each item's last observation is the next one's first.
    return np.concatenate([p[:-1] for p in parts] + [parts[-1][-1:]])
  return np.concatenate(parts)


@pytest.fixture(scope="module")
def runs_():
  """(plain items, its actor stats, learner, overlapping items, stats)."""
  _, plain, plain_stats = collection.collect_items(
      _spec(), ENVS, T, PLAIN, seed=5, unroll_stride=T)
  learner, overlapping, stats = collection.collect_items(
      _spec(), ENVS, T, OVERLAPPING, seed=5, unroll_stride=S)
  return plain, plain_stats, learner, overlapping, stats


def test_overlapping_items_are_windows_of_the_plain_stream(runs_):
  plain, plain_stats, learner, overlapping, stats = runs_
  # Frames the environments stepped: T, then S per later item.
  assert stats.env_steps == plain_stats.env_steps == PLAIN * T
  assert stats.unrolls == OVERLAPPING
  observations = _stream(plain, "observation")
  for j, (item, _) in enumerate(overlapping):
    window = slice(j * S, j * S + T)
    np.testing.assert_array_equal(
        item.observation.numpy(), observations[j * S:j * S + T + 1])
    for field in _STEP_FIELDS:
      np.testing.assert_array_equal(getattr(item, field).numpy(),
                                    _stream(plain, field)[window],
                                    err_msg=f"item {j} {field}")
    if j * S % T == 0:
      # The plain actor holds the state before this step too.
      for mine, theirs in zip(item.core_state,
                              plain[j * S // T][0].core_state):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    # Any state but the one before step j S would not reproduce the
    # behaviour log-probs (checked at the other items).
    outputs, _ = learner._forward(None, item)
    policy = learner.network.policy(outputs, 0, time_slice=slice(0, -1))
    np.testing.assert_allclose(policy.log_prob(item.action).numpy(),
                               item.behaviour_log_prob.numpy(), atol=1e-5)


def test_episode_statistics_are_attributed_once(runs_):
  plain, _, _, overlapping, _ = runs_

  def episodes(batches, offsets):
    """(global step, copy, return, length) of each reported episode."""
    out = []
    for (_, stats), offset in zip(batches, offsets):
      returns = stats["episode_return"].numpy()
      lengths = stats["episode_length"].numpy()
      for t, k in zip(*np.nonzero(~np.isnan(returns))):
        out.append((offset + t, k, returns[t, k], lengths[t, k]))
    return sorted(out)

  expected = episodes(plain, [i * T for i in range(PLAIN)])
  # Catch episodes last 9 steps: 3T = 18 steps end two per copy.
  assert len(expected) == 2 * ENVS
  assert episodes(overlapping, [j * S for j in range(OVERLAPPING)]) == (
      expected)
  for j, (_, stats) in enumerate(overlapping[1:], start=1):
    shared = slice(0, T - S)
    assert np.isnan(stats["episode_return"].numpy()[shared]).all(), j
    assert (stats["episode_length"].numpy()[shared] == 0).all(), j


@pytest.mark.parametrize("stride", [0, T + 1])
def test_stride_out_of_range_is_refused(stride):
  with pytest.raises(ValueError, match=rf"unroll_stride must be in \[1, "
                     rf"unroll_length={T}\], got {stride}\."):
    actor_lib.Actor(None, "catch", None, num_envs=1, unroll_length=T,
                    seed=0, unroll_stride=stride)
