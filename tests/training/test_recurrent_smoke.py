"""A recurrent (LSTM-core) agent trains end to end through Reverb and
exports, and the core state is carried across unrolls on both sides.

The trainer's actor thread is watched (its `_collect` wrapped) to record
each item it makes and the weights it acted with. Afterwards, with those
weights:
- the actor side: each item's stored `core_state` must be the state the
  network ends the actor's previous item with (stepping it from that item's
  own stored state, zeroed after the steps that end an episode, as the
  actor does). An actor that resets the state between unrolls stores zeros
  there instead, which the nonzero states of these items rule out;
- the learner side: the learner's unroll of an item from its stored state
  must reproduce the behaviour log-probabilities the actor recorded; the
  same unroll from the zero state must not (so a learner that resets at
  each item's start would fail).
"""
# pylint: disable=protected-access

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.system import items
from tf_metagrad.system import reverb_actor
from tf_metagrad.training import loop
from tf_metagrad.training import outputs
from tests.training import test_train_smoke as smoke

UNITS = 8
# The actor's float32 graph and the eager recomputation here (or the
# learner's unroll) on the same weights differ by summation order only:
# typically u sqrt(K) S per step, u = 6e-8, K <= 50 + 16 + 8 terms of the
# longest dot products (observation, torso, core), S of order 1, so about
# 5e-7 a step and 2e-6 over an item's 4 steps (measured: 2.4e-7 at most).
# A reset state, or the log-probabilities of an unroll from the zero state,
# are off by 1e-2 and more (measured: 0.02-0.07; asserted > 100 ATOL).
ATOL = 1e-5


def _record_items(monkeypatch):
  """The list the trainer's actors append (actor, weights, trajectory) to,
  one entry per item they make, in order."""
  made = []
  collect = reverb_actor.Actor._collect

  def recording(actor):
    weights = [v.numpy() for v in actor._network.variables]
    buffers, start_state = collect(actor)
    item = items.numpy_item(*buffers, core_state=start_state)
    trajectory, _ = items.to_trajectory(
        {k: tf.constant(v) for k, v in item.items()})
    made.append((actor, weights, trajectory))
    return buffers, start_state

  monkeypatch.setattr(reverb_actor.Actor, "_collect", recording)
  return made


def _end_state(network, trajectory):
  """The state after stepping `network` over the item's T observations
  from its stored state, zeroed where a step ended an episode."""
  state = trajectory.core_state
  discount = trajectory.discount.numpy()
  for t in range(discount.shape[0]):
    _, state = network.acting_step(trajectory.observation[t], state)
    ended = tf.constant((discount[t] == 0)[:, None])
    state = tuple(tf.where(ended, tf.zeros_like(s), s) for s in state)
  return state


def _log_prob_gap(learner, trajectory):
  """Largest |log pi(a|x) - recorded log mu(a|x)| of the learner's unroll."""
  unrolled, _ = learner._forward(None, trajectory)
  policy = learner.network.policy(unrolled, 0, time_slice=slice(0, -1))
  return np.abs(policy.log_prob(trajectory.action).numpy()
                - trajectory.behaviour_log_prob.numpy()).max()


def _check_carried_state(spec, made):
  learner = runs.build_learner(spec)
  network = learner.network
  carried, from_zero = 0, [0.0]
  for (actor, weights, trajectory), (next_actor, _, following) in zip(
      made, made[1:] + [(None, None, None)]):
    for variable, value in zip(network.variables, weights, strict=True):
      variable.assign(value)
    assert _log_prob_gap(learner, trajectory) < ATOL
    zeroed = trajectory._replace(core_state=network.initial_state(
        trajectory.core_state[0].shape[0]))
    from_zero.append(_log_prob_gap(learner, zeroed))
    if next_actor is not actor:
      continue
    for ended, stored in zip(_end_state(network, trajectory),
                             following.core_state, strict=True):
      np.testing.assert_allclose(stored.numpy(), ended.numpy(), rtol=0,
                                 atol=ATOL)
      carried += int(np.abs(stored.numpy()).max() > 1e-2)
  # Catch episodes last 9 steps and items 4: most items start mid-episode,
  # and there the stored state decides the learner's policy.
  assert carried >= 2, carried
  assert max(from_zero) > 100 * ATOL, from_zero


def test_recurrent_stac_trains_carries_its_state_and_exports(tmp_path,
                                                            monkeypatch):
  spec = runs.RunSpec(agent="stac", env="catch",
                      config_overrides=dict(smoke.TINY, core_units=UNITS),
                      seed=5)
  made = _record_items(monkeypatch)
  lines = []
  summary = loop.train(spec, smoke._options(tmp_path), log=lines.append)
  assert summary["status"] == "completed", lines
  assert summary["learner_steps"] > 0
  assert np.isfinite(summary["final_eval_mean_return"])
  # The six learner steps took an item each.
  assert len(made) >= 6, len(made)
  _check_carried_state(spec, made)
  loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
  metadata = loaded.get_metadata()
  assert bool(metadata["recurrent"].numpy())
  state = loaded.get_initial_state(tf.constant(3, tf.int64))
  assert sorted(state) == ["core_state_0", "core_state_1"]
  assert state["core_state_0"].shape == (3, UNITS)
  rows = [r for r in outputs.read_metrics(str(tmp_path))[1]
          if r.get("skipped_updates")]
  assert rows and float(rows[-1]["skipped_updates"]) == 0.0
