"""What the training loop writes: metrics.csv, summaries, progress lines.

The loop (`trainers.loop`) only moves data and counts; everything it shows
or stores goes through a `Reporter`, which is also the only place where the
learner's outputs are read back to the host, and only when a report is due.
"""

import csv
import math
import os
import time
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf


class CsvLog:
  """metrics.csv: one row per report; resumed runs append.

  A row with keys the header lacks (e.g. the learner's losses after a
  session that ended before the first learner step) rewrites the file with
  the union of the columns, so no metric is locked out.
  """

  def __init__(self, path: str):
    self._path = path
    self._columns = None
    if os.path.exists(path) and os.path.getsize(path) > 0:
      with open(path, newline="") as f:
        self._columns = next(csv.reader(f), None)

  def write(self, row: Dict[str, float]):
    new = sorted(k for k in row if k not in (self._columns or ()) and
                 k not in ("env_steps", "learner_steps"))
    if self._columns is None:
      self._columns = ["env_steps", "learner_steps"] + new
      with open(self._path, "w", newline="") as f:
        csv.writer(f).writerow(self._columns)
    elif new:
      with open(self._path, newline="") as f:
        old_rows = list(csv.DictReader(f))
      self._columns = self._columns + new
      tmp = self._path + ".tmp"
      with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, self._columns, restval="")
        writer.writeheader()
        writer.writerows(old_rows)
      os.replace(tmp, self._path)
    with open(self._path, "a", newline="") as f:
      csv.writer(f).writerow([row.get(c, "") for c in self._columns])


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
               total_env_steps: int, start_env_steps: int):
    self._strategy = strategy
    self._total = total_env_steps
    self._writer = tf.summary.create_file_writer(logdir)
    self._csv = CsvLog(os.path.join(logdir, "metrics.csv"))
    self._start_time = time.monotonic()
    self._start_steps = start_env_steps
    self._last: Dict[str, float] = {}
    self._metrics: Dict[str, tf.Tensor] = {}
    self._pending: List[Any] = []
    self._returns: List[float] = []
    self.episodes = 0

  def due(self, what: str, every_s: float) -> bool:
    """True at most every `every_s` seconds per `what` (first: after one
    period from the start)."""
    now = time.monotonic()
    if now - self._last.get(what, self._start_time) < every_s:
      return False
    self._last[what] = now
    return True

  def add(self, metrics: Dict[str, tf.Tensor], extras: Dict[str, Any]):
    """Takes one learner call's outputs (last-step metrics, extras with
    per-replica `episode_return` leaves, NaN where no episode ended)."""
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
    elapsed = max(time.monotonic() - self._start_time, 1e-9)
    row = {k: float(v) for k, v in self._metrics.items()}
    row.update(env_steps=env_steps, learner_steps=learner_steps,
               wall_time_s=elapsed,
               fps=(env_steps - self._start_steps) / elapsed,
               episodes=self.episodes, actor_restarts=actor_restarts)
    # Always present (NaN before the first episode ends) so that metrics.csv,
    # whose columns are fixed by its first row, keeps the column.
    row["episode_return"] = (float(np.mean(self._returns[-100:]))
                             if self._returns else float("nan"))
    return row

  def write(self, row: Dict[str, float]):
    """Appends `row` to metrics.csv and the TensorBoard events."""
    self._csv.write(row)
    with self._writer.as_default(step=row["env_steps"]):
      for k, v in row.items():
        tf.summary.scalar(k, v)
    self._writer.flush()

  def progress_line(self, row: Dict[str, float]) -> str:
    remaining = self._total - row["env_steps"]
    # Vector metaparameters (DrMG) show as their mean, e.g. gamma/mean.
    metas = " ".join(f"{k[5:]}={v:.4g}" for k, v in sorted(row.items())
                     if k.startswith("meta/") and
                     ("/" not in k[5:] or k.endswith("/mean")))
    ret = row.get("episode_return", float("nan"))
    return (f"env_steps={row['env_steps']} "
            f"({100 * row['env_steps'] / self._total:.1f}%) "
            f"fps={row['fps']:.0f} learner_steps={row['learner_steps']} "
            f"return={ret:.3f} {metas} "
            f"eta={format_eta(remaining / max(row['fps'], 1e-9))}")
