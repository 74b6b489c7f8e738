"""The installed console scripts and the checkout launchers.

  console script        in a checkout                   program module
  tf-metagrad-train     python -m trainers.train        programs.train
  tf-metagrad-actor     python -m trainers.actor        programs.actor
  tf-metagrad-plot      python -m trainers.plot         programs.plot
  tf-metagrad-export    python -m export.export_policy  programs.export
  tf-metagrad-evaluate  python -m export.evaluate       programs.evaluate

The programs live in `tf_metagrad.programs` (the wheel installs nothing
else); the checkout's top-level trainers/ and export/ folders hold only
launchers.

Every program imports modules from the current working directory, as
`python -m` does in a checkout: an environment named
`gym:my_envs:MyCorridor-v0` or `dm_env:my_envs:make` is found in the folder
the program runs in without PYTHONPATH (a console script's own sys.path
starts at its bin/ folder instead).

Each entry point filters the known C++ log noise from stderr
(`tf_metagrad.system.native_logs`, `--native_logs=all` to see everything)
before its program is imported, since importing TensorFlow is what prints
the first lines, then runs the program. This module imports neither
TensorFlow nor the programs until then, and answers `--version` (see
`tf_metagrad.programs.cli.run`) before importing them. The program modules
import TensorFlow only once their flags have passed (tests/programs/
test_before_tensorflow.py).
"""

import importlib
import os
import sys
from typing import Sequence

from tf_metagrad.programs import cli
from tf_metagrad.system import native_logs

_PROGRAMS = {
    "train": "tf_metagrad.programs.train",
    "actor": "tf_metagrad.programs.actor",
    "plot": "tf_metagrad.programs.plot",
    "export": "tf_metagrad.programs.export",
    "evaluate": "tf_metagrad.programs.evaluate",
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
