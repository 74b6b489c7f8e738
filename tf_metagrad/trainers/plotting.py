"""Curves of training runs: metric rows, bands over seeds, PNG panels, tables.

Shared by `benchmarks.reproduce` (the committed results) and `trainers.plot`
(anyone's run directories). Defines no flags. Reads go through
`tf.io.gfile`, so run directories may live on any file system TensorFlow
supports (gs://, ram://...). Needs matplotlib (the `bench` extra).

Bands are mean +- 1.96 standard errors over seeds (a normal approximation
of the 95% interval of the mean), computed point by point after each run is
interpolated on a common env-step grid.
"""

import dataclasses
import io
import json
import math
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.lines  # pylint: disable=g-import-not-at-top
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.trainers import outputs

RETURN = "episode_return"
EVAL = "eval/mean_return"
GROUP_BY = ("setting", "agent", "env", "none")
# Per group; enough to show the shape of a curve with thousands of rows.
GRID_POINTS = 100

Band = Tuple[np.ndarray, np.ndarray, np.ndarray]


def read_metrics(logdir: str) -> Dict[str, np.ndarray]:
  """A run's metric rows (`outputs.read_metrics`) as column name -> float
  array (NaN where a row is empty).

  Args:
    logdir: the run directory (any `tf.io.gfile` path).

  Returns:
    One array per column, all as long as the run has rows. A run without
    an `episode_return` column gets it from its TensorBoard events.

  Raises:
    ValueError: if the run has no metrics or a file of them no `env_steps`
      column.
  """
  columns, rows = outputs.read_metrics(logdir)
  if not columns:
    raise ValueError(f"{logdir}: no metrics ({outputs.METRICS_DIR}/*.csv "
                     f"or {outputs.LEGACY_METRICS_FILE}); expected a run "
                     f"directory written by trainers.train")
  out = {}
  for key in columns:
    values = []
    for row in rows:
      try:
        values.append(float(row[key]))
      except ValueError:
        values.append(np.nan)
    out[key] = np.asarray(values, dtype=float)
  if RETURN not in out:
    out.update(_episode_returns_from_events(logdir, out["env_steps"]))
  return out


def _episode_returns_from_events(logdir: str, env_steps: np.ndarray):
  """episode_return on the metrics' env-step rows, from TensorBoard events.

  Runs written before metrics.csv always carried the column lack it when no
  episode had ended by the first CSV row; the summaries have it.
  """
  points = {}
  for name in tf.io.gfile.listdir(logdir):
    if not name.startswith("events.out.tfevents"):
      continue
    for event in tf.compat.v1.train.summary_iterator(
        os.path.join(logdir, name)):
      for value in event.summary.value:
        if value.tag == RETURN:
          points[event.step] = float(tf.make_ndarray(value.tensor))
  if not points:
    return {}
  steps = np.array(sorted(points), dtype=float)
  values = np.array([points[s] for s in sorted(points)])
  return {RETURN: np.interp(env_steps, steps, values, left=np.nan)}


def band(curves: Sequence[np.ndarray]) -> Band:
  """Mean and 95% normal-approximation band over seeds, point by point.

  NaN entries (a seed without a value there) are left out of that point;
  where one seed remains, the band is the mean itself.
  """
  stack = np.stack(curves)
  with warnings.catch_warnings():
    # Points no seed reached are NaN by design, not worth a warning.
    warnings.simplefilter("ignore", RuntimeWarning)
    mean = np.nanmean(stack, axis=0)
    sem = np.nanstd(stack, axis=0, ddof=1)
  n = np.sum(~np.isnan(stack), axis=0)
  sem = sem / np.sqrt(np.maximum(n, 1))
  sem = np.where(n > 1, sem, 0.0)
  return mean, mean - 1.96 * sem, mean + 1.96 * sem


def on_grid(data: Dict[str, np.ndarray], key: str, grid: np.ndarray,
            until: Optional[float] = None) -> np.ndarray:
  """Column `key` of one run linearly interpolated at the env steps `grid`.

  NaN before the column's first value. Past its last value the last one is
  held, up to `until` (the run's last env step) and NaN beyond, so a
  shorter run does not pretend to have reached steps it never did. With
  `until` None the hold runs to the end of the grid and a column needs two
  values to count as a curve; with `until`, one value (typically the only,
  final evaluation) is held from its step on.
  """
  x, y = data["env_steps"], data.get(key)
  if y is None:
    return np.full_like(grid, np.nan, dtype=float)
  ok = ~np.isnan(y) & ~np.isnan(x)
  if ok.sum() < (2 if until is None else 1):
    return np.full_like(grid, np.nan, dtype=float)
  out = np.interp(grid, x[ok], y[ok])
  out[grid < x[ok][0]] = np.nan
  if until is not None:
    out[grid > until] = np.nan
  return out


def plot_band(ax: plt.Axes, grid: np.ndarray, curve: Band, label: str,
              color: Optional[str] = None, **line_kwargs: Any) -> None:
  """Draws a mean curve and its band, the band in the curve's colour."""
  mean, lo, hi = curve
  line, = ax.plot(grid, mean, label=label, color=color, **line_kwargs)
  ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)


@dataclasses.dataclass
class Run:
  """One run directory's metrics (and spec, when it was read)."""
  path: str
  data: Dict[str, np.ndarray]
  spec: Optional[runs.RunSpec] = None

  @property
  def last_env_step(self) -> float:
    return float(np.nanmax(self.data["env_steps"]))


def load_run(path: str, need_spec: bool = True) -> Run:
  """Reads DIR's metrics (`outputs.read_metrics`) and, if `need_spec`,
  DIR/run_spec.json.

  Raises:
    ValueError: naming the directory and what is missing or unreadable.
  """
  if not tf.io.gfile.exists(path):
    raise ValueError(f"{path}: no such directory")
  if not tf.io.gfile.isdir(path):
    raise ValueError(f"{path}: is a file; expected a run directory")
  data = read_metrics(path)
  if not np.any(~np.isnan(data["env_steps"])):
    raise ValueError(f"{path}: its metrics have no rows yet")
  spec = None
  if need_spec:
    if not tf.io.gfile.exists(os.path.join(path, runs.SPEC_FILE)):
      raise ValueError(f"{path}: no {runs.SPEC_FILE}, which grouping by "
                       f"setting, agent or env needs; use --group_by=none "
                       f"to plot each directory on its own")
    try:
      spec = runs.load_spec(path)
    except runs.RunError as e:
      raise ValueError(str(e)) from None
  return Run(path=path, data=data, spec=spec)


def _setting(spec: runs.RunSpec) -> Dict[str, object]:
  """What identifies a run's setting apart from its seed (see RunSpec)."""
  fields = {f"env_kwargs.{k}": v for k, v in spec.env_kwargs.items()}
  fields.update(spec.config_overrides)
  for name in ("unroll_length", "batch_size"):
    if getattr(spec, name) is not None:
      fields[name] = getattr(spec, name)
  return fields


def group_runs(loaded: Sequence[Run], group_by: str) -> Dict[str, List[Run]]:
  """Runs by group label, groups in order of first appearance.

  Args:
    loaded: the runs (with specs unless `group_by` is "none").
    group_by: "setting" (agent, env, config, env kwargs, unroll length and
      batch size: the seeds of one setting form a group), "agent", "env",
      or "none" (one group per run).

  Returns:
    label -> runs. Setting labels are "agent env" plus the settings that
    differ between groups.
  """
  if group_by not in GROUP_BY:
    raise ValueError(f"group_by={group_by!r}: expected one of {GROUP_BY}")
  if group_by == "none":
    return {label: [r] for label, r in zip(_short_paths(loaded), loaded)}
  if group_by in ("agent", "env"):
    groups = {}
    for r in loaded:
      groups.setdefault(getattr(r.spec, group_by), []).append(r)
    return groups
  by_key, settings = {}, {}
  for r in loaded:
    setting = dict(_setting(r.spec), agent=r.spec.agent, env=r.spec.env)
    key = json.dumps(setting, sort_keys=True, default=str)
    by_key.setdefault(key, []).append(r)
    settings[key] = setting
  names = sorted({n for s in settings.values() for n in s} -
                 {"agent", "env"})
  # Absent and present are a difference too (an override set in one group).
  differing = [n for n in names if len({
      json.dumps([n in s, s.get(n)], default=str)
      for s in settings.values()}) > 1]
  groups = {}
  for key, members in by_key.items():
    s = settings[key]
    label = " ".join([s["agent"], s["env"]] + [
        f"{n}={_short(s[n])}" for n in differing if n in s])
    groups[label] = members
  return groups


def _short_paths(loaded: Sequence[Run]) -> List[str]:
  """Each run's fewest trailing path components that tell it from the
  others (runs/a/seed0, runs/b/seed0, other: a/seed0, b/seed0, other)."""
  parts = [r.path.rstrip("/").split("/") for r in loaded]
  depth = [1] * len(parts)
  while True:
    labels = ["/".join(p[-k:]) for p, k in zip(parts, depth)]
    clashes = [i for i, label in enumerate(labels)
               if labels.count(label) > 1 and depth[i] < len(parts[i])]
    if not clashes:
      return labels
    for i in clashes:
      depth[i] += 1


def _short(value) -> str:
  if isinstance(value, (list, tuple)):
    return ",".join(str(v) for v in value) or "()"
  return str(value)


def resolve_metrics(requested: Optional[Sequence[str]],
                    loaded: Sequence[Run]) -> List[str]:
  """The metric columns to plot.

  Args:
    requested: column names (a vector metaparameter may be named without
      its "/mean"); None or empty: episode_return and every metaparameter
      column except the /min and /max of vector ones.
    loaded: the runs; a metric must be a column of at least one of them.

  Raises:
    ValueError: naming an unknown metric and the columns there are.
  """
  columns = []
  for r in loaded:
    columns += [c for c in r.data if c not in columns]
  if not requested:
    return [RETURN] + sorted(
        c for c in columns
        if c.startswith("meta/") and not c.endswith(("/min", "/max")))
  out = []
  for name in requested:
    column = name if name in columns else f"{name}/mean"
    if column not in columns:
      raise ValueError(
          f"--metrics: unknown metric {name!r}; the runs' metrics "
          f"have {', '.join(c for c in columns if c != 'env_steps')}")
    out.append(column)
  return out


@dataclasses.dataclass
class Summary:
  """One group on its grid: a band per metric, the last eval result."""
  runs: List[Run]
  grid: np.ndarray
  common_step: float  # The last env step every run of the group reached.
  bands: Dict[str, Band]
  eval_band: Band


def summarize(members: Sequence[Run], metrics: Sequence[str],
              points: int = GRID_POINTS) -> Summary:
  """Interpolates a group's runs on one grid and takes the bands.

  The grid has `points` equal steps up to the group's longest run, plus
  the last env step every run reached (`common_step`), so that the final
  values compare all seeds at one and the same step.
  """
  ends = [r.last_env_step for r in members]
  common = min(ends)
  grid = np.union1d(np.linspace(0.0, max(ends), points + 1)[1:], [common])
  bands = {m: band([on_grid(r.data, m, grid, until=r.last_env_step)
                    for r in members]) for m in metrics}
  evals = []
  for r in members:
    values = r.data.get(EVAL, np.array([]))
    values = values[~np.isnan(values)]
    evals.append(np.array([values[-1] if values.size else np.nan]))
  return Summary(runs=list(members), grid=grid, common_step=common,
                 bands=bands, eval_band=band(evals))


def figure(summaries: Dict[str, Summary], metrics: Sequence[str],
           dpi: int = 110) -> bytes:
  """PNG bytes: one panel per metric, one band per group in every panel
  (up to the group's common step, then the mean dashed)."""
  ncols = min(3, len(metrics))
  nrows = math.ceil(len(metrics) / ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows),
                           squeeze=False)
  colors = {label: f"C{i % 10}" for i, label in enumerate(summaries)}
  legend_at = None
  for ax, metric in zip(axes.flat, metrics):
    for label, s in summaries.items():
      curve = s.bands[metric]
      if np.all(np.isnan(curve[0])):
        continue
      # Evaluations are sparse (often one, at the end): a line alone
      # would not show them.
      style = dict(marker="o", markersize=3) if metric == EVAL else {}
      i = int(np.searchsorted(s.grid, s.common_step)) + 1
      plot_band(ax, s.grid[:i], tuple(c[:i] for c in curve), label,
                color=colors[label], **style)
      # Past the shortest seed's end the mean is over fewer seeds: no
      # band, and dashed so that its jumps do not read as learning.
      ax.plot(s.grid[i - 1:], curve[0][i - 1:], color=colors[label],
              ls="--", lw=1, **style)
      legend_at = legend_at or ax
    ax.set_title(metric + (" (last 100 episodes)" if metric == RETURN
                           else ""), fontsize=9)
    ax.set_xlabel("env steps")
  for ax in axes.flat[len(metrics):]:
    ax.set_axis_off()
  if legend_at is not None:
    # Every group in one legend, also those absent from that panel.
    handles = [matplotlib.lines.Line2D([], [], color=colors[label])
               for label in summaries]
    legend_at.legend(handles, list(summaries), fontsize=7)
  fig.tight_layout()
  out = io.BytesIO()
  fig.savefig(out, format="png", dpi=dpi)
  plt.close(fig)
  return out.getvalue()


def _value(curve: Band, i: int) -> str:
  mean, lo, hi = (float(v[i]) for v in curve)
  if math.isnan(mean):
    return "n/a"
  if lo == hi:  # One seed: no band to show.
    return f"{mean:.4g}"
  return f"{mean:.4g} [{lo:.4g}, {hi:.4g}]"


def table(summaries: Dict[str, Summary], metrics: Sequence[str]) -> str:
  """Markdown: per group its seeds, the final value of every metric with
  its band at the group's common last step, and the last evaluation."""
  header = ["group", "seeds", "env steps"] + list(metrics)
  # Also beside an eval/mean_return panel: that column is read at the
  # common step, where a later evaluation does not count yet.
  with_eval = any(not np.isnan(s.eval_band[0][0])
                  for s in summaries.values())
  if with_eval:
    header.append(f"last {EVAL}")
  lines = [
      "# Runs", "",
      "Values at the last env step every run of the group reached: mean "
      "[95% band] over seeds (mean +- 1.96 standard errors). "
      f"{RETURN} is the mean of the last 100 training episodes"
      + (f"; last {EVAL} is each run's last greedy evaluation." if with_eval
         else "."), "",
      "| " + " | ".join(header) + " |",
      "|" + "---|" * len(header)]
  for label, s in summaries.items():
    i = int(np.searchsorted(s.grid, s.common_step))
    row = [label, str(len(s.runs)), f"{s.common_step:.0f}"]
    row += [_value(s.bands[m], i) for m in metrics]
    if with_eval:
      row.append(_value(s.eval_band, 0))
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "Run directories:", ""]
  lines += [f"- {label}: " + ", ".join(r.path for r in s.runs)
            for label, s in summaries.items()]
  return "\n".join(lines) + "\n"
