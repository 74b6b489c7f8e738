r"""Exports a trained policy as a self-contained SavedModel.

Usage:
  tf-metagrad-export --logdir=DIR [--checkpoint=CKPT] [--output=PATH]

(`python -m export.export_policy` in a checkout) rebuilds the learner from
DIR/run_spec.json, restores the latest checkpoint of DIR/checkpoints (or
CKPT) and writes the policy to PATH (default DIR/saved_model), replacing an
earlier export there without leaving a partial one (see
`tf_metagrad.serving.atomic_dir`). What the SavedModel holds is described in
`tf_metagrad.serving.policy_module`; loading it needs only TensorFlow
(`tf_metagrad.serving.saved_policy`).

Prints `Exported the policy to PATH`; a bad flag, a missing run directory
or checkpoint, or a learner that cannot be rebuilt here ends with one line
on stderr and exit code 1.
"""

import sys
from typing import Sequence

from absl import app
from absl import flags

from tf_metagrad.programs import cli


def _define_flags():
  # Defined only when run as a program, as the other programs import their
  # own flags of these names (e.g. --logdir).
  flags.DEFINE_string("logdir", None, "Run directory (has run_spec.json).")
  flags.DEFINE_string("checkpoint", None,
                      "Checkpoint prefix or directory (default: latest).")
  flags.DEFINE_string("output", None,
                      "SavedModel directory (default: LOGDIR/saved_model).")
  flags.mark_flag_as_required("logdir")


def main(argv: Sequence[str]) -> int:
  """Exports the run of --logdir; returns the exit code."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  if options.output is not None:
    # An existing file there would be replaced by the SavedModel directory.
    cli.writable_dir("output", options.output)
  # Imported once the flags passed: a rejected command line ends before
  # TensorFlow loads.
  # pylint: disable=g-import-not-at-top
  from tf_metagrad import runs
  from tf_metagrad.serving import export_policy
  # pylint: enable=g-import-not-at-top
  try:
    path = export_policy.export_from_logdir(options.logdir, options.checkpoint,
                                            options.output)
  except runs.RunError as error:
    print(f"error: {cli.one_line(error)}", file=sys.stderr)
    return 1
  print(f"Exported the policy to {path}")
  return 0


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.programs.scripts`)."""
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
