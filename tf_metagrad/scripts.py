"""The installed console scripts and the checkout launchers.

  console script        in a checkout                   program (module)
  tf-metagrad-train     python -m trainers.train        trainers.train
  tf-metagrad-actor     python -m trainers.actor        trainers.actor
  tf-metagrad-plot      python -m trainers.plot         trainers.plot
  tf-metagrad-export    python -m export.export_policy  export.export_policy
  tf-metagrad-evaluate  python -m export.evaluate       export.evaluate

The programs live under `tf_metagrad.` (the wheel installs nothing else);
the checkout's top-level trainers/ and export/ folders hold only launchers.

Every program imports modules from the current working directory, as
`python -m` does in a checkout: an environment named
`gym:my_envs:MyCorridor-v0` or `dm_env:my_envs:make` is found in the folder
the program runs in without PYTHONPATH (a console script's own sys.path
starts at its bin/ folder instead).

Each entry point filters the known C++ log noise from stderr
(`tf_metagrad.export.native_logs`, `--native_logs=all` to see everything)
before its program is imported, since importing TensorFlow is what prints
the first lines, then runs the program. This module imports neither
TensorFlow nor the programs until then, and answers `--version` (see
`tf_metagrad.export.cli.run`) before importing them.
"""

import importlib
import os
import sys
from typing import Sequence

from tf_metagrad.export import cli
from tf_metagrad.export import native_logs

_PROGRAMS = {
    "train": "tf_metagrad.trainers.train",
    "actor": "tf_metagrad.trainers.actor",
    "plot": "tf_metagrad.trainers.plot",
    "export": "tf_metagrad.export.export_policy",
    "evaluate": "tf_metagrad.export.evaluate",
}


def _level(argv: Sequence[str]) -> str:
  """`--native_logs`'s value in `argv` (absl parses and checks it later)."""
  level = "quiet"
  for i, arg in enumerate(argv):
    if arg.startswith("--native_logs="):
      level = arg.split("=", 1)[1]
    elif arg == "--native_logs" and i + 1 < len(argv):
      level = argv[i + 1]
  return level if level in ("quiet", "all") else "quiet"


def working_directory_on_path() -> None:
  """Puts the current working directory first on sys.path, where
  `python -m` puts it, unless it is there already or Python was told to
  leave it out (`-P`, PYTHONSAFEPATH)."""
  if sys.flags.safe_path:
    return
  cwd = os.getcwd()
  if not any(os.path.abspath(entry or os.curdir) == cwd
             for entry in sys.path):
    sys.path.insert(0, cwd)


def launch(program: str) -> None:
  """Runs `program` (a key of `_PROGRAMS`) with this process's argv."""
  working_directory_on_path()
  # Before the program's module, which may import TensorFlow.
  cli.exit_if_version_asked(sys.argv)
  native_logs.install(_level(sys.argv[1:]))
  module = importlib.import_module(_PROGRAMS[program])
  # absl's --help shows the docstring of __main__, which is this launcher.
  sys.modules["__main__"].__doc__ = module.__doc__
  module.run()


def train() -> None:
  launch("train")


def actor() -> None:
  launch("actor")


def plot() -> None:
  launch("plot")


def export() -> None:
  launch("export")


def evaluate() -> None:
  launch("evaluate")
