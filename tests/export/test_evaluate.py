"""Playing episodes with an exported policy, and episode videos."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.export import evaluate
from tf_metagrad.export import export_policy
from tf_metagrad.export import gif
from tf_metagrad.export import serving
from tests.export import helpers
from tf_metagrad import envs


@pytest.fixture(scope="module")
def catch_policy(tmp_path_factory):
  logdir = tmp_path_factory.mktemp("catch")
  spec, learner, _, _ = helpers.make_run(logdir, "impala", "catch",
                                         env_kwargs=dict(rows=6, columns=4))
  path = export_policy.export(learner, spec, 0, str(logdir / "policy"))
  return learner, path


@pytest.mark.parametrize("sample", [False, True])
def test_returns_equal_the_in_process_policy(catch_policy, sample):
  learner, path = catch_policy
  # The run's env kwargs (a 6 x 4 board) apply when --env is omitted.
  returns = evaluate.evaluate(path, episodes=8, sample=sample, seed=11)
  assert returns.shape == (8,)
  np.testing.assert_array_equal(
      returns, helpers.reference_returns(learner, 11, 8, sample))


def test_play_sees_every_observation(catch_policy):
  policy = serving.load_policy(catch_policy[1])
  seen = []
  env = envs.make("catch", seed=2, rows=6, columns=4)
  returns = evaluate.play(policy, env, 2,
                          on_step=lambda e, o: seen.append((e, o)))
  # Catch episodes last rows - 1 = 5 steps: 6 observations each.
  assert [e for e, _ in seen] == [0] * 6 + [1] * 6
  assert all(o.shape == (6, 4) for _, o in seen)
  assert returns.shape == (2,)


def test_errors(catch_policy, tmp_path):
  path = catch_policy[1]
  with pytest.raises(ValueError, match=r"observations \(shape \[10, 5\], "
                     r"dtype float32\) do not fit the policy, which expects "
                     r"one observation of shape \[6, 4\]"):
    evaluate.evaluate(path, env_name="catch", episodes=1,
                      env_kwargs=dict(rows=10, columns=5))
  with pytest.raises(ValueError, match="must name a .gif file"):
    evaluate.evaluate(path, episodes=1, video=str(tmp_path / "a.mp4"))
  with pytest.raises(ValueError, match="needs an Atari"):
    evaluate.evaluate(path, episodes=1, video=str(tmp_path / "a.gif"))
  with pytest.raises(ValueError, match="episodes must be >= 1"):
    evaluate.evaluate(path, episodes=0)
  with pytest.raises(FileNotFoundError, match="No SavedModel at"):
    evaluate.evaluate(str(tmp_path), episodes=1)


def test_atari_video_is_a_gif_of_the_episode(tmp_path):
  env_kwargs = dict(max_episode_frames=100, noop_max=0)
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala", "atari:Pong",
                                         env_kwargs=env_kwargs)
  path = export_policy.export(learner, spec, 0, str(tmp_path / "policy"))
  video = tmp_path / "videos" / "pong.gif"
  returns = evaluate.evaluate(path, episodes=1, seed=4, video=str(video),
                              video_max_frames=20)
  assert returns.shape == (1,)
  data = video.read_bytes()
  assert data[:6] == b"GIF89a" and data[-1:] == b"\x3b"
  frames = tf.io.decode_gif(data).numpy()
  # 100 emulator frames at action repeat 4: 25 steps, 26 observations,
  # capped at 20 frames.
  assert frames.shape == (20, 84, 84, 3)

  observations = []
  evaluate.play(serving.load_policy(path),
                envs.make("atari:Pong", seed=4, **env_kwargs), 1,
                on_step=lambda _, o: observations.append(o))
  assert len(observations) == 26
  expected = np.stack([o[..., -1] for o in observations[:20]])
  for channel in range(3):  # Gray frames are stored exactly.
    np.testing.assert_array_equal(frames[..., channel], expected)
  assert len({f.tobytes() for f in expected}) > 1


def test_gif_round_trips_through_tensorflows_decoder():
  rng = np.random.default_rng(0)
  first = rng.integers(0, 256, (30, 41, 3)).astype(np.uint8)
  second = first.copy()
  second[5:9, 7:20] = rng.integers(0, 256, (4, 13, 3))
  frames = [first, second, second, first]
  decoded = tf.io.decode_gif(gif.encode(frames)).numpy()
  palette = gif.color_palette()
  assert decoded.shape == (4, 30, 41, 3)
  for frame, got in zip(frames, decoded):
    np.testing.assert_array_equal(got, palette[gif.quantize(frame)[0]])
  # Nearest palette colour: within half a cube step per channel.
  error = np.abs(palette[gif.quantize(first)[0]].astype(int) - first)
  assert error.max() <= 51


def test_gif_quantizes_to_the_nearest_palette_colour():
  rng = np.random.default_rng(1)
  pixels = rng.integers(0, 256, (500, 3)).astype(np.uint8)
  indices, palette = gif.quantize(pixels[None])
  distances = ((pixels[:, None, :].astype(int) - palette[None].astype(int))
               ** 2).sum(-1)
  np.testing.assert_array_equal(
      distances[np.arange(500), indices[0]], distances.min(axis=1))


def test_gif_rejects_bad_frames():
  with pytest.raises(ValueError, match="frames must not be empty"):
    gif.encode([])
  with pytest.raises(ValueError, match=r"got frame 0 of shape \(4, 4, 4\)"):
    gif.encode([np.zeros((4, 4, 4), np.uint8)])
  with pytest.raises(ValueError, match="share one shape"):
    gif.encode([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)])


def _gif_delay_cs(data: bytes) -> int:
  # Header 6 + screen descriptor 7 + palette 768 + loop extension 19 bytes,
  # then the first graphic control extension: 21 F9 04 <flags> <delay>.
  assert data[800:803] == b"\x21\xf9\x04"
  return int.from_bytes(data[804:806], "little")


@pytest.mark.parametrize("env_name", ["dmc:cartpole-swingup",
                                      "dmc_pixels:cartpole-swingup"])
def test_dm_control_video(tmp_path, env_name):
  try:
    envs.make("dmc_pixels:cartpole-swingup", seed=0).close()
  except RuntimeError as error:
    pytest.skip(f"no offscreen OpenGL renderer: {error}")
  # 1000 control steps at action repeat 10: 100 agent steps.
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala", env_name,
                                         env_kwargs=dict(action_repeat=10))
  path = export_policy.export(learner, spec, 0, str(tmp_path / "policy"))
  video = tmp_path / "episode.gif"
  returns = evaluate.evaluate(path, episodes=1, video=str(video),
                              video_max_frames=6)
  assert returns.shape == (1,) and 0.0 <= returns[0] <= 1000.0
  data = video.read_bytes()
  frames = tf.io.decode_gif(data).numpy()
  side = 84 if env_name.startswith("dmc_pixels") else 120
  assert frames.shape == (6, side, side, 3)
  assert frames.std() > 0  # A rendered scene, not a blank image.
  assert _gif_delay_cs(data) == 10  # 10 control steps of 0.01 s.
