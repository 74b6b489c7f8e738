"""The CPU report that ends every run: per test file, the work done in
every phase counted (a test that burns CPU shows it, a test that sleeps
does not)."""

import os
import re
import shutil
import subprocess
import sys

CONFTEST = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "conftest.py")

# The first test of the run, half of its CPU in a fixture's setup: every
# phase counts, the first test's setup too.
BURN = '''
import time

import pytest


def _burn(seconds):
  end = time.process_time() + seconds
  while time.process_time() < end:
    pass


@pytest.fixture(scope="module")
def warm():
  _burn(0.3)


def test_burns_cpu(warm):
  _burn(0.3)
'''

SLEEP = '''
import time


def test_sleeps():
  time.sleep(0.5)
'''


def _run(directory, *args):
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
       "-p", "no:xdist", *args, str(directory)],
      cwd=directory, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr
  return result.stdout


def test_report_lists_files_by_cpu(tmp_path):
  shutil.copy(CONFTEST, tmp_path / "conftest.py")
  (tmp_path / "test_burn.py").write_text(BURN)
  (tmp_path / "test_sleep.py").write_text(SLEEP)
  output = _run(tmp_path)
  rows = re.findall(r"^ +(\d+\.\d) s +(\d+\.\d)% (\S+)$", output, re.M)
  assert [name for _, _, name in rows] == ["test_burn.py", "test_sleep.py"], (
      output)
  burn, sleep = (float(seconds) for seconds, _, _ in rows)
  # The rows print tenths, the total whole seconds.
  assert 0.55 <= burn < 1.5 and sleep < 0.2, output
  total = re.search(r"CPU of the tests: (\d+) s", output)
  assert total and abs(int(total.group(1)) - (burn + sleep)) <= 0.6, output
  assert "CPU of the tests" not in _run(tmp_path, "--cpu-report=0")
