"""Suite-wide options: `--fd-seeds=N` shakes the finite-difference checks.

A test that takes the `fd_seed` fixture draws its random point from it. By
default it runs once with seed 0; `pytest --fd-seeds=20` runs it at 20
points, which is how tolerances are shown to sit far from the noise floor
(see tests/finite_differences.py and tools/fd_shake.py). Such tests carry
the `fd` marker, so `pytest -m fd` selects them.
"""

import os

import pytest

# pytest-xdist runs three workers on a 2-core machine, and many tests start
# trainer and actor processes besides: one TensorFlow op thread per process
# keeps them from fighting over the cores (set before TensorFlow is
# imported; subprocesses inherit it). An explicit setting wins.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
# Tests compile with XLA to check results, not speed: without LLVM's
# backend optimisations the compile of FRODO's M = 5 learner step takes
# about 20 s instead of 34 s (XLA's own graph passes still run; only LLVM's
# optimisation of the generated machine code is skipped). Set before any
# compile: XLA reads XLA_FLAGS once per process.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_backend_optimization_level=0").strip()


def pytest_addoption(parser):
  parser.addoption(
      "--fd-seeds", type=int, default=1,
      help="run every finite-difference test at this many random points")


def pytest_generate_tests(metafunc):
  count = metafunc.config.getoption("fd_seeds")
  if "fd_seed" in metafunc.fixturenames and count > 1:
    metafunc.parametrize("fd_seed", range(count),
                         ids=[f"seed{k}" for k in range(count)])


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "fd: a finite-difference check (takes the fd_seed fixture)")


# Files that start processes or compile with XLA, each a minute or more on a
# loaded 2-core machine. run.sh hands files to the xdist workers in
# collection order (--dist loadfile --no-loadscope-reorder); these go first,
# so that no long file starts last and leaves the other workers idle.
_LONG_FIRST = ("tests/trainers/", "tests/benchmarks/",
               "tests/meta/test_mirrored.py", "tests/agents/test_xla_step.py",
               "tests/system/test_recurrent_actor.py", "tests/export/",
               "tests/test_wheel.py")


def pytest_collection_modifyitems(items):
  for item in items:
    if "fd_seed" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.fd)
  # A stable sort on a per-file key keeps each file's tests together.
  items.sort(key=lambda item: not item.nodeid.startswith(_LONG_FIRST))


@pytest.fixture(name="fd_seed")
def fd_seed_fixture():
  return 0
