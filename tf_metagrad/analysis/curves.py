"""Curves of training runs: metric rows, bands over seeds, PNG panels, tables.

Shared by `benchmarks.reproduce` (the committed results) and `trainers.plot`
(anyone's run directories). Defines no flags. Reads go through
`tf.io.gfile`, so run directories may live on any file system TensorFlow
supports (gs://, ram://...). Needs matplotlib (the `bench` extra).

Bands are mean +- 1.96 standard errors over seeds (a normal approximation
of the 95% interval of the mean), computed point by point after each run is
interpolated on a common env-step grid.
"""

import csv
import dataclasses
import fnmatch
import io
import json
import math
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.figure  # pylint: disable=g-import-not-at-top
import matplotlib.lines  # pylint: disable=g-import-not-at-top
import matplotlib.ticker  # pylint: disable=g-import-not-at-top
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.training import outputs

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


def bands_csv(x_name: str, x: np.ndarray, bands: Dict[str, Band]) -> str:
  """CSV text of curves with their bands on a common axis: a column `x_name`
  (integers), then "<name> mean", "<name> lo95", "<name> hi95" per curve."""
  text = io.StringIO()
  writer = csv.writer(text, lineterminator="\r\n")
  writer.writerow([x_name] + [f"{name} {column}" for name in bands
                              for column in ("mean", "lo95", "hi95")])
  for i, value in enumerate(x):
    writer.writerow([int(value)] + [f"{v[i]:.5g}" for band_ in bands.values()
                                    for v in band_])
  return text.getvalue()


def plot_band(ax: plt.Axes, grid: np.ndarray, curve: Band, label: str,
              color: Optional[str] = None, **line_kwargs: Any) -> None:
  """Draws a mean curve and its band, the band in the curve's colour."""
  mean, lo, hi = curve
  line, = ax.plot(grid, mean, label=label, color=color, **line_kwargs)
  ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)


@dataclasses.dataclass
class Run:
  """One run directory's metrics and evaluations (and spec, when read).

  Attributes:
    path: the run directory.
    data: column -> values over the run's training rows (NaN where a row
      has no value), without eval/mean_return.
    evals: the greedy evaluations as (env steps, mean returns), in the
      order written: their own series, whether read from evaluation chunks
      or from the rows of their own in an older run's metrics.
    spec: the run's `RunSpec` (None when it was not read).
  """
  path: str
  data: Dict[str, np.ndarray]
  evals: Tuple[np.ndarray, np.ndarray] = dataclasses.field(
      default_factory=lambda: (np.zeros(0), np.zeros(0)))
  spec: Optional[runs.RunSpec] = None

  @property
  def last_env_step(self) -> float:
    return float(np.nanmax(np.concatenate([self.data["env_steps"],
                                           self.evals[0]])))


def load_run(path: str, need_spec: bool = True) -> Run:
  """Reads DIR's metrics (`outputs.read_metrics`) and DIR/run_spec.json
  (when `need_spec`, or else when it is there and readable).

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
  evaluated = data.pop(EVAL, np.full_like(data["env_steps"], np.nan))
  evaluation = ~np.isnan(evaluated)
  evals = (data["env_steps"][evaluation], evaluated[evaluation])
  data = {k: v[~evaluation] for k, v in data.items()}
  spec = None
  has_spec = tf.io.gfile.exists(os.path.join(path, runs.SPEC_FILE))
  if need_spec and not has_spec:
    raise ValueError(f"{path}: no {runs.SPEC_FILE}, which grouping by "
                     f"setting, agent or env needs; use --group_by=none "
                     f"to plot each directory on its own")
  if has_spec:
    try:
      spec = runs.load_spec(path)
    except runs.RunError as e:
      if need_spec:
        raise ValueError(str(e)) from None
  return Run(path=path, data=data, evals=evals, spec=spec)


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


def _columns(loaded: Sequence[Run]) -> List[str]:
  """Every metric of the runs, in order of appearance; eval/mean_return
  when a run has evaluations."""
  columns = []
  for r in loaded:
    columns += [c for c in r.data if c not in columns and c != "env_steps"]
  if any(r.evals[0].size for r in loaded):
    columns.append(EVAL)
  return columns


def _bounds(column: str) -> bool:
  """Whether `column` is the min or max of a vector metaparameter."""
  return column.startswith("meta/") and column.endswith(("/min", "/max"))


def resolve_metrics(requested: Optional[Sequence[str]],
                    loaded: Sequence[Run]) -> List[str]:
  """The metric columns to plot.

  Args:
    requested: names or glob patterns (fnmatch: `meta/*`, `*loss`). A
      name stands for that column and every column under it but the min
      and max of a vector metaparameter: `meta/gamma` is STAC's
      meta/gamma, STACX's per-head meta/gamma/head0... and DrMG's
      meta/gamma/mean. None or empty: episode_return, eval/mean_return
      (when a run has evaluations) and every metaparameter but those min
      and max.
    loaded: the runs; a metric must be a column of at least one of them.

  Returns:
    The columns, each once, in the order requested.

  Raises:
    ValueError: naming a name or pattern that matches no column, and the
      columns there are.
  """
  columns = _columns(loaded)
  if not requested:
    meta = sorted(c for c in columns
                  if c.startswith("meta/") and not _bounds(c))
    return [c for c in (RETURN, EVAL) if c in columns] + meta
  out = []
  for name in requested:
    if any(c in name for c in "*?["):
      found = [c for c in columns if fnmatch.fnmatchcase(c, name)]
    else:
      found = [c for c in columns if c == name or (
          c.startswith(name.rstrip("/") + "/") and not _bounds(c))]
    if not found:
      raise ValueError(
          f"--metrics: {name!r} matches no metric; the runs' metrics are "
          f"{', '.join(columns)}")
    out += [c for c in found if c not in out]
  return out


def meta_group(column: str) -> Optional[str]:
  """The metaparameter group of `column` ("meta/gamma" for meta/gamma,
  meta/gamma/head0 or meta/gamma/mean), None for other metrics."""
  parts = column.split("/")
  return "/".join(parts[:2]) if parts[0] == "meta" and len(parts) > 1 else (
      None)


@dataclasses.dataclass
class Summary:
  """One group on its grid: a band per metric, its evaluations.

  Attributes:
    runs: the group's runs (its seeds).
    grid: env steps of the bands.
    common_step: the last env step every run of the group reached.
    bands: metric -> band on `grid` (training rows).
    eval_steps: env steps at which some run of the group was evaluated.
    eval_curve: the evaluations' band at `eval_steps` (a run between two
      of its evaluations interpolated, before its first or after its last
      none).
    eval_band: the band of each run's last evaluation (the table's).
  """
  runs: List[Run]
  grid: np.ndarray
  common_step: float
  bands: Dict[str, Band]
  eval_steps: np.ndarray
  eval_curve: Band
  eval_band: Band

  @property
  def agent(self) -> str:
    """The agent of the group's runs ("a+b" when they differ, "" when no
    run's spec was read)."""
    return "+".join(sorted({r.spec.agent for r in self.runs if r.spec}))


def _evaluations(members: Sequence[Run]) -> Tuple[np.ndarray, Band]:
  series = []
  for r in members:
    # The last value at a step: a run's final evaluation can follow a
    # periodic one at the same weights.
    by_step = dict(zip(*r.evals))
    steps = np.array(sorted(by_step), dtype=float)
    series.append((steps, np.array([by_step[s] for s in steps])))
  grid = np.unique(np.concatenate([s for s, _ in series]))
  if not grid.size:
    empty = np.zeros(0)
    return grid, (empty, empty, empty)
  curves = []
  for steps, values in series:
    curve = np.full_like(grid, np.nan)
    if steps.size:
      inside = (grid >= steps[0]) & (grid <= steps[-1])
      curve[inside] = np.interp(grid[inside], steps, values)
    curves.append(curve)
  return grid, band(curves)


def summarize(members: Sequence[Run], metrics: Sequence[str],
              points: int = GRID_POINTS) -> Summary:
  """Interpolates a group's runs on one grid and takes the bands.

  The grid has `points` equal steps up to the group's longest run, plus
  the last env step every run reached (`common_step`), so that the final
  values compare all seeds at one and the same step. Evaluations are a
  series of their own, on the env steps at which they ran.
  """
  ends = [r.last_env_step for r in members]
  common = min(ends)
  grid = np.union1d(np.linspace(0.0, max(ends), points + 1)[1:], [common])
  bands = {m: band([on_grid(r.data, m, grid, until=r.last_env_step)
                    for r in members]) for m in metrics if m != EVAL}
  eval_steps, eval_curve = _evaluations(members)
  lasts = [np.array([r.evals[1][-1] if r.evals[1].size else np.nan])
           for r in members]
  return Summary(runs=list(members), grid=grid, common_step=common,
                 bands=bands, eval_steps=eval_steps, eval_curve=eval_curve,
                 eval_band=band(lasts))


@dataclasses.dataclass
class Line:
  """One curve of a panel: a group's band of one metric."""
  group: str
  metric: str
  label: str


@dataclasses.dataclass
class Panel:
  """One axes of the figure: a title and its curves (never none)."""
  title: str
  lines: List[Line]


_TITLES = {RETURN: f"{RETURN} (training, last 100 episodes)",
           EVAL: f"{EVAL} (greedy evaluations)"}


def _has_values(summary: Summary, metric: str) -> bool:
  curve = summary.eval_curve if metric == EVAL else summary.bands[metric]
  return bool(np.any(~np.isnan(curve[0])))


def panels(summaries: Dict[str, Summary],
           metrics: Sequence[str]) -> List[List[Panel]]:
  """The figure's panels, in sections that each start a row.

  The first section compares the groups: one panel per metric that is not
  a metaparameter (episode_return, eval/mean_return first), a curve per
  group. Then one section per agent (in order of appearance): a panel per
  metaparameter group (`meta_group`; STACX's three per-head gammas in one
  panel), a curve per column and group of that agent. A curve without any
  value is left out, and a panel without curves.
  """
  order = {m: i for i, m in enumerate([RETURN, EVAL])}
  compared = sorted((m for m in metrics if meta_group(m) is None),
                    key=lambda m: order.get(m, len(order)))
  sections = [[Panel(_TITLES.get(m, m), [
      Line(label, m, label) for label, s in summaries.items()
      if _has_values(s, m)]) for m in compared]]
  by_agent: Dict[str, List[str]] = {}
  for label, s in summaries.items():
    by_agent.setdefault(s.agent, []).append(label)
  groups = list(dict.fromkeys(g for g in map(meta_group, metrics) if g))
  for agent, labels in by_agent.items():
    section = []
    for group in groups:
      lines = []
      for label in labels:
        for m in metrics:
          if meta_group(m) != group or not _has_values(summaries[label], m):
            continue
          part = m[len(group) + 1:]
          name = " ".join(p for p in (label if len(labels) > 1 else "", part)
                          if p) or label
          lines.append(Line(label, m, name))
      section.append(Panel(f"{agent}: {group}" if agent else group, lines))
    sections.append(section)
  return [kept for kept in ([p for p in section if p.lines]
                            for section in sections) if kept]


def _env_steps(x: float, _=None) -> str:
  for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
    if abs(x) >= scale:
      return f"{x / scale:g}{suffix}"
  return f"{x:g}"


def _draw_line(ax: plt.Axes, s: Summary, line: Line, color: str) -> None:
  if line.metric == EVAL:
    # Evaluations are sparse (often one, at the end): markers show them.
    plot_band(ax, s.eval_steps, s.eval_curve, line.label, color=color,
              marker="o", markersize=3)
    return
  curve = s.bands[line.metric]
  style = {}
  if np.sum(~np.isnan(curve[0])) < 2:
    style = dict(marker="o", markersize=3)  # A point alone has no line.
  i = int(np.searchsorted(s.grid, s.common_step)) + 1
  plot_band(ax, s.grid[:i], tuple(c[:i] for c in curve), line.label,
            color=color, **style)
  # Past the shortest seed's end the mean is over fewer seeds: no band,
  # and dashed so that its jumps do not read as learning.
  ax.plot(s.grid[i - 1:], curve[0][i - 1:], color=color, ls="--", lw=1,
          **style)


def draw(summaries: Dict[str, Summary], metrics: Sequence[str],
         max_columns: int = 3) -> matplotlib.figure.Figure:
  """The figure of `panels`: each section from a new row of at most
  `max_columns` panels, no axes without curves. Groups keep one colour in
  the first section; a metaparameter panel colours its own curves.

  Raises:
    ValueError: if no selected metric has a value in any run.
  """
  sections = panels(summaries, metrics)
  if not sections:
    raise ValueError(f"nothing to draw: these runs have no value of "
                     f"{', '.join(metrics)} (--metrics)")
  ncols = min(max_columns, max(map(len, sections)))
  rows = sum(math.ceil(len(section) / ncols) for section in sections)
  fig = plt.figure(figsize=(4.6 * ncols, 3.4 * rows))
  grid = fig.add_gridspec(rows, ncols)
  colors = {label: f"C{i % 10}" for i, label in enumerate(summaries)}
  row = 0
  for section in sections:
    compared = meta_group(section[0].lines[0].metric) is None
    for i, panel in enumerate(section):
      ax = fig.add_subplot(grid[row + i // ncols, i % ncols])
      by_group = all(line.label == line.group for line in panel.lines)
      for j, line in enumerate(panel.lines):
        _draw_line(ax, summaries[line.group], line,
                   colors[line.group] if by_group else f"C{j % 10}")
      ax.set_title(panel.title, fontsize=9)
      ax.set_xlabel("env steps", fontsize=8)
      ax.tick_params(labelsize=7)
      ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_env_steps))
      # Metaparameters move in the 4th decimal: an offset ("+9.9e-1")
      # would leave the ticks without their values.
      ax.ticklabel_format(axis="y", useOffset=False)
      if compared and i == 0:
        # Every group, also those absent from this panel, with its seeds.
        handles = [matplotlib.lines.Line2D([], [], color=colors[label])
                   for label in summaries]
        ax.legend(handles, [
            f"{label} ({len(s.runs)} seed{'s' * (len(s.runs) > 1)})"
            for label, s in summaries.items()], fontsize=7)
      elif not compared:
        ax.legend(fontsize=7)
    row += math.ceil(len(section) / ncols)
  fig.tight_layout()
  return fig


def figure(summaries: Dict[str, Summary], metrics: Sequence[str],
           dpi: int = 110) -> bytes:
  """PNG bytes of `draw(summaries, metrics)`."""
  fig = draw(summaries, metrics)
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
  """Markdown: per group its seeds, the final value of every training
  metric with its band at the group's common last step, and the band of
  the runs' last evaluations."""
  trained = [m for m in metrics if m != EVAL]
  header = ["group", "seeds", "env steps"] + trained
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
    row += [_value(s.bands[m], i) for m in trained]
    if with_eval:
      row.append(_value(s.eval_band, 0))
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "Run directories:", ""]
  lines += [f"- {label}: " + ", ".join(r.path for r in s.runs)
            for label, s in summaries.items()]
  return "\n".join(lines) + "\n"


def curves_csv(summaries: Dict[str, Summary], metrics: Sequence[str]) -> str:
  """The drawn curves as CSV, one row per group, metric and env step:
  group,metric,env_steps,mean,lo95,hi95 (long format: each group has a grid
  of its own; evaluations on the steps at which they ran)."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["group", "metric", "env_steps", "mean", "lo95", "hi95"])
  for label, s in summaries.items():
    for metric in metrics:
      grid, curve = ((s.eval_steps, s.eval_curve) if metric == EVAL
                     else (s.grid, s.bands[metric]))
      for i, step in enumerate(grid):
        if not math.isnan(float(curve[0][i])):
          writer.writerow([label, metric, f"{step:.0f}"]
                          + [f"{float(v[i]):.6g}" for v in curve])
  return out.getvalue()
