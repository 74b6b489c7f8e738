"""Finite-difference checks with tolerances from an error model.

Every gradient the library claims (ops, networks, optimizers, the engine,
each agent's meta-gradient) is compared here against float64 central
differences. The tolerance is not a number tuned on one machine: it follows
from the error model in docs/CONVENTIONS.md, evaluated with quantities
measured at the point of the check, so a CPU that rounds differently (other
oneDNN kernels, other reduction orders) moves the tolerance with its own
noise.

For a scalar f, a point x and a unit direction v (a basis vector for one
entry, or a random unit vector over every entry), with
D(h) = (f(x + h v) - f(x - h v)) / (2 h):

  D(h) - f'_v = c h^2 + r_h / h,

where c h^2 is the truncation error and r_h the rounding of the two function
values (|r_h| <= sigma_f, the rounding noise of f near x). The check accepts
the analytic derivative a_v when

  |a_v - D(h)| <= S * (|D(h) - D(2h)| / 3 + sigma_f / h + K u ||a||_2),

- |D(h) - D(2h)| / 3 estimates |c| h^2 (D(2h) carries 4 c h^2);
- sigma_f is measured: f on nine points x + j (h / 4) w, j = -4..4, along a
  random unit w, minus its least-squares quadratic, leaves the rounding
  (the cubic term is below 1e-19 f''' for h = 1e-6); it is floored at
  u |f(x)|, one rounding of the result;
- K u ||a||_2 (u = 2^-53, K = 100) bounds the rounding of the reverse-mode
  gradient against the scale of the whole gradient: a small component is
  judged against the gradient it belongs to, not against itself;
- S = 8 covers the noise estimate's own spread (six degrees of freedom).

A check that could not fail is a defect, so each call also proves its power:
the same tolerances must reject the analytic gradient scaled by 1.01 (and by
0.99) on at least one checked quantity, or the call fails as degenerate.

Shaking: `pytest --fd-seeds=N` runs every test that takes the `fd_seed`
fixture N times with other random points; with `TF_METAGRAD_FD_LOG=PATH`
each check appends its worst error-to-tolerance ratio to PATH (JSON lines),
which `tools/fd_shake.py` summarises per test.
"""

import json
import os
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

UNIT_ROUNDOFF = 2.0 ** -53
SAFETY = 8.0
ANALYTIC_ROUNDING = 100.0
# The checks must resolve a gradient that is wrong by this relative factor.
POWER = 0.01

Point = Dict[str, np.ndarray]
LossFn = Callable[[Point], float]
Entries = Union[None, int, Mapping[str, Sequence[int]]]


class Report:
  """What a check compared: one row per checked quantity."""

  def __init__(self):
    self.labels = []
    self.analytic = []
    self.numeric = []
    self.tolerance = []
    self.sigma_f = 0.0

  def add(self, label, analytic, numeric, tolerance):
    self.labels.append(label)
    self.analytic.append(float(analytic))
    self.numeric.append(float(numeric))
    self.tolerance.append(float(tolerance))

  @property
  def ratios(self) -> np.ndarray:
    """|analytic - numeric| / tolerance per checked quantity."""
    return (np.abs(np.subtract(self.analytic, self.numeric))
            / np.asarray(self.tolerance))

  @property
  def worst_ratio(self) -> float:
    return float(np.max(self.ratios))

  def rejects(self, scale: float) -> bool:
    """Whether the tolerances would reject `scale` times the analytic."""
    wrong = scale * np.asarray(self.analytic)
    return bool(np.any(np.abs(wrong - self.numeric) > self.tolerance))

  def describe(self, rows: int = 5) -> str:
    order = np.argsort(-self.ratios)[:rows]
    return "; ".join(
        f"{self.labels[i]}: analytic {self.analytic[i]:.10g} numeric "
        f"{self.numeric[i]:.10g} tol {self.tolerance[i]:.3g} "
        f"(ratio {self.ratios[i]:.3g})" for i in order)


def _as_point(point: Mapping[str, np.ndarray]) -> Point:
  return {k: np.array(v, dtype=np.float64) for k, v in point.items()}


def _unit_direction(point: Point, rng: np.random.Generator) -> Point:
  direction = {k: rng.normal(size=v.shape) for k, v in point.items()}
  norm = np.sqrt(sum(np.sum(d ** 2) for d in direction.values()))
  return {k: d / norm for k, d in direction.items()}


def _moved(point: Point, direction: Point, t: float) -> Point:
  return {k: point[k] + t * direction[k] for k in point}


def rounding_noise(loss_fn: LossFn, point: Point, step: float,
                   rng: np.random.Generator) -> Tuple[float, float]:
  """(sigma_f, f(x)): the rounding noise of `loss_fn` near `point`.

  Nine values on a line of half-width `step` through the point, less their
  least-squares quadratic; the residual's standard deviation (six degrees of
  freedom) estimates the noise. Floored at one rounding of f(x).
  """
  direction = _unit_direction(point, rng)
  offsets = np.arange(-4, 5) * (step / 4.0)
  values = np.array([loss_fn(_moved(point, direction, t)) for t in offsets])
  if not np.all(np.isfinite(values)):
    raise AssertionError(f"loss is not finite near the point: {values}")
  basis = np.vander(offsets / step, 3)
  coefficients, *_ = np.linalg.lstsq(basis, values, rcond=None)
  residual = values - basis @ coefficients
  sigma = float(np.sqrt(np.sum(residual ** 2) / (len(values) - 3)))
  f0 = float(values[4])
  return max(sigma, UNIT_ROUNDOFF * abs(f0)), f0


def _difference(loss_fn, point, direction, step):
  return (loss_fn(_moved(point, direction, step))
          - loss_fn(_moved(point, direction, -step))) / (2.0 * step)


def _selected(point: Point, entries: Entries, rng):
  for name, value in point.items():
    if entries is None:
      indices = range(value.size)
    elif isinstance(entries, int):
      count = min(entries, value.size)
      indices = sorted(rng.choice(value.size, size=count, replace=False))
    else:
      indices = entries.get(name, ())
    for index in indices:
      yield name, int(index)


def _log(report: Report, label: str):
  path = os.environ.get("TF_METAGRAD_FD_LOG")
  if not path:
    return
  test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
  with open(path, "a") as f:
    f.write(json.dumps({
        "test": test, "check": label, "worst_ratio": report.worst_ratio,
        "checked": len(report.labels), "sigma_f": report.sigma_f,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
        "threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "")}) + "\n")


def check_gradient(loss_fn: LossFn, point: Mapping[str, np.ndarray],
                   analytic: Mapping[str, np.ndarray], *,
                   step: float = 1e-6, entries: Entries = None,
                   directions: int = 0,
                   rng: Optional[np.random.Generator] = None,
                   label: str = "gradient") -> Report:
  """Checks `analytic` = d loss_fn / d point by central differences.

  Args:
    loss_fn: maps a dict of float64 arrays (shaped like `point`) to a float.
    point: where to differentiate, name -> array.
    analytic: the claimed gradient, name -> array shaped like `point`.
    step: the difference step h (D(2h) is taken too, for truncation).
    entries: which single entries to check: None for all, an int k for k
      random entries of each tensor, or name -> flat indices.
    directions: how many random unit directions through every entry to
      check as well (one covers a meta-network's thousands of weights).
    rng: randomness for the noise line, entries and directions.
    label: names the check in messages and in the shake log.

  Returns:
    The `Report` (worst ratio, rows).

  Raises:
    AssertionError: a quantity is outside its tolerance, the gradient is
      zero or not finite, or the tolerances could not reject a gradient
      wrong by 1% (the check has no power at this point).
  """
  rng = np.random.default_rng(0) if rng is None else rng
  point = _as_point(point)
  analytic = {k: np.asarray(analytic[k], np.float64).reshape(point[k].shape)
              for k in point}
  if set(analytic) != set(point):
    raise AssertionError(f"{label}: gradient keys {sorted(analytic)} != "
                         f"point keys {sorted(point)}")
  flat = np.concatenate([a.reshape(-1) for a in analytic.values()])
  if not np.all(np.isfinite(flat)):
    raise AssertionError(f"{label}: analytic gradient is not finite")
  norm = float(np.linalg.norm(flat))
  if norm == 0.0:
    raise AssertionError(f"{label}: analytic gradient is zero, a degenerate "
                         "test")
  sigma_f, _ = rounding_noise(loss_fn, point, step, rng)
  floor = sigma_f / step + ANALYTIC_ROUNDING * UNIT_ROUNDOFF * norm
  report = Report()
  report.sigma_f = sigma_f

  def compare(row_label, direction, claimed):
    near = _difference(loss_fn, point, direction, step)
    far = _difference(loss_fn, point, direction, 2.0 * step)
    tolerance = SAFETY * (abs(near - far) / 3.0 + floor)
    report.add(row_label, claimed, near, tolerance)

  zero = {k: np.zeros_like(v) for k, v in point.items()}
  for name, index in _selected(point, entries, rng):
    basis = dict(zero)
    basis[name] = np.zeros_like(point[name])
    basis[name].reshape(-1)[index] = 1.0
    compare(f"{name}[{index}]", basis, analytic[name].reshape(-1)[index])
  for k in range(directions):
    direction = _unit_direction(point, rng)
    claimed = sum(float(np.sum(analytic[n] * direction[n])) for n in point)
    compare(f"direction {k}", direction, claimed)
  if not report.labels:
    raise AssertionError(f"{label}: nothing was checked")
  _log(report, label)
  if report.worst_ratio > 1.0:
    raise AssertionError(f"{label}: analytic and central differences "
                         f"disagree: {report.describe()}")
  for scale in (1.0 + POWER, 1.0 - POWER):
    if not report.rejects(scale):
      raise AssertionError(
          f"{label}: the tolerances cannot tell this gradient from one "
          f"scaled by {scale}; the check has no power here: "
          f"{report.describe()}")
  return report


def shaken(base: int, fd_seed: int) -> int:
  """The seed of a test's random point: `base` itself unless shaken."""
  return base + 7919 * fd_seed


def check_gradient_list(loss_fn: Callable[[Sequence[np.ndarray]], float],
                        arrays: Sequence[np.ndarray],
                        analytic: Sequence[np.ndarray], **kwargs) -> Report:
  """`check_gradient` for a loss of a list of arrays (e.g. a layer's
  weights, in order); the rows are named w0, w1, ..."""
  names = [f"w{i}" for i in range(len(arrays))]
  return check_gradient(
      lambda point: loss_fn([point[n] for n in names]),
      dict(zip(names, arrays)),
      {n: np.asarray(a) for n, a in zip(names, analytic)}, **kwargs)
