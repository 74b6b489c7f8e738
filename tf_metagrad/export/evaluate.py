r"""Plays episodes with an exported policy and reports the return.

Usage:
  python -m export.evaluate --saved_model=PATH [--env=NAME] [--episodes=K] \
      [--sample] [--seed=S] [--env_kwargs=JSON] [--video=FILE.gif]

prints `mean_return=<float> std_return=<float> episodes=K` (std is the
population standard deviation over the K episode returns). Actions are
greedy unless `--sample` is given; sampled actions use the stateless seed
[S, t] at the t-th step of the run, so runs are reproducible. A recurrent
policy's state is carried from step to step and reset to
`get_initial_state(1)` at the start of every episode.

`--env` defaults to the environment the policy was trained on, and
`--env_kwargs` (a JSON object) is applied over that run's env kwargs when
the environment is the same one. `--video` writes the frames of the first
episode as an animated GIF (at most `--video_max_frames` frames): for Atari
the newest processed 84 x 84 frame of the observation stack (what the agent
sees), for `dmc_pixels` the RGB observation and for `dmc` features a frame
rendered from the physics. MP4 would need an encoder the stack does not
ship (ffmpeg); GIF needs none.
"""

import json
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

from absl import app
from absl import flags
import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad.export import cli
from tf_metagrad.export import gif
from tf_metagrad.export import serving
from tf_metagrad import envs

_ATARI_FPS = 60.0  # Emulator frames per second.
_RENDER_SIZE = 120  # Side of frames rendered from DM Control physics.


def check_compatible(policy: serving.LoadedPolicy,
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


def frame_source(env: gymnasium.Env) -> Callable[[np.ndarray], np.ndarray]:
  """observation -> video frame for Atari and DM Control environments.

  Raises:
    ValueError: for other environment families.
  """
  # Imported here: these modules only matter for videos.
  from tf_metagrad.envs import atari  # pylint: disable=g-import-not-at-top
  from tf_metagrad.envs import dmc  # pylint: disable=g-import-not-at-top
  base = getattr(env, "unwrapped", env)
  if isinstance(base, atari.AtariEnv):
    return lambda observation: observation[..., -1]
  if isinstance(base, dmc.DMCEnv):
    if base.pixels:
      return lambda observation: observation
    return lambda _: np.asarray(base.env.physics.render(
        _RENDER_SIZE, _RENDER_SIZE, camera_id=base.camera_id), np.uint8)
  raise ValueError(
      "--video needs an Atari (atari:<Game>) or DM Control (dmc:..., "
      f"dmc_pixels:...) environment, got {type(base).__name__}.")


def frame_delay_cs(env: gymnasium.Env) -> int:
  """GIF frame delay (1/100 s) of one agent step of `env`."""
  base = getattr(env, "unwrapped", env)
  if hasattr(base, "ale"):
    seconds = base.action_repeat / _ATARI_FPS
  else:
    seconds = base.env.control_timestep() * base.action_repeat
  return max(2, int(round(100 * seconds)))


def play(policy: serving.LoadedPolicy, env: gymnasium.Env, episodes: int,
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


def evaluate(saved_model: str, env_name: Optional[str] = None,
             episodes: int = 10, sample: bool = False, seed: int = 0,
             env_kwargs: Optional[Dict] = None, video: Optional[str] = None,
             video_max_frames: int = 1000) -> np.ndarray:
  """Loads a policy, plays episodes, optionally writes a GIF of the first.

  Args:
    saved_model: the SavedModel directory.
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
    ValueError: for a bad video path or an environment that does not fit.
  """
  if video is not None and not video.lower().endswith(".gif"):
    raise ValueError(
        f"--video must name a .gif file, got {video!r} (MP4 would need an "
        "ffmpeg encoder, which is not installed).")
  policy = serving.load_policy(saved_model)
  trained_env = policy.metadata["env"]
  kwargs = {}
  if env_name in (None, trained_env):
    kwargs = json.loads(policy.metadata["run_spec_json"]).get(
        "env_kwargs", {})
  kwargs.update(env_kwargs or {})
  try:
    env = envs.make(env_name or trained_env, seed=seed, **kwargs)
  except (ValueError, TypeError) as e:
    raise ValueError(f"--env={env_name or trained_env} with options "
                     f"{kwargs} (--env_kwargs over the run's): "
                     f"{cli.one_line(e)}") from None
  frames: List[np.ndarray] = []
  on_step = None
  if video is not None:
    to_frame = frame_source(env)

    def on_step(episode, observation):
      if episode == 0 and len(frames) < video_max_frames:
        frames.append(to_frame(observation))

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


def _define_flags():
  flags.DEFINE_string("saved_model", None, "Exported policy directory.")
  flags.DEFINE_string("env", None, "Environment (default: the trained one).")
  flags.DEFINE_integer("episodes", 10, "Episodes to play.")
  flags.DEFINE_bool("sample", False, "Sample actions instead of greedy.")
  flags.DEFINE_integer("seed", 0, "Environment and sampling seed.")
  flags.DEFINE_string("env_kwargs", None, "JSON object of env options.")
  flags.DEFINE_string("video", None, "Write the first episode to FILE.gif.")
  flags.DEFINE_integer("video_max_frames", 1000, "Most frames in --video.")
  flags.mark_flag_as_required("saved_model")
  cli.register({
      "episodes": cli.integer(1),
      "seed": cli.integer(0, cli.SEED_MAX),
      "video_max_frames": cli.integer(1),
      "env_kwargs": (_is_json_object,
                     'expected a JSON object, e.g. \'{"rows": 6}\''),
      "video": (lambda v: v is None or v.lower().endswith(".gif"),
                "expected a FILE.gif path (MP4 would need an ffmpeg encoder, "
                "which is not installed)"),
  })


def _is_json_object(text: Optional[str]) -> bool:
  if text is None:
    return True
  try:
    return isinstance(json.loads(text), dict)
  except ValueError:
    return False


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  if options.video is not None and tf.io.gfile.isdir(options.video):
    raise cli.FlagError(f"--video={options.video}: names a directory; "
                        "expected a FILE.gif path")
  try:
    env_kwargs = json.loads(options.env_kwargs) if options.env_kwargs else {}
    returns = evaluate(options.saved_model, options.env, options.episodes,
                       sample=options.sample, seed=options.seed,
                       env_kwargs=env_kwargs, video=options.video,
                       video_max_frames=options.video_max_frames)
  except (OSError, ValueError, RuntimeError, tf.errors.OpError) as error:
    print(f"evaluate: error: {error}", file=sys.stderr)
    return 1
  print(f"mean_return={returns.mean():.6g} std_return={returns.std():.6g} "
        f"episodes={returns.size}")
  return 0


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.scripts`)."""
  _define_flags()
  cli.run(main, prefix="evaluate: error: ")


if __name__ == "__main__":
  run()
