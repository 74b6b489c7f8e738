r"""Plays episodes with an exported policy and reports the return.

Usage:
  tf-metagrad-evaluate --saved_model=PATH [--env=NAME] [--episodes=K] \
      [--sample] [--seed=S] [--env_kwargs=NAME=VALUE ...] [--video=FILE.gif]

(`python -m export.evaluate` in a checkout) prints `mean_return=<float>
std_return=<float> episodes=K` (std is the population standard deviation
over the K episode returns). PATH is an exported policy, or a run directory
(one holding run_spec.json), whose `PATH/saved_model` is then played.
Actions are greedy unless `--sample` is given; sampled actions use the
stateless seed [S, t] at the t-th step of the run, so runs are
reproducible. A recurrent policy's state is carried from step to step and
reset to `get_initial_state(1)` at the start of every episode.

`--env` defaults to the environment the policy was trained on. `--env_kwargs`
takes the trainer's syntax, `name=value` repeated for more options, or one
JSON object (`--env_kwargs='{"rows": 6}'`); it is applied over the run's env
kwargs when the environment is the same one.

`--video` writes the first episode as an animated GIF (at most
`--video_max_frames` frames) of what the environment draws in Gymnasium's
`rgb_array` render mode, at its `metadata["render_fps"]`: any `gym:` id that
lists that mode, Atari and DM Control (see `tf_metagrad.serving.playback`).
An environment without it is refused. MP4 would need an encoder the stack
does not ship (ffmpeg); GIF needs none.

A bad flag ends with one line on stderr and exit code 1 before TensorFlow is
imported; so does a policy or environment that cannot be played, after.
"""

import json
import os
import sys
from typing import Any, Dict, Sequence

from absl import app
from absl import flags

from tf_metagrad.programs import cli
from tf_metagrad.programs import overrides


def parse_env_kwargs(items: Sequence[str]) -> Dict[str, Any]:
  """`--env_kwargs`: the trainer's `name=value` items, or one JSON object.

  Args:
    items: the flag's values; a single one starting with "{" is JSON.

  Returns:
    Option name -> value.

  Raises:
    ValueError: for an item that is neither, or a JSON object next to
      other items.
  """
  items = list(items or ())
  if not any(item.lstrip().startswith("{") for item in items):
    try:
      return overrides.parse_env_kwargs(items)
    except ValueError as error:
      raise ValueError(f"{cli.one_line(error)} One JSON object is accepted "
                       "too, e.g. --env_kwargs='{\"rows\": 6}'.") from None
  if len(items) > 1:
    raise ValueError("a JSON object must be the only --env_kwargs; set "
                     "options one by one with name=value instead")
  try:
    return json.loads(items[0])
  except ValueError as error:
    raise ValueError(f"not a JSON object ({error})") from None


def _is_directory(path: str) -> bool:
  """Whether `path` is a directory; through TensorFlow's file systems only
  for a URL (gs://, ram://), which the os module cannot read."""
  if not cli.is_url(path):
    return os.path.isdir(path)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile.isdir(path)


def _define_flags():
  # Defined only when run as a program, as the other programs define their
  # own --env and --seed.
  flags.DEFINE_string("saved_model", None,
                      "Exported policy directory, or a run directory (its "
                      "saved_model is played).")
  flags.DEFINE_string("env", None, "Environment (default: the trained one).")
  flags.DEFINE_integer("episodes", 10, "Episodes to play.")
  flags.DEFINE_bool("sample", False, "Sample actions instead of greedy.")
  flags.DEFINE_integer("seed", 0, "Environment and sampling seed.")
  flags.DEFINE_multi_string(
      "env_kwargs", [], "Environment option name=value (repeat the flag for "
      "more), as for training; or one JSON object.")
  flags.DEFINE_string("video", None,
                      "Write the first episode to FILE.gif (environments "
                      "that render rgb_array frames).")
  flags.DEFINE_integer("video_max_frames", 1000, "Most frames in --video.")
  flags.mark_flag_as_required("saved_model")
  cli.register({
      "episodes": cli.integer(1),
      "seed": cli.integer(0, cli.SEED_MAX),
      "video_max_frames": cli.integer(1),
      "video": (lambda v: v is None or v.lower().endswith(".gif"),
                "expected a FILE.gif path (MP4 would need an ffmpeg encoder, "
                "which is not installed)"),
  })


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  if options.video is not None and _is_directory(options.video):
    raise cli.FlagError(f"--video={options.video}: names a directory; "
                        "expected a FILE.gif path")
  shown = " ".join(f"--env_kwargs={item}" for item in options.env_kwargs)
  try:
    env_kwargs = parse_env_kwargs(options.env_kwargs)
  except ValueError as error:
    raise cli.FlagError(cli.naming(shown, error)) from None
  # Imported once the flags passed: a rejected command line ends before
  # TensorFlow loads.
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tf_metagrad.serving import playback
  # pylint: enable=g-import-not-at-top
  try:
    returns = playback.evaluate(
        options.saved_model, options.env, options.episodes,
        sample=options.sample, seed=options.seed, env_kwargs=env_kwargs,
        video=options.video, video_max_frames=options.video_max_frames)
  except (OSError, ValueError, RuntimeError, tf.errors.OpError) as error:
    print(f"error: {cli.one_line(error)}", file=sys.stderr)
    return 1
  print(f"mean_return={returns.mean():.6g} std_return={returns.std():.6g} "
        f"episodes={returns.size}")
  return 0


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.programs.scripts`)."""
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
