"""BUILD must list every module and test file, so it cannot rot."""

import ast
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY_ROOTS = ("tf_metagrad", "trainers", "export", "benchmarks", "tools")


def _rules():
  with open(os.path.join(ROOT, "BUILD")) as f:
    tree = ast.parse(f.read(), "BUILD")
  rules = []
  for node in tree.body:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
      call = node.value
      kwargs = {k.arg: k.value for k in call.keywords}
      srcs = []
      if "srcs" in kwargs:
        srcs = [e.value for e in kwargs["srcs"].elts]
      rules.append((call.func.id, srcs, kwargs))
  return rules


def _tree_files(predicate, tops):
  out = set()
  for top in tops:
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
      dirnames[:] = [d for d in dirnames if d != "__pycache__"]
      for f in filenames:
        if predicate(f):
          out.add(os.path.relpath(os.path.join(dirpath, f), ROOT))
  return out


def test_every_module_is_in_a_py_library():
  listed = {s for kind, srcs, _ in _rules() if kind == "py_library"
            for s in srcs}
  modules = _tree_files(lambda f: f.endswith(".py"), LIBRARY_ROOTS)
  assert modules, "found no modules at all; is ROOT right?"
  missing = sorted(modules - listed)
  assert not missing, (
      f"modules missing from BUILD (run `python tools/gen_build.py > BUILD`): "
      f"{missing}")


def test_every_test_file_has_a_py_test():
  tested = set()
  for kind, srcs, kwargs in _rules():
    if kind == "py_test":
      tested.update(s for s in srcs if os.path.basename(s).startswith("test_"))
  test_files = _tree_files(
      lambda f: f.startswith("test_") and f.endswith(".py"), ("tests",))
  missing = sorted(test_files - tested)
  assert not missing, f"test files without a py_test in BUILD: {missing}"


def test_every_listed_file_exists():
  stale = sorted(s for _, srcs, _ in _rules() for s in srcs
                 if not os.path.exists(os.path.join(ROOT, s)))
  assert not stale, f"BUILD lists files that do not exist: {stale}"


def test_bazel_query_parses_build(tmp_path):
  bazel = shutil.which("bazel")
  if bazel is None:
    pytest.skip("bazel is not installed (Debian: apt-get install bazel-bootstrap)")
  result = subprocess.run(
      [bazel, f"--output_user_root={tmp_path}", "query", "//...",
       "--noshow_progress"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  subprocess.run([bazel, f"--output_user_root={tmp_path}", "shutdown"],
                 cwd=ROOT, capture_output=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  targets = set(result.stdout.split())
  assert "//:tf_metagrad_ops" in targets
  assert any(t.startswith("//:tests_") for t in targets)
