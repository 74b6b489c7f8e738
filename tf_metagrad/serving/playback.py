"""Playing an exported policy in an environment, and recording a video.

`evaluate(saved_model, ...)` loads an exported policy (or a run directory's
`saved_model`), makes the environment and plays episodes with `play`,
returning their undiscounted returns; the program `tf-metagrad-evaluate`
(`tf_metagrad.programs.evaluate`) prints their mean and standard deviation.
Actions are greedy unless `sample`; sampled actions use the stateless seed
[seed, t] at the t-th step of the call, so calls are reproducible. A
recurrent policy's state is carried from step to step and reset to
`get_initial_state(1)` at the start of every episode.

The environment defaults to the one the policy was trained on, with the
run's env kwargs, over which the given ones apply; another environment gets
only the given ones.

A video is the first episode as an animated GIF (`gif`) of what the
environment draws in Gymnasium's `rgb_array` render mode, at its
`metadata["render_fps"]`: any `gym:` id that lists that mode (it is made
with `render_mode="rgb_array"`), Atari (the newest processed 84 x 84 frame,
what the agent sees) and DM Control (the observed image of `dmc_pixels`, a
120 x 120 camera frame for `dmc`). An environment without it is refused.
MP4 would need an encoder the stack does not ship (ffmpeg); GIF needs none.

Error messages name the program's flags (--env, --env_kwargs, --video),
which pass straight through to these arguments.
"""

import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad import envs
from tf_metagrad import runs
from tf_metagrad.serving import export_policy
from tf_metagrad.serving import gif
from tf_metagrad.serving import saved_policy

_RENDER_MODE = "rgb_array"
_DEFAULT_DELAY_CS = 4  # 25 frames/s, for environments that give no rate.
# Program -> (console script, {package of `python -m`: its module there}).
_PROGRAMS = {
    "export": ("tf-metagrad-export", {"export": "export_policy",
                                      "tf_metagrad.programs": "export"}),
    "evaluate": ("tf-metagrad-evaluate", {"export": "evaluate",
                                          "tf_metagrad.programs": "evaluate"}),
}


def _one_line(error: BaseException) -> str:
  """`error`'s message on one line: environments run the user's code, whose
  messages may span several."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return "; ".join(lines) or type(error).__name__


def command(program: str, args: str) -> str:
  """`program args` quoted as the user runs it, judged by how this process
  was started.

  Under `python -m export.<module>` (the checkout's launchers) or
  `python -m tf_metagrad.programs.<module>` that form; under a console script
  (`tf-metagrad-...`) the console script; otherwise (e.g. a library call)
  the console script and the checkout form.

  Args:
    program: "export" or "evaluate".
    args: its command-line arguments.
  """
  script, modules = _PROGRAMS[program]
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  package = (getattr(spec, "name", None) or "").rpartition(".")[0]
  if package in modules:
    return f"`python -m {package}.{modules[package]} {args}`"
  if os.path.basename(sys.argv[0] if sys.argv else "").startswith(
      "tf-metagrad-"):
    return f"`{script} {args}`"
  return (f"`{script} {args}` (in a checkout: `python -m "
          f"export.{modules['export']} {args}`)")


def saved_model_path(path: str) -> str:
  """The SavedModel that `path` names: `path`, or a run directory's
  `path/saved_model`.

  Raises:
    FileNotFoundError: if there is none; the message says how to export one.
  """
  marker = tf.saved_model.SAVED_MODEL_FILENAME_PB
  if tf.io.gfile.exists(os.path.join(path, marker)):
    return path
  if tf.io.gfile.exists(os.path.join(path, runs.SPEC_FILE)):
    exported = os.path.join(path, export_policy.DEFAULT_OUTPUT)
    if tf.io.gfile.exists(os.path.join(exported, marker)):
      return exported
    raise FileNotFoundError(
        f"{path} is a run directory without an exported policy ({exported} "
        f"holds no {marker}); export it with "
        f"{command('export', '--logdir=' + path)}, then evaluate again.")
  raise FileNotFoundError(
      f"No SavedModel at {path} (no {marker}); pass an exported policy or a "
      f"run directory (its {export_policy.DEFAULT_OUTPUT} is played), or "
      f"export one with {command('export', '--logdir=RUN --output=' + path)}"
      ".")


def check_compatible(policy: saved_policy.LoadedPolicy,
                     env: gymnasium.Env) -> None:
  """Raises ValueError if `env`'s observations do not fit `policy`."""
  spec = env.observation_spec
  env_shape = tuple(spec.shape.as_list())
  if (env_shape != policy.observation_shape or
      spec.dtype != policy.observation_dtype):
    raise ValueError(
        f"The environment's observations (shape {list(env_shape)}, dtype "
        f"{spec.dtype.name}) do not fit the policy, which expects one "
        f"observation of shape {list(policy.observation_shape)} and dtype "
        f"{policy.observation_dtype.name} (trained on "
        f"{policy.metadata['env']}).")


def frame(env: gymnasium.Env, name: str) -> np.ndarray:
  """`env.render()` checked as a video frame (uint8 `[H, W, 3]`).

  Raises:
    ValueError: if rendering fails or returns anything else, on one line.
  """
  try:
    image = env.render()
  except Exception as error:  # pylint: disable=broad-except
    # render() runs the environment's own drawing code (pygame, OpenGL,
    # the user's), whose errors all mean: no video of this environment.
    text = _one_line(error)
    if text != type(error).__name__:
      text = f"{type(error).__name__}: {text}"
    raise ValueError(f"--video: {name} failed to render a frame ({text})."
                     ) from None
  image = np.asarray(image)
  if (image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3):
    raise ValueError(
        f"--video: {name}'s render() returned shape {list(image.shape)} and "
        f"dtype {image.dtype}; expected an RGB frame [H, W, 3] of uint8.")
  return image


def frame_delay_cs(env: gymnasium.Env) -> int:
  """GIF frame delay (1/100 s) of one step of `env`, from Gymnasium's
  `metadata["render_fps"]` (4, i.e. 25 frames/s, when it gives none)."""
  fps = env.metadata.get("render_fps")
  if not isinstance(fps, (int, float)) or not fps > 0:
    return _DEFAULT_DELAY_CS
  return max(2, int(round(100.0 / fps)))


def play(policy: saved_policy.LoadedPolicy, env: gymnasium.Env, episodes: int,
         sample: bool = False, seed: int = 0,
         on_step: Optional[Callable[[int, np.ndarray], None]] = None
         ) -> np.ndarray:
  """Plays `episodes` episodes with batch-of-one actions.

  A recurrent policy starts every episode from its initial state and then
  acts on the state its previous step returned.

  Args:
    policy: a loaded exported policy.
    env: an environment of `tf_metagrad.envs` (its observations must fit
      the policy).
    episodes: K >= 1.
    sample: sample actions instead of taking the greedy ones.
    seed: first half of the sampling seed [seed, step].
    on_step: called with (episode, observation) for every observation,
      the first of each episode included.

  Returns:
    float64 `[K]` undiscounted episode returns.

  Raises:
    ValueError: for K < 1 or an environment that does not fit.
  """
  if episodes < 1:
    raise ValueError(f"episodes must be >= 1, got {episodes}.")
  check_compatible(policy, env)
  returns: List[float] = []
  step = 0
  for episode in range(episodes):
    observation, _ = env.reset()
    state = policy.get_initial_state(1)
    total, done = 0.0, False
    while not done:
      if on_step is not None:
        on_step(episode, observation)
      batch = np.asarray(observation)[None]
      if sample:
        outputs, state = policy.sample_step(batch, [seed, step], state)
        action = outputs["action"][0]
      else:
        action, state = policy.greedy_step(batch, state)
        action = action[0]
      observation, reward, terminated, truncated, _ = env.step(action)
      total += reward
      done = terminated or truncated
      step += 1
    if on_step is not None:
      on_step(episode, observation)
    returns.append(total)
  return np.asarray(returns, np.float64)


def _make_env(name: str, seed: int, kwargs: Dict[str, Any]) -> gymnasium.Env:
  try:
    return envs.make(name, seed=seed, **kwargs)
  except (ValueError, TypeError) as e:
    raise ValueError(f"--env={name} with options {kwargs} (--env_kwargs "
                     f"over the run's): {_one_line(e)}") from None


def _rendering_env(env: gymnasium.Env, name: str, seed: int,
                   kwargs: Dict[str, Any]) -> gymnasium.Env:
  """`env`, or the same environment made again to render `rgb_array`.

  Raises:
    ValueError: if the environment has no `rgb_array` render mode.
  """
  if env.render_mode == _RENDER_MODE:
    return env
  modes = list(env.metadata.get("render_modes") or [])
  env.close()
  if _RENDER_MODE not in modes:
    raise ValueError(
        f"--video needs an environment that renders {_RENDER_MODE} frames "
        f"(Gymnasium's render_mode={_RENDER_MODE!r}), as Atari, DM Control "
        f"and gym: ids that list it do; {name} renders "
        f"{', '.join(modes) or 'nothing'}.")
  return _make_env(name, seed, dict(kwargs, render_mode=_RENDER_MODE))


def evaluate(saved_model: str, env_name: Optional[str] = None,
             episodes: int = 10, sample: bool = False, seed: int = 0,
             env_kwargs: Optional[Dict] = None, video: Optional[str] = None,
             video_max_frames: int = 1000) -> np.ndarray:
  """Loads a policy, plays episodes, optionally writes a GIF of the first.

  Args:
    saved_model: the SavedModel directory, or a run directory (its
      `saved_model` is played).
    env_name: environment name (default: the one trained on).
    episodes: K.
    sample: sample instead of greedy actions.
    seed: environment seed and first half of the sampling seed.
    env_kwargs: environment options, over the run's own when the
      environment is the trained one.
    video: a `.gif` path (any `tf.io.gfile` path), or None.
    video_max_frames: most frames written to the video.

  Returns:
    The K episode returns.

  Raises:
    FileNotFoundError: if there is no SavedModel.
    ValueError: for a bad video path, an environment that does not fit or,
      with `video`, one that cannot render.
  """
  if video is not None and not video.lower().endswith(".gif"):
    raise ValueError(
        f"--video must name a .gif file, got {video!r} (MP4 would need an "
        "ffmpeg encoder, which is not installed).")
  policy = saved_policy.load_policy(saved_model_path(saved_model))
  trained_env = policy.metadata["env"]
  kwargs = {}
  if env_name in (None, trained_env):
    kwargs = json.loads(policy.metadata["run_spec_json"]).get(
        "env_kwargs", {})
  kwargs.update(env_kwargs or {})
  name = env_name or trained_env
  env = _make_env(name, seed, kwargs)
  frames: List[np.ndarray] = []
  on_step = None
  if video is not None:
    env = _rendering_env(env, name, seed, kwargs)

    def on_step(episode, observation):
      del observation  # The frame is drawn from the same state.
      if episode == 0 and len(frames) < video_max_frames:
        frames.append(frame(env, name))

  try:
    returns = play(policy, env, episodes, sample=sample, seed=seed,
                   on_step=on_step)
    if video is not None:
      directory = os.path.dirname(video)
      if directory:
        tf.io.gfile.makedirs(directory)
      gif.write(video, frames, frame_delay_cs(env))
  finally:
    env.close()
  return returns
