"""Suite-wide options: `--fd-seeds=N` shakes the finite-difference checks.

A test that takes the `fd_seed` fixture draws its random point from it. By
default it runs once with seed 0; `pytest --fd-seeds=20` runs it at 20
points, which is how tolerances are shown to sit far from the noise floor
(see tests/finite_differences.py and tools/fd_shake.py). Such tests carry
the `fd` marker, so `pytest -m fd` selects them.
"""

import pytest


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


def pytest_collection_modifyitems(items):
  for item in items:
    if "fd_seed" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.fd)


@pytest.fixture(name="fd_seed")
def fd_seed_fixture():
  return 0
