"""Suite-wide options: `--fd-seeds=N` shakes the finite-difference checks,
and every run ends with the CPU seconds each test file took.

A test that takes the `fd_seed` fixture draws its random point from it. By
default it runs once with seed 0; `pytest --fd-seeds=20` runs it at 20
points, which is how tolerances are shown to sit far from the noise floor
(see tests/finite_differences.py and tools/fd_shake.py). Such tests carry
the `fd` marker, so `pytest -m fd` selects them.
"""

import collections
import os
import resource
import sys

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
  parser.addoption(
      "--cpu-report", type=int, default=12, metavar="N",
      help="list the N test files that took the most CPU (0: none)")


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
_LONG_FIRST = ("tests/training/", "tests/benchmarks/",
               "tests/meta/test_mirrored.py", "tests/agents/test_xla_step.py",
               "tests/system/test_recurrent_actor.py", "tests/serving/",
               "tests/test_wheel.py",
               # 20-35 s each with Reverb servers and actors: in collection
               # order they started late and ran alone for the last 20 s.
               "tests/system/test_overlapping_unrolls.py",
               "tests/system/test_time_limit_actor.py")


# Grappler passes that leave our graphs as they are but cost time on every
# function's first call. On the learner steps of all six agents (MLP torso)
# none of the four changed a node; only the ResNet's conv + bias + relu were
# fused (-14 nodes). The remapper alone took 65-340 ms per learner step, up
# to half a second with the others, and a test mostly traces a step and
# calls it a few times: on four agent test files, 12-19% less CPU without
# them (0-10% on four files where XLA compiles and longer runs dominate).
# Processes the tests start keep TF's defaults. Set after collection, where
# the worker has imported TF anyway (the xdist controller, which never does,
# is left alone).
_IDLE_GRAPPLER_PASSES = {"remapping": False, "layout_optimizer": False,
                         "loop_optimization": False,
                         "implementation_selector": False}


def pytest_collection_finish(session):
  del session
  tf = sys.modules.get("tensorflow")
  if tf is not None:
    tf.config.optimizer.set_experimental_options(_IDLE_GRAPPLER_PASSES)


def pytest_collection_modifyitems(items):
  for item in items:
    if "fd_seed" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.fd)
  # A stable sort on a per-file key keeps each file's tests together.
  items.sort(key=lambda item: not item.nodeid.startswith(_LONG_FIRST))


@pytest.fixture(name="fd_seed")
def fd_seed_fixture():
  return 0


# The suite's budget is wall time on 2 cores, where three workers and the
# processes the tests start keep both cores busy: wall time is then about
# the CPU used divided by 2, and CPU (user + system, of the worker and of
# the processes it started and waited for) is the measure that stays
# comparable between runs on a busy machine, unlike --durations.
_CPU_START = pytest.StashKey[float]()
_CPU_BY_FILE = collections.Counter()


def _cpu_seconds():
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return (own.ru_utime + own.ru_stime + children.ru_utime
          + children.ru_stime)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  item.stash[_CPU_START] = _cpu_seconds()
  yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  # Called at the end of each phase (setup, call, teardown): each phase's
  # CPU runs from the end of the one before, so a module fixture counts
  # for the test whose setup built it.
  now = _cpu_seconds()
  outcome = yield
  outcome.get_result().user_properties.append(
      ("cpu_s", now - item.stash[_CPU_START]))
  item.stash[_CPU_START] = now


def pytest_runtest_logreport(report):
  # Runs where the reports arrive: the controller under xdist, which
  # receives each worker's report with its user properties.
  for name, value in report.user_properties:
    if name == "cpu_s":
      _CPU_BY_FILE[report.nodeid.split("::")[0]] += value


def pytest_terminal_summary(terminalreporter, config):
  count = config.getoption("cpu_report")
  total = sum(_CPU_BY_FILE.values())
  if not count or total <= 0:
    return
  terminalreporter.write_sep("-", f"CPU of the tests: {total:.0f} s "
                             f"(user + system, processes started included)")
  for name, seconds in _CPU_BY_FILE.most_common(count):
    share = 100 * seconds / total
    terminalreporter.write_line(f"{seconds:7.1f} s {share:5.1f}% {name}")
