"""What the training loop writes: metric rows, summaries, progress lines.

The loop (`tf_metagrad.training.loop`) only moves data and counts; everything it shows
or stores goes through a `Reporter`, which is also the only place where the
learner's outputs are read back to the host, and only when a report is due.
Files go through `tf.io.gfile`, so a run directory may live on any
filesystem TensorFlow supports.
"""

import collections
import csv
import io
import itertools
import json
import math
import os
import re
import socket
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.plugins.text import summary_v2 as text_summary
import tensorflow as tf


METRICS_DIR = "metrics"
LEGACY_METRICS_FILE = "metrics.csv"
# The series of metric rows: training rows, and greedy evaluations (env_steps,
# learner_steps and eval/mean_return only), each in chunks of its own.
TRAIN, EVAL = "train", "eval"
SERIES = (TRAIN, EVAL)
# A chunk's name: its series ("eval-" or none), its sequence number (the
# write order over both series, which readers keep) and, for people browsing
# the bucket, the env-step count of its first row.
_CHUNK = re.compile(r"(eval-)?(\d+)-(\d+)\.csv")
# A chunk being written. Not "<chunk>.tmp": ram:// takes a name that extends
# another for that one, so the final name would seem to exist already.
_PENDING = re.compile(r"tmp-(eval-)?(\d+)-(\d+)\.csv")


class CsvLog:
  """The run's metric rows, written as new objects that are never rewritten.

  Appending to one metrics.csv cost, on an object store such as gs://, a
  download and re-upload of the whole object for every row (objects are
  immutable, so that is how TensorFlow appends): a run's total cost grew
  with the square of its length. Here rows are held in memory and `flush`
  writes those held as a new object `metrics/<seq>-<first env step>.csv`
  (six and twelve digits), so every byte is written once (twice counting
  the rename) and each write costs its own rows only. The loop flushes
  after every checkpoint and at the end of the session, `Reporter` after
  each evaluation, and `write` when `max_rows` rows are held, which bounds
  memory and a chunk's size when checkpoints are rare.

  Evaluations (`write(row, series=EVAL)`) go to chunks of their own,
  `metrics/eval-<seq>-<env step>.csv`: in one file with the training rows
  each took a row of otherwise empty columns. A flush writes the training
  chunk first, then the evaluation chunk (`Reporter` flushes after each
  evaluation, so the training rows held are older), and the sequence
  numbers run over both series: `read_metrics` gives the rows in the order
  written, as before.

  A chunk is written under a temporary name, then renamed without
  overwriting: readers never see half a chunk (a temporary left by a
  killed process is skipped by readers and by later sequence numbers).
  Each chunk has its own header, the columns this session has written so
  far to its series (env_steps and learner_steps first, later ones as they
  appear), and `read_metrics` takes the union.

  Sequence numbers continue those already in the directory, so a resumed
  session adds chunks after the earlier ones. As with the appended file
  before, rows a stopped session wrote after its last checkpoint stay and
  the resumed session reports those env steps again after them. A session
  killed outright (kill -9, a lost machine) loses the rows held since its
  last flush: fewer than `max_rows`, all reported after its last
  checkpoint, whose steps the resumed session trains and reports again.
  SIGTERM and errors go through the loop's final flush.

  Args:
    logdir: the run directory (any `tf.io.gfile` path).
    max_rows: rows held before `write` flushes by itself.
  """

  def __init__(self, logdir: str, max_rows: int = 1000) -> None:
    self._dir = os.path.join(logdir, METRICS_DIR)
    self._max_rows = max_rows
    self._columns = {s: ["env_steps", "learner_steps"] for s in SERIES}
    self._rows: Dict[str, List[Dict[str, float]]] = {s: [] for s in SERIES}
    taken = [int(m.group(2)) for m in (
        _CHUNK.fullmatch(n) or _PENDING.fullmatch(n)
        for n in _basenames(self._dir)) if m]
    self._next = max(taken, default=-1) + 1

  def write(self, row: Dict[str, float], series: str = TRAIN) -> None:
    """Holds `row` (it must have env_steps) for the next chunk of `series`
    (TRAIN or EVAL)."""
    if series not in SERIES:
      raise ValueError(f"series must be one of {SERIES}, got {series!r}.")
    columns = self._columns[series]
    columns += sorted(k for k in row if k not in columns)
    self._rows[series].append(dict(row))
    if sum(map(len, self._rows.values())) >= self._max_rows:
      self.flush()

  def flush(self) -> None:
    """Writes the rows held as one new chunk per series (training first;
    nothing for a series without rows)."""
    for series in SERIES:
      rows = self._rows[series]
      if not rows:
        continue
      text = io.StringIO()
      writer = csv.DictWriter(text, self._columns[series], restval="")
      writer.writeheader()
      writer.writerows(rows)
      prefix = "" if series == TRAIN else f"{series}-"
      name = (f"{prefix}{self._next:06d}-"
              f"{int(rows[0]['env_steps']):012d}.csv")
      tf.io.gfile.makedirs(self._dir)
      pending = os.path.join(self._dir, "tmp-" + name)
      with tf.io.gfile.GFile(pending, "w") as f:
        f.write(text.getvalue())
      tf.io.gfile.rename(pending, os.path.join(self._dir, name),
                         overwrite=False)
      self._next += 1
      rows.clear()


# Numbers this process's events files: with the time, host and process id
# in a name (as in tf.summary's names), it keeps every name unique and a
# process's files in the order written when they share a second.
_EVENT_FILE_NUMBERS = itertools.count()


class EventLog:
  """The run's TensorBoard events, written as new files never written again.

  tf.summary's file writer keeps one events file for the whole session and
  flushes it when an `as_default` block ends, after every 11 events (its
  default max_queue of 10) and every 2 minutes. On gs://, where TensorFlow
  uploads a written file whole at each flush, a report's flush cost the
  file's whole size so far: the run's cost grew with the square of its
  length, as appending to metrics.csv did. Here events are held in memory
  and `flush` writes those held as one new file
  `events.out.tfevents.<time>.<host>.<pid>.<number>.v2`, uploaded once at
  its close: every byte is written once and each write costs its own
  events only. TensorBoard reads every events file of the directory; it
  shows a session's summaries as these files land.

  Scalars are TF2 summaries (TensorBoard's `summary_v2`: a tensor with the
  scalars plugin's metadata). TensorBoard's UI shows them in its scalars
  tab; in Python, `EventAccumulator(DIR, size_guidance={"tensors": 0})`
  lists them under `Tags()["tensors"]` (`Tags()["scalars"]` is empty) and
  `Tensors(tag)` reads them.

  `Reporter` flushes it with the metrics (after every checkpoint, each
  evaluation and at the end of the session) and after the configuration,
  and `write` when `max_values` summary values are held, which bounds
  memory and a file's size. A session killed outright loses the events
  held, as `CsvLog` loses its rows.

  Args:
    logdir: the run directory (any `tf.io.gfile` path).
    max_values: summary values held before `write` flushes by itself.
  """

  def __init__(self, logdir: str, max_values: int = 20000) -> None:
    self._logdir = logdir
    self._max_values = max_values
    self._events: List[bytes] = []
    self._values = 0

  def write(self, step: int, summary: summary_pb2.Summary) -> None:
    """Holds `summary` at `step`, stamped with the current time, for the
    next file."""
    event = event_pb2.Event(wall_time=time.time(), step=int(step),
                            summary=summary)
    self._events.append(event.SerializeToString())
    self._values += len(summary.value)
    if self._values >= self._max_values:
      self.flush()

  def flush(self) -> None:
    """Writes the events held as one new file (nothing when none are)."""
    if not self._events:
      return
    now = time.time()
    name = (f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_EVENT_FILE_NUMBERS):06d}.v2")
    tf.io.gfile.makedirs(self._logdir)
    with tf.io.TFRecordWriter(os.path.join(self._logdir, name)) as f:
      f.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2")
              .SerializeToString())
      for event in self._events:
        f.write(event)
    self._events.clear()
    self._values = 0


def _scalars(values: Mapping[str, float]) -> summary_pb2.Summary:
  summary = summary_pb2.Summary()
  for tag, value in values.items():
    summary.value.extend(scalar_summary.scalar_pb(tag, value).value)
  return summary


def _basenames(directory: str) -> List[str]:
  # glob, not listdir: ram:// lists names that merely extend the directory's.
  return [os.path.basename(p)
          for p in tf.io.gfile.glob(os.path.join(directory, "*"))]


def metric_files(logdir: str) -> List[str]:
  """The files holding a run's metric rows, in the order they were written.

  Training and evaluation chunks together, by sequence number. A run
  directory from before the chunks may have a single metrics.csv (its
  evaluations in rows of their own); a resumed old run has it and chunks,
  the file first.
  """
  legacy = os.path.join(logdir, LEGACY_METRICS_FILE)
  files = tf.io.gfile.glob(legacy)
  directory = os.path.join(logdir, METRICS_DIR)
  chunks = [m for m in map(_CHUNK.fullmatch, _basenames(directory)) if m]
  chunks.sort(key=lambda m: int(m.group(2)))
  return files + [os.path.join(directory, m.group(0)) for m in chunks]


def read_metrics(logdir: str) -> Tuple[List[str], List[Dict[str, str]]]:
  """Every metric row of a run, read from all its files together.

  Args:
    logdir: the run directory (any `tf.io.gfile` path).

  Returns:
    The columns (the union of the files' headers, in order of appearance)
    and the rows of both series in the order they were written, each with
    every column ("" where the row has no value: an evaluation's row has
    only env_steps, learner_steps and eval/mean_return). No files: no
    columns and no rows.

  Raises:
    ValueError: if a file has no env_steps column.
  """
  columns: List[str] = []
  rows: List[Dict[str, str]] = []
  for path in metric_files(logdir):
    with tf.io.gfile.GFile(path) as f:
      reader = csv.DictReader(io.StringIO(f.read()), restval="")
      header = reader.fieldnames or []
      if "env_steps" not in header:
        raise ValueError(f"{path} has no env_steps column (header: "
                         f"{','.join(header) or 'none'}); expected metrics "
                         f"written by trainers.train")
      columns += [c for c in header if c not in columns]
      rows += list(reader)
  return columns, [{c: r.get(c) or "" for c in columns} for r in rows]


def last_value(logdir: str, column: str) -> float:
  """The last non-empty value of `column` in the run's metrics (NaN when
  there is none)."""
  _, rows = read_metrics(logdir)
  values = [r[column] for r in rows if r.get(column)]
  return float(values[-1]) if values else float("nan")


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
    logdir: where the metric chunks (`CsvLog`) and the TensorBoard events
      files (`EventLog`) go.
    strategy: the learner's strategy (episode statistics are per replica).
    total_env_steps: the run's length, for the progress line.
    start_env_steps: the env-step counter when this session started.
  """

  def __init__(self, logdir: str, strategy: tf.distribute.Strategy,
               total_env_steps: int, start_env_steps: int,
               clock: Callable[[], float] = time.monotonic) -> None:
    self._strategy = strategy
    self._total = total_env_steps
    self._csv = CsvLog(logdir)
    self._events = EventLog(logdir)
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
          env_steps: int, num_rows: Optional[int] = None) -> None:
    """Takes one learner call's outputs (last-step metrics, extras with
    per-replica `episode_return` leaves `[max_steps, ...]`, NaN where no
    episode ended), the env-step count after it, and how many leading rows
    of the extras the call's steps filled (None: all)."""
    if not self._rate.started:
      # The rate starts after the first call, whose tracing is no
      # indication of the speed to come.
      self._rate.update(self._clock(), env_steps)
    self._metrics = metrics
    self._pending.append((extras["episode_return"], num_rows))
    if len(self._pending) >= 256:  # Bounded whatever the report period.
      self._drain()

  def _drain(self):
    for per_replica, num_rows in self._pending:
      ep = np.concatenate(
          [np.reshape(np.asarray(x)[:num_rows], [-1]) for x in
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
    # Always present (NaN before the first episode ends), so that the
    # column is there from a run's first row on.
    row["episode_return"] = (float(np.mean(self._returns[-100:]))
                             if self._returns else float("nan"))
    return row

  def write(self, row: Dict[str, float],
            meta_values: Optional[Mapping[str, Any]] = None) -> None:
    """Adds `row` to the metrics and the TensorBoard events (both held
    until a flush).

    Args:
      row: a `row()`.
      meta_values: the learner's current metaparameter values by name
        (`Learner.meta_values()`); vector ones (DrMG's per-quantile
        discounts and the like) go to TensorBoard element by element as
        meta/NAME/qI. Only there: `row` already has their mean/min/max, and
        one CSV column per quantile would drown the metrics.
    """
    self._csv.write(row)
    values = dict(row)
    for name, value in (meta_values or {}).items():
      value = np.asarray(value)
      if value.ndim:
        values.update((f"meta/{name}/q{i}", float(x))
                      for i, x in enumerate(value.reshape([-1])))
    self._events.write(row["env_steps"], _scalars(values))

  def write_eval(self, env_steps: int, learner_steps: int,
                 mean_return: float) -> None:
    """One greedy evaluation's mean return, at the env-step count of the
    weights it evaluated, as the eval/mean_return column (in the
    evaluation chunks, `CsvLog`) and scalar.

    Flushes the metrics and events at once: evaluations are few (one per
    eval_every_env_steps at most) and costly to redo, and the run's final
    one comes after the loop's last flush.
    """
    self._csv.write({"env_steps": env_steps, "learner_steps": learner_steps,
                     "eval/mean_return": mean_return}, series=EVAL)
    self._events.write(env_steps, _scalars({"eval/mean_return": mean_return}))
    self.flush()

  def flush(self) -> None:
    """Writes the metric rows and the events held (`CsvLog.flush`,
    `EventLog.flush`); the loop calls it after every checkpoint and after
    the session's last row."""
    self._csv.flush()
    self._events.flush()

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
    summary = text_summary.text_pb("config", table)
    if hparams_api is not None:
      summary.value.extend(hparams_api.hparams_pb(flat).value)
    self._events.write(step, summary)
    # At once, a small file per session: the run's configuration is worth
    # seeing from its start.
    self._events.flush()
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
