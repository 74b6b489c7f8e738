"""The finite-difference helper itself: it accepts exact gradients, rejects
wrong ones, and refuses to pass where it could not tell them apart."""

import numpy as np
import pytest

from tests import finite_differences as fd


def _problem(seed=0):
  """f(x, y) = sum(sin(x) * y^2) + prod-free cross term, with its gradient."""
  rng = np.random.default_rng(seed)
  point = {"x": rng.normal(size=(3, 2)), "y": rng.normal(size=4)}
  w = rng.normal(size=(4, 6))

  def loss(p):
    x, y = p["x"].reshape(-1), p["y"]
    return float(np.sum(np.sin(x) * (w.T @ y) ** 2) + np.sum(y ** 3))

  def grad(p):
    x, y = p["x"].reshape(-1), p["y"]
    z = w.T @ y
    return {"x": (np.cos(x) * z ** 2).reshape(3, 2),
            "y": w @ (2 * np.sin(x) * z) + 3 * y ** 2}

  return loss, point, grad(point)


@pytest.mark.parametrize("step", [1e-6, 1e-4, 1e-2])
def test_exact_gradient_passes_at_any_reasonable_step(step, fd_seed):
  loss, point, grad = _problem(fd.shaken(0, fd_seed))
  report = fd.check_gradient(loss, point, grad, step=step, directions=3)
  assert len(report.labels) == 6 + 4 + 3
  # At a large step the truncation estimate, not a fixed number, widens the
  # tolerance: still far from the noise floor in the other direction.
  assert report.worst_ratio < 0.5


@pytest.mark.parametrize("wrong", [
    lambda g: {k: 1.01 * v for k, v in g.items()},
    lambda g: {k: 0.99 * v for k, v in g.items()},
    lambda g: dict(g, y=g["y"] + 1e-3 * np.linalg.norm(g["y"])
                   * np.eye(4)[1]),
    lambda g: dict(g, x=g["x"].T.reshape(3, 2)),
])
def test_wrong_gradients_are_rejected(wrong):
  loss, point, grad = _problem()
  with pytest.raises(AssertionError, match="disagree"):
    fd.check_gradient(loss, point, wrong(grad))


def test_directions_alone_catch_a_scaled_gradient():
  loss, point, grad = _problem()
  fd.check_gradient(loss, point, grad, entries={}, directions=2)
  with pytest.raises(AssertionError, match="disagree"):
    fd.check_gradient(loss, point, {k: 1.01 * v for k, v in grad.items()},
                      entries={}, directions=2)


def test_a_check_without_power_fails():
  """Noise of 1e-4 in f swamps a 1% error at h = 1e-6: the tolerance grows
  with the measured noise, and the check says it cannot decide."""
  loss, point, grad = _problem()
  rng = np.random.default_rng(1)
  noisy = lambda p: loss(p) + 1e-4 * rng.normal()
  with pytest.raises(AssertionError, match="no power"):
    fd.check_gradient(noisy, point, grad)


def test_zero_or_non_finite_gradients_are_degenerate():
  loss, point, grad = _problem()
  with pytest.raises(AssertionError, match="degenerate"):
    fd.check_gradient(loss, point, {k: 0 * v for k, v in grad.items()})
  with pytest.raises(AssertionError, match="not finite"):
    fd.check_gradient(loss, point, dict(grad, y=grad["y"] * np.nan))


def test_rounding_noise_is_measured():
  """A loss rounded to float32 has noise near 2^-24 |f|; a float64 one near
  2^-53 |f|: the estimate follows the arithmetic, not a constant."""
  loss, point, _ = _problem()
  rng = np.random.default_rng(2)
  sigma64, f0 = fd.rounding_noise(loss, fd._as_point(point), 1e-6, rng)
  sigma32, _ = fd.rounding_noise(
      lambda p: float(np.float32(loss(p))), fd._as_point(point), 1e-6, rng)
  assert sigma64 < 1e-13 * abs(f0)
  assert 1e-9 * abs(f0) < sigma32 < 1e-6 * abs(f0)
