"""Vectorised toy batches equal K independent single copies step for step."""

import numpy as np
import pytest

from tf_metagrad import envs

CASES = [
    ("catch", {}),
    ("catch", {"rows": 6, "columns": 11}),
    ("random_walk", {"switch_every": 17}),
    ("random_walk", {"random_moves": False}),
    ("two_colors", {"horizon": 9, "toggle_every": 23}),
]


def _run_singles(name, kwargs, seed, actions):
  """The contract written out with K single envs and manual auto-reset."""
  num_envs = actions.shape[1]
  singles = [envs.make(name, seed=envs.derive_seed(seed, i), **kwargs)
             for i in range(num_envs)]
  first = np.stack([env.reset()[0] for env in singles])
  returns = np.zeros(num_envs)
  lengths = np.zeros(num_envs, np.int64)
  steps = []
  for row in actions:
    obs, rew, term, trunc, ep_ret, ep_len = [], [], [], [], [], []
    for i, env in enumerate(singles):
      o, r, te, tr, _ = env.step(int(row[i]))
      returns[i] += r
      lengths[i] += 1
      ep_ret.append(returns[i] if te or tr else np.nan)
      ep_len.append(lengths[i] if te or tr else 0)
      if te or tr:
        o, _ = env.reset()
        returns[i], lengths[i] = 0.0, 0
      obs.append(o)
      rew.append(r)
      term.append(te)
      trunc.append(tr)
    steps.append((np.stack(obs), np.asarray(rew, np.float32),
                  np.asarray(term), np.asarray(trunc),
                  np.asarray(ep_ret, np.float32),
                  np.asarray(ep_len, np.int32)))
  return first, steps


@pytest.mark.parametrize("name,kwargs", CASES)
def test_batch_equals_independent_copies(name, kwargs):
  seed, num_envs, num_steps = 1234, 6, 150
  batch = envs.make_batched(name, num_envs, seed=seed, **kwargs)
  actions = np.random.default_rng(0).integers(
      0, batch.action_space.n, size=(num_steps, num_envs))
  first, expected = _run_singles(name, kwargs, seed, actions)
  np.testing.assert_array_equal(batch.reset(), first)
  ended = 0
  for row, want in zip(actions, expected):
    got = batch.step(row)
    assert got.reward.dtype == np.float32
    assert got.terminated.dtype == bool and got.truncated.dtype == bool
    assert got.episode_return.dtype == np.float32
    assert got.episode_length.dtype == np.int32
    for field, value in zip(got, want):
      np.testing.assert_array_equal(field, value)
    ended += int(np.sum(got.episode_length > 0))
  assert ended > num_envs  # Auto-reset was exercised in every case.


def test_copies_differ_and_reset_seed_reproduces():
  batch = envs.make_batched("catch", 64, seed=5)
  first = batch.reset()
  assert len({int(np.argmax(o[0])) for o in first}) == 5  # All 5 columns.
  batch.step(np.ones(64, np.int64))
  again = batch.reset(seed=5)
  np.testing.assert_array_equal(first, again)
  other = batch.reset(seed=6)
  assert not np.array_equal(first, other)


def test_auto_reset_layout():
  batch = envs.make_batched("catch", 3, seed=0)
  batch.reset()
  assert batch.observation_spec.shape == (10, 5)
  assert batch.num_envs == 3 and batch.action_space.n == 3
  for t in range(9):
    step = batch.step(np.ones(3, np.int64))
    if t < 8:
      assert np.isnan(step.episode_return).all()
      assert (step.episode_length == 0).all()
  assert step.terminated.all() and not step.truncated.any()
  np.testing.assert_array_equal(step.episode_length, [9, 9, 9])
  assert set(step.episode_return.tolist()) <= {1.0, -1.0}
  # The returned observation is already the next episode's first one.
  np.testing.assert_array_equal(step.observation[:, 0].sum(axis=1), 1.0)
  np.testing.assert_array_equal(step.observation[:, 9, 2], 1.0)


def test_bad_actions_are_rejected():
  batch = envs.make_batched("two_colors", 4, seed=0)
  with pytest.raises(RuntimeError, match="reset"):
    batch.step(np.zeros(4, np.int64))
  batch.reset()
  with pytest.raises(ValueError, match=r"shape \[4\]"):
    batch.step(np.zeros(3, np.int64))
  with pytest.raises(ValueError, match="must lie in"):
    batch.step(np.full(4, 4))
  with pytest.raises(ValueError, match="num_envs"):
    envs.make_batched("catch", 0)


def test_held_copies_equal_single_copies_that_wait():
  """pad_truncations: a copy cut by the horizon shows its final observation,
  then waits one step (padding) while the others move on; each copy still
  equals a lone copy (same random stream and lifetime clock) that simply
  skips the padding steps. Terminations desynchronise the copies, so holds
  of some copies happen while others step."""
  seed, num_envs, num_steps = 7, 6, 120
  kwargs = {"size": 3, "horizon": 5, "toggle_every": 11}
  batch = envs.make_batched("two_colors", num_envs, seed=seed,
                            pad_truncations=True, **kwargs)
  singles = [envs.make("two_colors", seed=envs.derive_seed(seed, i),
                       **kwargs) for i in range(num_envs)]
  want = np.stack([env.reset()[0] for env in singles])
  np.testing.assert_array_equal(batch.reset(), want)
  actions = np.random.default_rng(1).integers(0, 4, (num_steps, num_envs))
  held = np.zeros(num_envs, bool)
  mixed = 0
  for row in actions:
    got = batch.step(row)
    np.testing.assert_array_equal(got.padding, held)
    mixed += int(held.any() and not held.all())
    for i, env in enumerate(singles):
      if held[i]:
        want[i] = env.reset()[0]
        assert got.reward[i] == 0 and got.episode_length[i] == 0
        held[i] = False
        continue
      obs, reward, terminated, truncated, info = env.step(int(row[i]))
      assert got.reward[i] == np.float32(reward)
      assert got.terminated[i] == terminated
      assert got.truncated[i] == truncated
      held[i] = truncated and not terminated
      want[i] = env.reset()[0] if terminated else obs
      assert info["total_steps"] == batch.core.total_steps[i]
    np.testing.assert_array_equal(got.observation, want)
  assert mixed > 0
