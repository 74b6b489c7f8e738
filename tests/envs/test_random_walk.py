"""Non-stationary random walk: exact switch step and true values."""

import numpy as np
import pytest

from tf_metagrad import envs
from tf_metagrad.envs import random_walk

LEFT, RIGHT = 0, 1


def _exit_left_at(step_index, **kwargs):
  """Bounces right/left, then walks off the left end at `step_index`."""
  env = envs.make("random_walk", seed=0, random_moves=False, **kwargs)
  env.reset()
  wasted = step_index - 2  # Three left moves from the centre exit the chain.
  assert wasted % 2 == 0
  for t in range(wasted):
    _, reward, terminated, _, info = env.step(RIGHT if t % 2 == 0 else LEFT)
    assert reward == 0.0 and not terminated
  for _ in range(2):
    env.step(LEFT)
  assert env.unwrapped.core.total_steps[0] == step_index
  obs, reward, terminated, _, _ = env.step(LEFT)
  assert terminated and not obs.any()
  return reward, env


def test_left_reward_switches_exactly_at_step_960():
  # On a 5-state chain every exit happens at an even 0-based step index, so
  # 958 and 960 are the last and first left exits around the switch.
  reward_before, _ = _exit_left_at(958)
  reward_after, env = _exit_left_at(960)
  assert reward_before == 0.0
  assert reward_after == -1.0
  # The clock runs across episodes: the next switch back is at step 1920.
  env.reset()
  assert env.unwrapped.core.current_left_reward()[0] == -1.0
  for t in range(1920 - 961):
    _, _, terminated, _, _ = env.step(RIGHT if t % 2 == 0 else LEFT)
    assert not terminated
  assert env.unwrapped.core.current_left_reward()[0] == 0.0


def test_info_reports_the_reward_of_the_next_step():
  env = envs.make("random_walk", seed=3)
  _, info = env.reset()
  seen = {}
  for _ in range(962):
    seen[int(info["total_steps"])] = float(info["left_reward"])
    _, _, terminated, _, info = env.step(0)
    if terminated:
      _, info = env.reset()
  assert seen[0] == 0.0 and seen[959] == 0.0
  assert seen[960] == -1.0 and seen[961] == -1.0


def test_random_moves_exit_both_ends_with_the_right_rewards():
  env = envs.make("random_walk", seed=5, switch_every=50)
  obs, _ = env.reset()
  exits = {(0, 0.0): 0, (0, -1.0): 0, (4, 1.0): 0}
  for n in range(3000):
    state = int(np.argmax(obs))
    obs, reward, terminated, _, _ = env.step(0)
    if terminated:
      expected_left = 0.0 if (n // 50) % 2 == 0 else -1.0
      if state == 0 and reward != 1.0:
        assert reward == expected_left
      else:
        assert state == 4 and reward == 1.0
      exits[(state, reward)] = exits.get((state, reward), 0) + 1
      obs, _ = env.reset()
  assert all(count > 10 for count in exits.values()), exits


def _value_iteration(num_states, left, right, discount, sweeps=5000):
  """Brute-force Bellman sweeps over the chain, exits absorbing at 0."""
  values = np.zeros(num_states)
  for _ in range(sweeps):
    new = np.zeros(num_states)
    for s in range(num_states):
      left_value = left if s == 0 else discount * values[s - 1]
      right_value = right if s == num_states - 1 else discount * values[s + 1]
      new[s] = 0.5 * left_value + 0.5 * right_value
    values = new
  return values


@pytest.mark.parametrize("discount", [1.0, 0.9, 0.5])
@pytest.mark.parametrize("left", [0.0, -1.0])
def test_true_values_match_value_iteration(discount, left):
  expected = _value_iteration(5, left, 1.0, discount)
  np.testing.assert_allclose(
      random_walk.random_walk_values(5, left, 1.0, discount), expected,
      atol=1e-10)


def test_true_values_closed_form_and_switch():
  env = envs.make("random_walk", seed=0)
  env.reset()
  np.testing.assert_allclose(env.true_values(), np.arange(1, 6) / 6,
                             atol=1e-12)
  for _ in range(960):
    _, _, terminated, _, _ = env.step(0)
    if terminated:
      env.reset()
  # Left exit -1: v(s) = P(right exit) - P(left exit) = (2 (s + 1) - 6) / 6.
  np.testing.assert_allclose(env.true_values(), (2 * np.arange(1, 6) - 6) / 6,
                             atol=1e-12)


def test_monte_carlo_return_from_centre_matches_true_value():
  batch = envs.make_batched("random_walk", 2000, seed=11)
  batch.reset()
  returns = []
  for _ in range(60):
    step = batch.step(np.zeros(2000, np.int64))
    returns.extend(step.episode_return[~np.isnan(step.episode_return)])
  # 60 < 960 steps per copy, so every episode saw left reward 0.
  returns = np.asarray(returns)
  assert len(returns) > 5000
  standard_error = returns.std() / np.sqrt(len(returns))
  true_centre = batch.core.true_values(1.0)[0, 2]
  assert true_centre == pytest.approx(0.5)
  assert abs(returns.mean() - true_centre) < 4 * standard_error
