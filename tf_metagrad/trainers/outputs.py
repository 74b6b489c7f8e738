"""What the training loop writes: metrics.csv, summaries, progress lines.

The loop (`tf_metagrad.trainers.loop`) only moves data and counts; everything it shows
or stores goes through a `Reporter`, which is also the only place where the
learner's outputs are read back to the host, and only when a report is due.
Files go through `tf.io.gfile`, so a run directory may live on any
filesystem TensorFlow supports.
"""

import collections
import csv
import io
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf


class CsvLog:
  """metrics.csv: one row per report; resumed runs append.

  A row with keys the header lacks (e.g. the learner's losses after a
  session that ended before the first learner step) rewrites the file with
  the union of the columns, so no metric is locked out.
  """

  def __init__(self, path: str) -> None:
    self._path = path
    self._columns = None
    if tf.io.gfile.exists(path) and tf.io.gfile.stat(path).length > 0:
      with tf.io.gfile.GFile(path) as f:
        self._columns = next(csv.reader(io.StringIO(f.read())), None)

  def write(self, row: Dict[str, float]) -> None:
    new = sorted(k for k in row if k not in (self._columns or ()) and
                 k not in ("env_steps", "learner_steps"))
    if self._columns is None:
      self._columns = ["env_steps", "learner_steps"] + new
      with tf.io.gfile.GFile(self._path, "w") as f:
        f.write(_csv_line(self._columns))
    elif new:
      with tf.io.gfile.GFile(self._path) as f:
        old_rows = list(csv.DictReader(io.StringIO(f.read())))
      self._columns = self._columns + new
      text = io.StringIO()
      writer = csv.DictWriter(text, self._columns, restval="")
      writer.writeheader()
      writer.writerows(old_rows)
      tmp = self._path + ".tmp"
      with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text.getvalue())
      tf.io.gfile.rename(tmp, self._path, overwrite=True)
    with tf.io.gfile.GFile(self._path, "a") as f:
      f.write(_csv_line([row.get(c, "") for c in self._columns]))


def last_value(path: str, column: str) -> float:
  """The last non-empty value of `column` in the CSV file `path` (NaN when
  there is none)."""
  if not tf.io.gfile.exists(path):
    return float("nan")
  with tf.io.gfile.GFile(path) as f:
    values = [row.get(column) for row in csv.DictReader(io.StringIO(f.read()))]
  values = [v for v in values if v]
  return float(values[-1]) if values else float("nan")


def _csv_line(values) -> str:
  text = io.StringIO()
  csv.writer(text).writerow(values)
  return text.getvalue()


class RecentRate:
  """Steps per second over roughly the last `window_s` seconds.

  An average since start-up carries the first call's tracing and the
  actors' start into every later rate: the first ETA of a 20 s run read 7
  minutes. The rate here spans from the newest sample at least `window_s`
  old (or the oldest kept) to now.

  Args:
    window_s: the window's length.
    max_samples: bound on the kept samples (reports may come after every
      learner call); the window shortens when it is reached.
  """

  def __init__(self, window_s: float = 30.0,
               max_samples: int = 1024) -> None:
    self._window_s = window_s
    self._samples = collections.deque(maxlen=max_samples)

  @property
  def started(self) -> bool:
    return bool(self._samples)

  def update(self, now: float, count: int) -> float:
    """Adds the sample (now, count); returns the rate (NaN until two samples
    with distinct times exist)."""
    self._samples.append((now, count))
    while (len(self._samples) > 2 and
           self._samples[1][0] <= now - self._window_s):
      self._samples.popleft()
    then, before = self._samples[0]
    if now <= then:
      return float("nan")
    return (count - before) / (now - then)


def format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


class Reporter:
  """Keeps the learner's latest outputs as tensors until a report needs them.

  Reading them back after every call cost the learner thread time that
  acting threads holding the GIL stretched (see benchmarks.throughput).

  Args:
    logdir: where metrics.csv and the TensorBoard events go.
    strategy: the learner's strategy (episode statistics are per replica).
    total_env_steps: the run's length, for the progress line.
    start_env_steps: the env-step counter when this session started.
  """

  def __init__(self, logdir: str, strategy: tf.distribute.Strategy,
               total_env_steps: int, start_env_steps: int,
               clock: Callable[[], float] = time.monotonic) -> None:
    self._strategy = strategy
    self._total = total_env_steps
    self._writer = tf.summary.create_file_writer(logdir)
    self._csv = CsvLog(os.path.join(logdir, "metrics.csv"))
    self._clock = clock
    self._start_time = clock()
    self._start_steps = start_env_steps
    self._rate = RecentRate()
    self._last: Dict[str, float] = {}
    self._metrics: Dict[str, tf.Tensor] = {}
    self._pending: List[Any] = []
    self._returns: List[float] = []
    self.episodes = 0

  def due(self, what: str, every_s: float) -> bool:
    """True at most every `every_s` seconds per `what` (first: after one
    period from the start)."""
    now = self._clock()
    if now - self._last.get(what, self._start_time) < every_s:
      return False
    self._last[what] = now
    return True

  def add(self, metrics: Dict[str, tf.Tensor], extras: Dict[str, Any],
          env_steps: int) -> None:
    """Takes one learner call's outputs (last-step metrics, extras with
    per-replica `episode_return` leaves, NaN where no episode ended) and
    the env-step count after it."""
    if not self._rate.started:
      # The rate starts after the first call, whose tracing is no
      # indication of the speed to come.
      self._rate.update(self._clock(), env_steps)
    self._metrics = metrics
    self._pending.append(extras["episode_return"])
    if len(self._pending) >= 256:  # Bounded whatever the report period.
      self._drain()

  def _drain(self):
    for per_replica in self._pending:
      ep = np.concatenate(
          [np.reshape(x, [-1]) for x in
           self._strategy.experimental_local_results(per_replica)])
      finished = ep[~np.isnan(ep)]
      self.episodes += finished.size
      self._returns.extend(finished.tolist())
    self._pending.clear()
    del self._returns[:-1000]

  def row(self, env_steps: int, learner_steps: int,
          actor_restarts: int) -> Dict[str, float]:
    """The current report: learner metrics, counters, rates, returns."""
    self._drain()
    now = self._clock()
    elapsed = max(now - self._start_time, 1e-9)
    fps = self._rate.update(now, env_steps) if self._rate.started else (
        float("nan"))
    if math.isnan(fps):
      fps = (env_steps - self._start_steps) / elapsed
    row = {k: float(v) for k, v in self._metrics.items()}
    row.update(env_steps=env_steps, learner_steps=learner_steps,
               wall_time_s=elapsed, fps=fps,
               episodes=self.episodes, actor_restarts=actor_restarts)
    # Always present (NaN before the first episode ends) so that metrics.csv,
    # whose columns are fixed by its first row, keeps the column.
    row["episode_return"] = (float(np.mean(self._returns[-100:]))
                             if self._returns else float("nan"))
    return row

  def write(self, row: Dict[str, float],
            meta_values: Optional[Mapping[str, Any]] = None) -> None:
    """Appends `row` to metrics.csv and the TensorBoard events.

    Args:
      row: a `row()`.
      meta_values: the learner's current metaparameter values by name
        (`Learner.meta_values()`); vector ones (DrMG's per-quantile
        discounts and the like) go to TensorBoard element by element as
        meta/NAME/qI. Only there: `row` already has their mean/min/max, and
        one CSV column per quantile would drown metrics.csv.
    """
    self._csv.write(row)
    with self._writer.as_default(step=row["env_steps"]):
      for k, v in row.items():
        tf.summary.scalar(k, v)
      for name, value in (meta_values or {}).items():
        value = np.asarray(value)
        if value.ndim:
          for i, x in enumerate(value.reshape([-1])):
            tf.summary.scalar(f"meta/{name}/q{i}", float(x))
    self._writer.flush()

  def write_eval(self, env_steps: int, learner_steps: int,
                 mean_return: float) -> None:
    """One greedy evaluation's mean return, at the env-step count of the
    weights it evaluated, as the eval/mean_return column and scalar."""
    self._csv.write({"env_steps": env_steps, "learner_steps": learner_steps,
                     "eval/mean_return": mean_return})
    with self._writer.as_default(step=env_steps):
      tf.summary.scalar("eval/mean_return", mean_return)
    self._writer.flush()

  def write_config(self, config: Mapping[str, Any], step: int,
                   log: Callable[[str], None] = print) -> None:
    """The run's resolved configuration, as a text summary ("config") and,
    where the installed TensorBoard has the hparams plugin, as hparams."""
    flat = {k: _hparam_value(v) for k, v in sorted(config.items())}
    table = "\n".join(["| name | value |", "|---|---|"] + [
        f"| {k} | {json.dumps(v) if isinstance(v, str) else v} |"
        for k, v in flat.items()])
    try:
      from tensorboard.plugins.hparams import api as hparams_api  # pylint: disable=g-import-not-at-top
    except ImportError:
      hparams_api = None
    with self._writer.as_default(step=step):
      tf.summary.text("config", table)
      if hparams_api is not None:
        hparams_api.hparams(flat)
    self._writer.flush()
    if hparams_api is None:
      log("note: tensorboard.plugins.hparams is not installed; the run's "
          "configuration is in TensorBoard's text tab only")

  def progress_line(self, row: Dict[str, float]) -> str:
    remaining = self._total - row["env_steps"]
    # Vector metaparameters (DrMG) show as their mean, e.g. gamma/mean.
    metas = " ".join(f"{k[5:]}={v:.4g}" for k, v in sorted(row.items())
                     if k.startswith("meta/") and
                     ("/" not in k[5:] or k.endswith("/mean")))
    ret = row.get("episode_return", float("nan"))
    # No steps measured yet (the first report): no rate, so no ETA.
    fps = row["fps"]
    eta = format_eta(remaining / fps) if fps > 0 else "?"
    return (f"env_steps={row['env_steps']} "
            f"({100 * row['env_steps'] / self._total:.1f}%) "
            f"fps={row['fps']:.0f} learner_steps={row['learner_steps']} "
            f"return={ret:.3f} {metas} "
            f"eta={eta}")


def _hparam_value(value):
  """`value` as an hparams value (bool, int, float or str)."""
  if isinstance(value, (bool, int, float, str)):
    return value
  if value is None:
    return "None"
  return json.dumps(value, default=str, sort_keys=True)
