"""Playing episodes with an exported policy, and episode videos."""

import importlib.machinery
import os
import re
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import helpers
from tf_metagrad import envs
from tf_metagrad import runs
from tf_metagrad.programs import evaluate
from tf_metagrad.serving import export_policy
from tf_metagrad.serving import gif
from tf_metagrad.serving import playback
from tf_metagrad.serving import saved_policy


_BIN = os.path.dirname(sys.executable)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def catch_policy(tmp_path_factory):
  """(learner, SavedModel path) of a run directory that holds its export."""
  logdir = tmp_path_factory.mktemp("catch")
  spec, learner, _, _ = helpers.make_run(logdir, "impala", "catch",
                                         env_kwargs=dict(rows=6, columns=4))
  path = export_policy.export(learner, spec, 0, str(logdir / "saved_model"))
  return learner, path


@pytest.mark.parametrize("sample", [False, True])
def test_returns_equal_the_in_process_policy(catch_policy, sample):
  learner, path = catch_policy
  # The run's env kwargs (a 6 x 4 board) apply when --env is omitted.
  returns = playback.evaluate(path, episodes=8, sample=sample, seed=11)
  assert returns.shape == (8,)
  np.testing.assert_array_equal(
      returns, helpers.reference_returns(learner, 11, 8, sample))


def test_play_sees_every_observation(catch_policy):
  policy = saved_policy.load_policy(catch_policy[1])
  seen = []
  env = envs.make("catch", seed=2, rows=6, columns=4)
  returns = playback.play(policy, env, 2,
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
    playback.evaluate(path, env_name="catch", episodes=1,
                      env_kwargs=dict(rows=10, columns=5))
  with pytest.raises(ValueError, match="must name a .gif file"):
    playback.evaluate(path, episodes=1, video=str(tmp_path / "a.mp4"))
  with pytest.raises(ValueError, match=r"--video needs an environment that "
                     r"renders rgb_array frames .*; catch renders nothing\.$"):
    playback.evaluate(path, episodes=1, video=str(tmp_path / "a.gif"))
  assert not (tmp_path / "a.gif").exists()
  with pytest.raises(ValueError, match="episodes must be >= 1"):
    playback.evaluate(path, episodes=0)
  with pytest.raises(FileNotFoundError, match="No SavedModel at"):
    playback.evaluate(str(tmp_path), episodes=1)


def test_a_run_directory_plays_its_saved_model(catch_policy):
  learner, path = catch_policy
  returns = playback.evaluate(os.path.dirname(path), episodes=4, seed=5)
  np.testing.assert_array_equal(
      returns, helpers.reference_returns(learner, 5, 4, False))


def test_hints_name_the_command_the_user_runs(tmp_path, monkeypatch):
  runs.save_spec(str(tmp_path), runs.RunSpec(agent="impala", env="catch"))
  # A library call cannot tell how the user runs programs: both forms.
  with pytest.raises(FileNotFoundError) as error:
    playback.saved_model_path(str(tmp_path))
  assert str(error.value) == (
      f"{tmp_path} is a run directory without an exported policy "
      f"({tmp_path}/saved_model holds no saved_model.pb); export it with "
      f"`tf-metagrad-export --logdir={tmp_path}` (in a checkout: "
      f"`python -m export.export_policy --logdir={tmp_path}`), then "
      "evaluate again.")
  monkeypatch.setattr(sys, "argv", ["/venv/bin/tf-metagrad-evaluate"])
  assert playback.command("export", "--logdir=R") == (
      "`tf-metagrad-export --logdir=R`")
  # `python -m` of a program module: that package's module.
  main = types.ModuleType("__main__")
  main.__spec__ = importlib.machinery.ModuleSpec(
      "tf_metagrad.programs.evaluate", None)
  monkeypatch.setitem(sys.modules, "__main__", main)
  assert playback.command("export", "--logdir=R") == (
      "`python -m tf_metagrad.programs.export --logdir=R`")


def _error_line(result):
  assert result.returncode == 1, result.stderr[-3000:]
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  return lines[0]


def test_unexported_run_directory_hint_per_launcher(tmp_path):
  runs.save_spec(str(tmp_path), runs.RunSpec(agent="impala", env="catch"))
  expected = (f"error: {tmp_path} is a run directory without an exported "
              f"policy ({tmp_path}/saved_model holds no saved_model.pb); "
              "export it with `{}`, then evaluate again.")
  script = helpers.run_clean(
      [os.path.join(_BIN, "tf-metagrad-evaluate"),
       f"--saved_model={tmp_path}"], cwd=tmp_path)
  assert _error_line(script) == expected.format(
      f"tf-metagrad-export --logdir={tmp_path}")
  module = helpers.run_clean(
      [sys.executable, "-m", "export.evaluate", f"--saved_model={tmp_path}"],
      cwd=_ROOT)
  assert _error_line(module) == expected.format(
      f"python -m export.export_policy --logdir={tmp_path}")


def test_env_kwargs_take_the_trainers_syntax_or_one_json_object():
  assert evaluate.parse_env_kwargs(["rows=6", "columns=4", "name=x y"]) == {
      "rows": 6, "columns": 4, "name": "x y"}
  assert evaluate.parse_env_kwargs(['{"rows": 6, "columns": 4}']) == {
      "rows": 6, "columns": 4}
  assert evaluate.parse_env_kwargs([" {}"]) == {}
  assert evaluate.parse_env_kwargs([]) == {}
  with pytest.raises(ValueError, match="entries must look like name=value, "
                     "got 'rows'. One JSON object is accepted too"):
    evaluate.parse_env_kwargs(["rows"])
  with pytest.raises(ValueError, match="not a JSON object"):
    evaluate.parse_env_kwargs(['{"rows": 6'])
  with pytest.raises(ValueError, match="a JSON object must be the only"):
    evaluate.parse_env_kwargs(['{"rows": 6}', "columns=4"])


def test_evaluate_binary_on_a_run_directory_with_name_value_env_kwargs(
    catch_policy, tmp_path):
  logdir = os.path.dirname(catch_policy[1])
  # Another name of Catch, so the run's own 6 x 4 kwargs do not apply: the
  # policy fits only if the flags reach the environment.
  env = "gym:tf_metagrad/Catch-v0"
  result = helpers.run_clean(
      [os.path.join(_BIN, "tf-metagrad-evaluate"), f"--saved_model={logdir}",
       f"--env={env}", "--env_kwargs=rows=6", "--env_kwargs=columns=4",
       "--episodes=3", "--seed=2"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  match = re.fullmatch(r"mean_return=(\S+) std_return=\S+ episodes=3\n",
                       result.stdout)
  assert match, result.stdout
  returns = playback.evaluate(
      catch_policy[1], env, episodes=3, seed=2,
      env_kwargs=evaluate.parse_env_kwargs(['{"rows": 6, "columns": 4}']))
  assert float(match.group(1)) == pytest.approx(returns.mean(), abs=1e-6)
  with pytest.raises(ValueError, match=r"observations \(shape \[10, 5\]"):
    playback.evaluate(catch_policy[1], env, episodes=1)


def test_gymnasium_rgb_array_video(tmp_path, capfd):
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala",
                                         "gym:CartPole-v1")
  path = export_policy.export(learner, spec, 0, str(tmp_path / "policy"))
  video = tmp_path / "cartpole.gif"
  returns = playback.evaluate(path, episodes=1, seed=3, video=str(video),
                              video_max_frames=4)
  assert returns.shape == (1,) and returns[0] >= 1.0
  data = video.read_bytes()
  frames = tf.io.decode_gif(data).numpy()
  # CartPole draws 600 x 400 RGB frames at 50 frames/s.
  assert frames.shape == (4, 400, 600, 3)
  assert _gif_delay_cs(data) == 2
  # The cart moves between the frames, and the scene is in colour.
  assert len({f.tobytes() for f in frames}) > 1
  assert (frames[..., 0] != frames[..., 2]).any()
  # Off-screen rendering says nothing (SDL's missing-display line).
  assert "XDG_RUNTIME_DIR" not in capfd.readouterr().err


def test_atari_video_is_a_gif_of_the_episode(tmp_path):
  env_kwargs = dict(max_episode_frames=100, noop_max=0)
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala", "atari:Pong",
                                         env_kwargs=env_kwargs)
  path = export_policy.export(learner, spec, 0, str(tmp_path / "policy"))
  video = tmp_path / "videos" / "pong.gif"
  returns = playback.evaluate(path, episodes=1, seed=4, video=str(video),
                              video_max_frames=20)
  assert returns.shape == (1,)
  data = video.read_bytes()
  assert data[:6] == b"GIF89a" and data[-1:] == b"\x3b"
  frames = tf.io.decode_gif(data).numpy()
  # 100 emulator frames at action repeat 4: 25 steps, 26 observations,
  # capped at 20 frames.
  assert frames.shape == (20, 84, 84, 3)

  observations = []
  playback.play(saved_policy.load_policy(path),
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


def test_gif_stores_gray_rgb_frames_exactly_and_keeps_one_palette():
  rng = np.random.default_rng(2)
  gray = rng.integers(0, 256, (3, 5, 7)).astype(np.uint8)
  decoded = tf.io.decode_gif(gif.encode(
      np.repeat(gray[..., None], 3, axis=-1))).numpy()
  np.testing.assert_array_equal(decoded, np.repeat(gray[..., None], 3, -1))
  # A black frame in a colour video is drawn from the colour palette too.
  colour = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
  black = np.zeros_like(colour)
  decoded = tf.io.decode_gif(gif.encode([black, colour])).numpy()
  palette = gif.color_palette()
  np.testing.assert_array_equal(decoded[1],
                                palette[gif.quantize(colour)[0]])
  np.testing.assert_array_equal(decoded[0], black)


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
  returns = playback.evaluate(path, episodes=1, video=str(video),
                              video_max_frames=6)
  assert returns.shape == (1,) and 0.0 <= returns[0] <= 1000.0
  data = video.read_bytes()
  frames = tf.io.decode_gif(data).numpy()
  side = 84 if env_name.startswith("dmc_pixels") else 120
  assert frames.shape == (6, side, side, 3)
  assert frames.std() > 0  # A rendered scene, not a blank image.
  assert _gif_delay_cs(data) == 10  # 10 control steps of 0.01 s.
