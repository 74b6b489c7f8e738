"""Catch: bsuite layout, dynamics and rewards against a rule-by-rule model."""

import numpy as np
import pytest

from tf_metagrad import envs


def _ball_column(obs):
  return int(np.argmax(obs[0]))


def _reference_episode(rows, columns, ball_column, actions):
  """Boards and rewards written from the rules in the module docstring."""
  paddle, ball_row = columns // 2, 0
  boards, rewards = [], []
  for action in actions:
    paddle = min(max(paddle + action - 1, 0), columns - 1)
    ball_row += 1
    board = np.zeros((rows, columns), np.float32)
    board[ball_row, ball_column] = 1.0
    board[rows - 1, paddle] = 1.0
    boards.append(board)
    done = ball_row == rows - 1
    rewards.append((1.0 if paddle == ball_column else -1.0) if done else 0.0)
    if done:
      break
  return boards, rewards


def test_default_layout_is_bsuite():
  env = envs.make("catch", seed=0)
  obs, _ = env.reset()
  assert env.observation_spec.shape == (10, 5)
  assert env.observation_spec.dtype.name == "float32"
  assert env.action_space.n == 3
  assert obs.shape == (10, 5) and obs.dtype == np.float32
  assert obs.sum() == 2.0
  assert obs[0].sum() == 1.0  # The ball is in the top row.
  assert obs[9, 2] == 1.0  # The paddle is in the bottom row, centre column.


@pytest.mark.parametrize("seed", range(6))
def test_tracking_the_ball_catches_it(seed):
  env = envs.make("catch", seed=seed)
  obs, _ = env.reset()
  target = _ball_column(obs)
  rewards = []
  for _ in range(20):
    paddle = int(np.argmax(obs[-1]))
    obs, reward, terminated, truncated, _ = env.step(
        1 + int(np.sign(target - paddle)))
    rewards.append(reward)
    assert not truncated
    if terminated:
      break
  assert terminated
  assert rewards == [0.0] * 8 + [1.0]  # 9 = rows - 1 steps.
  assert obs[-1, target] == 1.0 and obs.sum() == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_missing_the_ball_costs_one(seed):
  env = envs.make("catch", seed=seed)
  obs, _ = env.reset()
  away = 0 if _ball_column(obs) >= 2 else 2  # Run to the far wall.
  total = 0.0
  for step in range(9):
    obs, reward, terminated, _, _ = env.step(away)
    total += reward
    assert terminated == (step == 8)
  assert total == -1.0
  assert obs[-1].sum() == 2.0 and obs[-1, 0 if away == 0 else 4] == 1.0


@pytest.mark.parametrize("rows,columns", [(10, 5), (6, 11), (11, 6)])
def test_dynamics_match_reference(rows, columns):
  rng = np.random.default_rng(rows * columns)
  env = envs.make("catch", seed=7, rows=rows, columns=columns)
  assert env.observation_spec.shape == (rows, columns)
  columns_seen = set()
  for _ in range(30):
    obs, _ = env.reset()
    ball_column = _ball_column(obs)
    columns_seen.add(ball_column)
    actions = rng.integers(0, 3, size=rows - 1)
    boards, rewards = _reference_episode(rows, columns, ball_column, actions)
    for t, action in enumerate(actions):
      obs, reward, terminated, _, _ = env.step(action)
      np.testing.assert_array_equal(obs, boards[t])
      assert reward == rewards[t]
      assert terminated == (t == rows - 2)
  # The start column is uniform: 30 episodes visit most columns.
  assert len(columns_seen) >= min(columns, 4)


def test_paddle_clips_at_walls():
  env = envs.make("catch", seed=1)
  env.reset()
  for _ in range(5):
    obs, *_ = env.step(0)
  assert obs[-1, 0] == 1.0
  for _ in range(4):
    obs, *_ = env.step(2)
  assert obs[-1, 4] == 1.0


def test_bad_input_is_rejected():
  env = envs.make("catch", seed=0)
  with pytest.raises(RuntimeError, match="reset"):
    env.step(1)
  env.reset()
  with pytest.raises(ValueError, match="actions must lie in"):
    env.step(3)
  with pytest.raises(ValueError, match="rows"):
    envs.make("catch", rows=1)
