"""Atari wrapper on the real Pong ROM shipped in the ale-py wheel."""

import numpy as np
import pytest

from tf_metagrad import envs
from tf_metagrad.envs import atari


def test_observation_and_action_spaces():
  env = envs.make("atari:Pong", seed=0)
  assert env.observation_spec.shape == (84, 84, 4)
  assert env.observation_spec.dtype.name == "uint8"
  obs, _ = env.reset()
  assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
  # After reset the stack holds four copies of the first frame.
  for k in range(1, 4):
    np.testing.assert_array_equal(obs[..., k], obs[..., 0])
  assert env.action_space.n == 6  # Pong's minimal action set.
  assert envs.make("atari:Pong", seed=0,
                   full_action_space=True).action_space.n == 18
  assert atari.rom_id("SpaceInvaders") == "space_invaders"
  assert atari.rom_id("space_invaders") == "space_invaders"


def test_noop_starts_advance_the_emulator():
  counts = []
  for seed in range(8):
    env = envs.make("atari:Pong", seed=seed, noop_max=30)
    _, info = env.reset()
    n = info["noop_frames"]
    assert 1 <= n <= 30
    assert info["episode_frame_number"] == n
    assert env.ale.getEpisodeFrameNumber() == n
    counts.append(n)
  assert len(set(counts)) > 1  # The count is random across seeds.
  env = envs.make("atari:Pong", seed=0, noop_max=0)
  _, info = env.reset()
  assert info["noop_frames"] == 0 and env.ale.getEpisodeFrameNumber() == 0
  # Same seed, same no-op count: reset is reproducible.
  first = envs.make("atari:Pong", seed=3).reset()
  again = envs.make("atari:Pong", seed=3).reset()
  np.testing.assert_array_equal(first[0], again[0])
  assert first[1]["noop_frames"] == again[1]["noop_frames"]


def test_frame_cap_truncates_exactly():
  env = envs.make("atari:Pong", seed=0, noop_max=0, max_episode_frames=100)
  env.reset()
  for t in range(25):
    _, _, terminated, truncated, info = env.step(0)
    assert not terminated
    assert truncated == (t == 24)
    assert info["episode_frame_number"] == 4 * (t + 1)
  with pytest.raises(RuntimeError, match="reset"):
    env.step(0)
  # With no-ops the cap still lands exactly on the 100th frame.
  env = envs.make("atari:Pong", seed=1, noop_max=30, max_episode_frames=100)
  _, info = env.reset()
  truncated = False
  while not truncated:
    _, _, terminated, truncated, info = env.step(0)
    assert not terminated
  assert info["episode_frame_number"] == 100
  assert env.ale.getEpisodeFrameNumber() == 100


def test_step_is_max_of_last_two_frames_resized():
  env = envs.make("atari:Pong", seed=4, noop_max=0)
  reference = envs.make("atari:Pong", seed=4, noop_max=0)
  obs, _ = env.reset()
  reference.reset()
  rows = atari.area_resize_matrix(210, 84)
  columns = atari.area_resize_matrix(160, 84)
  ale = reference.ale
  screen = np.zeros((210, 160), np.uint8)
  for t in range(40):
    action = t % env.action_space.n
    new_obs, reward, *_ = env.step(action)
    screens, total = [], 0.0
    for _ in range(4):
      total += ale.act(reference.action_set[action])
      ale.getScreenGrayscale(screen)
      screens.append(screen.copy())
    pooled = np.maximum(screens[2], screens[3]).astype(np.float32)
    frame = np.clip(np.rint(rows @ pooled @ columns.T), 0, 255)
    np.testing.assert_array_equal(new_obs[..., -1], frame.astype(np.uint8))
    np.testing.assert_array_equal(new_obs[..., :3], obs[..., 1:])
    assert reward == total  # Raw score change, never clipped.
    obs = new_obs
  assert obs.std() > 0


def test_area_resize_matrix():
  m = atari.area_resize_matrix(210, 84)
  np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
  # Halving averages pixel pairs exactly.
  half = atari.area_resize_matrix(6, 3)
  np.testing.assert_allclose(half @ np.arange(6.0), [0.5, 2.5, 4.5])
  # 210 -> 84 is a 2.5 stride: pixel 0 covers inputs 0, 1 and half of 2.
  np.testing.assert_allclose(m[0, :3], [0.4, 0.4, 0.2], rtol=1e-6)


def test_batched_atari_auto_resets():
  batch = envs.make_batched("atari:Pong", 2, seed=0, noop_max=0,
                            max_episode_frames=40)
  obs = batch.reset()
  assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
  for t in range(10):
    step = batch.step(np.array([0, 1]))
    assert step.truncated.all() == (t == 9)
  np.testing.assert_array_equal(step.episode_length, [10, 10])
  assert not np.isnan(step.episode_return).any()
  # The auto-reset observation is a fresh stack of identical frames.
  np.testing.assert_array_equal(step.observation[..., 0],
                                step.observation[..., 3])


def test_protocol_defaults():
  """STAC/DrMG protocol: no-ops <= 30, repeat 4, stack 4, 108k frames,
  minimal action set, no sticky actions."""
  env = envs.make("atari:Breakout", seed=0)
  assert (env.noop_max, env.action_repeat, env.frame_stack,
          env.max_episode_frames) == (30, 4, 4, 108_000)
  assert env.action_space.n == 4  # Breakout's minimal set.
  assert env.ale.getFloat("repeat_action_probability") == 0.0


def test_losing_a_life_does_not_end_the_episode():
  env = envs.make("atari:Breakout", seed=0, noop_max=0)
  _, info = env.reset()
  lives = env.ale.lives()
  assert lives == 5
  lost_at = None
  for t in range(2000):
    # FIRE launches the ball; the paddle then stays still and misses it.
    _, _, terminated, truncated, _ = env.step(1)
    if env.ale.lives() < lives:
      lost_at = t
      assert not terminated and not truncated
      break
  assert lost_at is not None, "no life was lost in 2000 steps"
