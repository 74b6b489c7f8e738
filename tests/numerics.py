"""Numeric assertions shared by the test suites."""

import numpy as np


def assert_close_relative(actual, expected, rtol=1e-6):
  """Norm-wise relative error, robust to entries that are exactly zero."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  assert np.all(np.isfinite(actual)), actual
  scale = max(np.linalg.norm(expected), 1e-12)
  error = np.linalg.norm(actual - expected) / scale
  assert error <= rtol, f'relative error {error:.3g} > {rtol}'
