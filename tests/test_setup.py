"""The set-up refuses unsupported Pythons with one clear sentence."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_python(tmp_path, version):
  fake = tmp_path / "python3.12"
  fake.write_text(f"#!/bin/sh\necho {version}\n")
  fake.chmod(0o755)
  return str(fake)


def test_run_sh_rejects_python_3_12_in_one_sentence(tmp_path):
  env = dict(os.environ, PYTHON=_fake_python(tmp_path, "3.12"))
  for command in ("train", "test"):
    proc = subprocess.run(["bash", os.path.join(ROOT, "run.sh"), command],
                          env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "needs CPython 3.9-3.11" in lines[0]
    assert "is Python 3.12" in lines[0] and "PYTHON=python3.11" in lines[0]


def test_run_sh_usage_error():
  proc = subprocess.run(["bash", os.path.join(ROOT, "run.sh"), "deploy"],
                        capture_output=True, text=True, timeout=60,
                        check=False)
  assert proc.returncode == 2
  assert "usage: ./run.sh train" in proc.stderr


def test_setup_py_rejects_python_3_12():
  code = ("import sys; sys.version_info = (3, 12, 1, 'final', 0); "
          f"sys.argv = ['setup.py', '--version']; "
          f"exec(open({os.path.join(ROOT, 'setup.py')!r}).read())")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                        capture_output=True, text=True, timeout=60,
                        check=False)
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith("tf_metagrad needs CPython 3.9-3.11")
  assert "Traceback" not in proc.stderr
