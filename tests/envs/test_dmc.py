"""DM Control cartpole-swingup with features and (when possible) pixels."""

import os
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

from tf_metagrad import envs
from tf_metagrad.envs import spaces


def test_features_episode_on_the_suite_scale():
  env = envs.make("dmc:cartpole-swingup", seed=0, action_repeat=8)
  assert env.observation_spec.shape == (5,)  # position 3 + velocity 2.
  assert env.observation_spec.dtype.name == "float32"
  assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (1,),
                                                  np.float32)
  obs, _ = env.reset()
  assert obs.shape == (5,) and obs.dtype == np.float32
  total, steps = 0.0, 0
  while True:
    obs, reward, terminated, truncated, _ = env.step(
        np.array([np.sin(steps / 5.0)], np.float32))
    total += reward
    steps += 1
    assert 0.0 <= reward <= 8.0
    if terminated or truncated:
      break
  # 1000 control steps / repeat 8; the time limit truncates.
  assert steps == 125 and truncated and not terminated
  assert 0.0 < total <= 1000.0


def test_action_repeat_sums_control_step_rewards():
  once = envs.make("dmc:cartpole-swingup", seed=3, action_repeat=1)
  twice = envs.make("dmc:cartpole-swingup", seed=3, action_repeat=2)
  np.testing.assert_array_equal(once.reset()[0], twice.reset()[0])
  for t in range(10):
    action = np.array([0.8 if t % 3 else -0.5], np.float32)
    r1 = once.step(action)[1]
    obs1, r1_second, *_ = once.step(action)
    obs2, r2, *_ = twice.step(action)
    assert r2 == pytest.approx(r1 + r1_second, abs=1e-12)
    np.testing.assert_array_equal(obs2, obs1)


def test_rescale_action_to_task_bounds():
  low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
  np.testing.assert_allclose(
      spaces.rescale_action([-1.0, 1.0], low, high), [-2.0, 10.0])
  np.testing.assert_allclose(
      spaces.rescale_action([0.5, 0.0], low, high), [1.0, 5.0])
  np.testing.assert_allclose(
      spaces.rescale_action([7.0, -7.0], low, high), [2.0, 0.0])
  with pytest.raises(ValueError, match="shape"):
    spaces.rescale_action([0.0], low, high)


def test_batched_features():
  batch = envs.make_batched("dmc:walker-walk", 2, seed=1)
  obs = batch.reset()
  assert obs.shape == (2, 24) and obs.dtype == np.float32
  step = batch.step(np.zeros((2, 6), np.float32))
  assert step.reward.shape == (2,) and step.reward.dtype == np.float32


def test_pixels():
  try:
    env = envs.make("dmc_pixels:cartpole-swingup", seed=0)
  except RuntimeError as error:
    if "renderer" not in str(error):
      raise
    pytest.skip(f"no offscreen OpenGL renderer (EGL/OSMesa) works here: "
                f"{error}")
  assert env.observation_spec.shape == (84, 84, 3)
  assert env.observation_spec.dtype.name == "uint8"
  obs, _ = env.reset()
  assert obs.shape == (84, 84, 3) and obs.dtype == np.uint8
  assert obs.std() > 5  # A real scene, not a blank frame.
  for _ in range(20):
    new_obs, *_ = env.step(np.array([1.0], np.float32))
  assert not np.array_equal(new_obs, obs)  # The cart moved.


_WITHOUT_RENDERER = """
import numpy as np
from tf_metagrad import envs
env = envs.make("dmc:cartpole-swingup", seed=0)
env.reset()
env.step(np.zeros(1, np.float32))
try:
  envs.make("dmc_pixels:cartpole-swingup", seed=0).reset()
except RuntimeError as error:
  print("ERROR:", error)
"""


def test_without_a_renderer_features_run_and_pixels_say_why():
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  result = subprocess.run(
      [sys.executable, "-c", _WITHOUT_RENDERER],
      env=dict(os.environ, MUJOCO_GL="disabled", PYTHONPATH=root),
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  message = result.stdout.split("ERROR:", 1)[-1]
  assert "ERROR:" in result.stdout, result.stdout
  assert "offscreen OpenGL renderer" in message
  assert "MUJOCO_GL=egl" in message and "dmc:<domain>-<task>" in message
