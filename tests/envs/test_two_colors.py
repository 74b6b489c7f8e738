"""Two-colours grid world: key toggle, one-key rule and optimal return."""

import numpy as np
import pytest

from tf_metagrad import envs

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def _positions(obs):
  """(agent, key0 or None, key1 or None, goal) decoded from the image."""
  def find(channel):
    cells = np.argwhere(obs[..., channel] == 1.0)
    assert len(cells) <= 1
    return tuple(cells[0]) if len(cells) else None
  return find(0), find(1), find(2), find(3)


def _leg(start, end, first_axis):
  """Actions of an L-shaped shortest path, moving along `first_axis` first."""
  (r0, c0), (r1, c1) = start, end
  vertical = [DOWN if r1 > r0 else UP] * abs(r1 - r0)
  horizontal = [RIGHT if c1 > c0 else LEFT] * abs(c1 - c0)
  return vertical + horizontal if first_axis == 0 else horizontal + vertical


def _cells(start, actions):
  moves = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}
  cells, (r, c) = [], start
  for a in actions:
    r, c = r + moves[a][0], c + moves[a][1]
    cells.append((r, c))
  return cells


def _avoiding(start, end, blocked):
  """An L-shaped shortest path from start to end that avoids `blocked`."""
  for axis in (0, 1):
    leg = _leg(start, end, axis)
    if not set(blocked) & set(_cells(start, leg)):
      return leg
  raise AssertionError("both L-shaped paths are blocked")


def _path_to_key_then_goal(obs, key):
  """Shortest path agent -> key -> goal that avoids the other key."""
  agent, key0, key1, goal = _positions(obs)
  target, other = (key0, key1) if key == 0 else (key1, key0)
  # Keys vanish once one is held, so the second leg needs no detour.
  return _avoiding(agent, target, [other]) + _leg(target, goal, 0)


def _manhattan(a, b):
  return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _run(env, actions):
  rewards, terminated = [], False
  for a in actions:
    assert not terminated
    _, reward, terminated, truncated, _ = env.step(a)
    assert not truncated
    rewards.append(reward)
  return rewards, terminated


def test_layout_and_observation():
  env = envs.make("two_colors", seed=0)
  assert env.observation_spec.shape == (7, 7, 4)
  assert env.action_space.n == 4
  layouts = set()
  for _ in range(20):
    obs, info = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (7, 7, 4)
    positions = _positions(obs)
    assert None not in positions and len(set(positions)) == 4
    layouts.add(positions)
    np.testing.assert_allclose(info["key_rewards"], [0.7, 0.3])
  assert len(layouts) == 20  # Re-drawn every episode.


@pytest.mark.parametrize("seed", range(5))
def test_key_agnostic_optimal_return(seed):
  r_pen = 0.01
  offsets = []
  for key, value in ((0, 0.7), (1, 0.3)):
    env = envs.make("two_colors", seed=seed)
    obs, _ = env.reset()
    agent, key0, key1, goal = _positions(obs)
    path = _path_to_key_then_goal(obs, key)
    length = _manhattan(agent, key0 if key == 0 else key1) + _manhattan(
        key0 if key == 0 else key1, goal)
    assert len(path) == length  # A shortest path on the open grid.
    rewards, terminated = _run(env, path)
    assert terminated
    episode_return = sum(rewards)
    assert episode_return == pytest.approx(value + 1.0 - r_pen * length)
    offsets.append(episode_return + r_pen * length)
  # Averaged over the colour picked blindly: +1.5 - r_pen * T (Yin et al. (2023)).
  assert np.mean(offsets) == pytest.approx(1.5)


def test_one_key_per_episode_and_goal_needs_a_key():
  env = envs.make("two_colors", seed=3)
  obs, _ = env.reset()
  agent, key0, key1, goal = _positions(obs)
  # Visit the goal first: without a key it is a plain floor cell.
  rewards, terminated = _run(env, _avoiding(agent, goal, [key0, key1]))
  assert not terminated
  np.testing.assert_allclose(rewards, -0.01)
  # Collect key 0, then walk onto key 1's old cell: it pays nothing.
  env = envs.make("two_colors", seed=3)
  env.reset()
  rewards, _ = _run(env, _avoiding(agent, key0, [key1]))
  assert rewards[-1] == pytest.approx(0.7 - 0.01)
  obs = env.core.observe()[0]
  assert not obs[..., 1].any() and not obs[..., 2].any()  # Both keys gone.
  assert env.core.has_key[0]
  # Holding a key, stepping on the goal would end the episode: avoid it.
  rewards, terminated = _run(env, _avoiding(key0, key1, [goal]))
  assert not terminated
  np.testing.assert_allclose(rewards, -0.01)


@pytest.mark.parametrize("toggle_offset,expected", [(0, 0.7), (-1, 0.3)])
def test_key_values_swap_exactly_at_the_toggle(toggle_offset, expected):
  # Collect key 0 at step index L - 1: with toggle_every = L that is the
  # last step before the swap, with toggle_every = L - 1 the first after.
  probe = envs.make("two_colors", seed=1)
  obs, _ = probe.reset()
  agent, key0, key1, _ = _positions(obs)
  leg = _avoiding(agent, key0, [key1])
  length = len(leg)
  assert length >= 2
  env = envs.make("two_colors", seed=1, toggle_every=length + toggle_offset)
  _, info = env.reset()
  np.testing.assert_allclose(info["key_rewards"], [0.7, 0.3])
  rewards, _ = _run(env, leg)
  assert rewards[-1] == pytest.approx(expected - 0.01)


def test_default_toggle_happens_at_step_100000():
  env = envs.make("two_colors", seed=0)
  env.reset()
  core = env.core  # Stepped directly (with its own resets) to save time.
  actions = np.random.default_rng(0).integers(0, 4, size=(2_000, 1))

  def play(first, last):
    for t in range(first, last):
      if t == 99_999:
        np.testing.assert_allclose(core.current_key_rewards()[0], [0.7, 0.3])
      _, terminated, truncated = core.step(actions[t % 2_000])
      if terminated[0] or truncated[0]:
        core.reset(np.ones(1, bool))

  # The lifetime count goes on across episodes...
  play(0, 1_000)
  assert core.total_steps[0] == 1_000
  np.testing.assert_allclose(core.current_key_rewards()[0], [0.7, 0.3])
  # ...and its last thousand steps before the toggle are played for real
  # (the 98k in between only count).
  core.total_steps[:] = 99_000
  play(99_000, 100_000)
  assert core.total_steps[0] == 100_000
  np.testing.assert_allclose(core.current_key_rewards()[0], [0.3, 0.7])


def test_truncation_at_the_horizon():
  env = envs.make("two_colors", seed=2, horizon=6)
  env.reset()
  for t in range(6):
    # Up/down bouncing in one column never opens the door here.
    _, reward, terminated, truncated, _ = env.step(UP if t % 2 else DOWN)
    assert not terminated
    assert truncated == (t == 5)
