"""Every program answers --version, and rejects a bad flag value with one
line, before it imports TensorFlow (issue 33), which is what makes both
quick.

Each case runs a program as its console script does
(`tf_metagrad.programs.scripts`) in a fresh interpreter where importing
TensorFlow fails: a meta-path finder records where the import came from and
raises. At exit the interpreter says on stdout whether anything tried, and
whether `tensorflow` is in sys.modules all the same. The cases include
checks that the programs' main functions make (not only absl's parsing), so
a program module that imported the library at the top would fail here.
"""

import os
import re
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_HINT = "(--helpfull lists every flag)"

_WRAPPER = r"""
import atexit
import importlib.abc
import sys
import traceback

attempts = []


class NoTensorFlow(importlib.abc.MetaPathFinder):

  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "tensorflow":
      attempts.append("".join(traceback.format_stack(limit=40)))
      raise ImportError(f"{name} imported before the flags were checked")
    return None


def report():
  print("tensorflow:", len(attempts), "tensorflow" in sys.modules)
  for stack in attempts:
    print(stack)


sys.meta_path.insert(0, NoTensorFlow())
atexit.register(report)
program = sys.argv.pop(1)
sys.argv[0] = "tf-metagrad-" + program
from tf_metagrad.programs import scripts
getattr(scripts, program)()
"""

_VERSION = "tf_metagrad "
# (program, flags, start of the one stderr line, or _VERSION on stdout).
# @FILE is an existing file, @DIRGIF an existing directory named x.gif.
_CASES = [
    ("train", ["--version"], _VERSION),
    ("train", ["--agent=ppo", "--version"], _VERSION),
    ("train", ["--agent=ppo"], "error: --agent=ppo: expected one of"),
    ("train", ["--total_env_steps=0"], "error: --total_env_steps=0: "
     "expected an integer >= 1"),
    ("train", ["--logical_cpus=3"], "error: --logical_cpus=3: expected only "
     "with --strategy=mirrored"),
    ("actor", ["--version"], _VERSION),
    ("actor", ["--reverb_address=nonsense"], "error: "
     "--reverb_address=nonsense: expected HOST:PORT"),
    ("plot", ["--version"], _VERSION),
    ("plot", ["run"], "error: --output=None:"),
    ("plot", ["run", "--output=curves.pdf"], "error: --output=curves.pdf: "
     "expected a file name ending in .png"),
    ("export", ["--version"], _VERSION),
    ("export", [], "error: --logdir=None:"),
    ("export", ["--logdir=run", "--output=@FILE"], "error: --output=@FILE: "
     "names an existing file"),
    ("evaluate", ["--version"], _VERSION),
    ("evaluate", ["--saved_model=sm", "--episodes=-1"], "error: "
     "--episodes=-1: expected an integer >= 1"),
    ("evaluate", ["--saved_model=sm", "--env_kwargs=rows"], "error: "
     "--env_kwargs entries must look like name=value, got 'rows'. One JSON "
     "object is accepted too"),
    ("evaluate", ["--saved_model=sm", "--env_kwargs={\"rows\": 6"],
     "error: --env_kwargs={\"rows\": 6: not a JSON object"),
    ("evaluate", ["--saved_model=sm", "--video=@DIRGIF"], "error: "
     "--video=@DIRGIF: names a directory"),
]


def _ids():
  return [" ".join([program] + args) for program, args, _ in _CASES]


@pytest.mark.parametrize("program, args, expected", _CASES, ids=_ids())
def test_answered_before_tensorflow(tmp_path, program, args, expected):
  paths = {"@FILE": str(tmp_path / "file"),
           "@DIRGIF": str(tmp_path / "x.gif")}
  (tmp_path / "file").write_text("not a directory")
  (tmp_path / "x.gif").mkdir()
  for name, path in paths.items():
    args = [a.replace(name, path) for a in args]
    expected = expected.replace(name, path)
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CONFIG", "TF_METAGRAD_STDERR_FILTERED")}
  result = subprocess.run(
      [sys.executable, "-c", _WRAPPER, program, *args], cwd=tmp_path,
      env=env, capture_output=True, text=True, timeout=60, check=False)
  out = result.stdout.splitlines()
  assert out and out[-1] == "tensorflow: 0 False", (
      result.stdout[-3000:], result.stderr[-3000:])
  if expected == _VERSION:
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(out) == 2 and out[0].startswith(_VERSION), out
    assert not result.stderr, result.stderr
    if os.path.isdir(os.path.join(_ROOT, ".git")):
      assert re.search(r"\(git commit [0-9a-f]{40}\)$", out[0]), out
  else:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert lines[0].endswith(_HINT), lines[0]
    assert out == ["tensorflow: 0 False"], out
  # Nothing written: no run directory, no plot.
  assert sorted(os.listdir(tmp_path)) == ["file", "x.gif"]
