"""Which key the two-colors agents take, and their recovery after a toggle.

Instrumentation and analysis for `benchmarks.reproduce --experiment=
two_colors` (the experiment of Yin, Yan & Xu 2023, "Distributional
Meta-Gradient Reinforcement Learning", section 5.1).

The hidden toggle swaps the two keys' values, so the better key is always
the one worth `max(key_rewards)` at the moment it is taken. `KeyTally`
counts, while a run trains in this process, every key taken by an actor's
environment copies as "better" or "worse" at the env step it happens (the
steps of all copies in the process, i.e. the actors' clock, which runs
ahead of the learner's consumed-frame count by the queue's few items). It
wraps `TwoColorsCore._step` for the duration of the run: measurement only,
the environment's behaviour is unchanged. Each run directory then holds
`key_choices.csv` (env_steps, better, worse).

The better-key fraction of a grid bin is better / (better + worse) over the
keys taken in it: the fraction of key-collecting episodes that chose the
currently better key (an episode takes at most one key).
"""

import contextlib
import csv
import io
import os
import threading
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

from tf_metagrad.analysis import curves
from tf_metagrad.envs import two_colors

CHOICES_FILE = "key_choices.csv"


class KeyTally:
  """Counts the keys taken by every two-colors copy of this process."""

  def __init__(self) -> None:
    self._lock = threading.Lock()
    self._steps = 0
    self.rows: List[Tuple[int, int, int]] = []

  def record(self, core: two_colors.TwoColorsCore, on_key: np.ndarray,
             values: np.ndarray) -> None:
    """One `_step` of `core`: `on_key` bool [K, 2] keys taken on it,
    `values` [K, 2] their values on that step."""
    taken = on_key.any(axis=1)
    better_value = values.max(axis=1)
    value = np.sum(np.where(on_key, values, 0.0), axis=1)
    better = int(np.sum(taken & (value == better_value)))
    worse = int(np.sum(taken)) - better
    with self._lock:
      self._steps += core.num_envs
      if better or worse:
        self.rows.append((self._steps, better, worse))

  @contextlib.contextmanager
  def installed(self) -> Iterator["KeyTally"]:
    """Wraps `TwoColorsCore._step` while the block runs."""
    original = two_colors.TwoColorsCore._step  # pylint: disable=protected-access
    tally = self

    def step(core, actions):
      values = core.current_key_rewards()
      present = core.keys_present.copy()
      keys = core.keys.copy()
      result = original(core, actions)
      on_key = present[:, None] & np.all(
          core.agent[:, None, :] == keys, axis=-1)
      tally.record(core, on_key, values)
      return result

    two_colors.TwoColorsCore._step = step  # pylint: disable=protected-access
    try:
      yield self
    finally:
      two_colors.TwoColorsCore._step = original  # pylint: disable=protected-access

  def write(self, logdir: str) -> None:
    """Writes `key_choices.csv` to `logdir`, unless this tally saw no key
    and the file is there (a finished run asked to train again)."""
    path = os.path.join(logdir, CHOICES_FILE)
    if not self.rows and tf.io.gfile.exists(path):
      return
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["env_steps", "better", "worse"])
    writer.writerows(self.rows)
    _write(path, text.getvalue())


def read_choices(logdir: str) -> np.ndarray:
  """int64 [N, 3] rows (env_steps, better, worse) of a run."""
  with tf.io.gfile.GFile(os.path.join(logdir, CHOICES_FILE)) as f:
    rows = list(csv.reader(f))[1:]
  return np.asarray(rows, np.int64).reshape(-1, 3)


def better_fraction(choices: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """The better-key fraction of the keys taken in each bin [edges[i],
  edges[i+1]); NaN for a bin without keys."""
  index = np.searchsorted(edges, choices[:, 0], side="right") - 1
  out = np.full(len(edges) - 1, np.nan)
  for i in range(len(edges) - 1):
    rows = choices[index == i]
    taken = rows[:, 1].sum() + rows[:, 2].sum()
    if taken:
      out[i] = rows[:, 1].sum() / taken
  return out


def aligned(curve: np.ndarray, centers: np.ndarray, toggles: Sequence[int],
            offsets: np.ndarray) -> np.ndarray:
  """One seed's `curve` (at bin `centers`) read at `toggle + offsets` for
  each toggle and averaged over the toggles: the curve against steps since
  a toggle."""
  reads = [np.interp(t + offsets, centers, curve, left=np.nan,
                     right=np.nan) for t in toggles]
  return np.nanmean(np.stack(reads), axis=0)


def recovery_steps(curve: np.ndarray, offsets: np.ndarray,
                   level: float) -> float:
  """Steps after the toggle until an aligned curve is back at `level`
  (the first offset > 0 where it is; NaN if never)."""
  after = np.flatnonzero((offsets > 0) & (curve >= level))
  return float(offsets[after[0]]) if after.size else float("nan")


def window_mean(curve: np.ndarray, centers: np.ndarray, start: float,
                stop: float) -> float:
  """Mean of `curve` over the bins centred in [start, stop)."""
  inside = (centers >= start) & (centers < stop)
  return float(np.nanmean(curve[inside]))


def toggle_steps(steps: int, every: int) -> List[int]:
  """The env steps of the whole run at which the key values swap."""
  return list(range(every, steps, every))


def arm_summary(fractions: List[np.ndarray], returns: List[np.ndarray],
                centers: np.ndarray, toggles: Sequence[int], every: int,
                offsets: np.ndarray, level: float) -> Dict[str, List[float]]:
  """Per seed: the numbers of the results table (see `benchmarks.reproduce`
  `_write_two_colors`)."""
  first = toggles[0]
  out: Dict[str, List[float]] = {k: [] for k in (
      "before", "lowest", "recovery", "fraction_after", "return_after",
      "peak_return_after")}
  for fraction, ret in zip(fractions, returns):
    out["before"].append(window_mean(fraction, centers, first - every // 8,
                                     first))
    aligned_fraction = aligned(fraction, centers, toggles, offsets)
    aligned_return = aligned(ret, centers, toggles, offsets)
    after = offsets > 0
    out["lowest"].append(float(np.nanmin(aligned_fraction[after])))
    out["recovery"].append(recovery_steps(aligned_fraction, offsets, level))
    half = (offsets > 0) & (offsets <= every // 2)
    out["fraction_after"].append(float(np.nanmean(aligned_fraction[half])))
    out["return_after"].append(float(np.nanmean(aligned_return[half])))
    out["peak_return_after"].append(float(np.nanmax(aligned_return[after])))
  return out


def mean_band(values: Sequence[float]) -> Tuple[float, float, float,
                                                  Optional[int]]:
  """Mean and 95% normal band over seeds, and how many seeds had a value."""
  v = np.asarray(values, float)
  ok = v[~np.isnan(v)]
  if not ok.size:
    return float("nan"), float("nan"), float("nan"), 0
  half = 1.96 * ok.std(ddof=1) / np.sqrt(ok.size) if ok.size > 1 else 0.0
  return float(ok.mean()), float(ok.mean() - half), float(
      ok.mean() + half), int(ok.size)


def _fmt(values: Sequence[float], digits: int = 3) -> str:
  mean, lo, hi, n = mean_band(values)
  if not n:
    return "never"
  text = f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"
  return text if n == len(values) else f"{text} ({n} of {len(values)} seeds)"


def write_results(outdir: str, runs: Dict[str, List[str]], steps: int,
                  every: int, bin_steps: int, level: float,
                  notes: str, reading: str = "") -> str:
  """curves.csv, phase.csv, curves.png and results.md of the experiment in
  `outdir`; returns the results table.

  Args:
    outdir: the experiment's results folder.
    runs: arm -> run directories (one per seed).
    steps: env steps per run.
    every: env steps of the whole run between toggles.
    bin_steps: width of a fraction bin; returns are read at bin centres.
    level: the better-key fraction a recovery must reach again.
    notes: the text under the title (settings, what the columns mean).
    reading: text appended after the table (the hand-written reading).
  """
  edges = np.arange(0, steps + 1, bin_steps)
  centers = (edges[:-1] + edges[1:]) / 2
  toggles = toggle_steps(steps, every)
  offsets = np.arange(-every // 8, every, bin_steps) + bin_steps / 2
  fractions = {arm: [better_fraction(read_choices(d), edges) for d in dirs]
               for arm, dirs in runs.items()}
  returns = {arm: [curves.on_grid(curves.read_metrics(d), "episode_return",
                                  centers) for d in dirs]
             for arm, dirs in runs.items()}
  tf.io.gfile.makedirs(outdir)
  _write(os.path.join(outdir, "curves.csv"), curves.bands_csv(
      "env_steps", centers,
      {f"{arm} {name}": curves.band(series[arm])
       for arm in runs for name, series in (
           ("better_key_fraction", fractions),
           ("episode_return", returns))}))
  phase = {}
  for arm in runs:
    phase[f"{arm} better_key_fraction"] = curves.band(
        [aligned(f, centers, toggles, offsets) for f in fractions[arm]])
    phase[f"{arm} episode_return"] = curves.band(
        [aligned(r, centers, toggles, offsets) for r in returns[arm]])
  _write(os.path.join(outdir, "phase.csv"),
         curves.bands_csv("steps_since_toggle", offsets, phase))
  _plot(os.path.join(outdir, "curves.png"), runs, centers, fractions,
        returns, toggles, offsets, phase, level)
  lines = ["| arm | seeds | better-key fraction, last 1/8 period before "
           "the first toggle | lowest after a toggle | steps after a toggle "
           f"until back at {level} | better-key fraction, first half "
           "period after | return, first half period after | peak return "
           "after a toggle |", "|---|---|---|---|---|---|---|---|"]
  for arm in runs:
    s = arm_summary(fractions[arm], returns[arm], centers, toggles, every,
                    offsets, level)
    lines.append(
        f"| {arm} | {len(runs[arm])} | {_fmt(s['before'])} | "
        f"{_fmt(s['lowest'])} | {_fmt(s['recovery'])} | "
        f"{_fmt(s['fraction_after'])} | {_fmt(s['return_after'])} | "
        f"{_fmt(s['peak_return_after'])} |")
  table = "\n".join(lines)
  path = os.path.join(outdir, "results.md")
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(f"# two_colors: key choice and recovery after a toggle\n\n"
            f"{notes}\n\n{table}\n{reading}")
  return table



def _write(path: str, text: str) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)


def _plot(path: str, runs: Dict[str, List[str]], centers: np.ndarray,
          fractions, returns, toggles: Sequence[int], offsets: np.ndarray,
          phase: Dict[str, curves.Band], level: float) -> None:
  fig, axes = plt.subplots(2, 2, figsize=(12, 7))
  for arm in runs:
    curves.plot_band(axes[0, 0], centers, curves.band(fractions[arm]), arm)
    curves.plot_band(axes[1, 0], centers, curves.band(returns[arm]), arm)
    curves.plot_band(axes[0, 1], offsets,
                     phase[f"{arm} better_key_fraction"], arm)
    curves.plot_band(axes[1, 1], offsets, phase[f"{arm} episode_return"],
                     arm)
  for ax in axes[:, 0]:
    for t in toggles:
      ax.axvline(t, color="gray", lw=0.6, ls=":")
    ax.set_xlabel("env steps")
  for ax in axes[:, 1]:
    ax.axvline(0, color="gray", lw=0.6, ls=":")
    ax.set_xlabel("env steps since a toggle (mean over toggles)")
  axes[0, 1].axhline(level, color="gray", lw=0.6, ls="--")
  for ax in axes[0]:
    ax.set_ylabel("better-key fraction")
    ax.set_ylim(0, 1)
  for ax in axes[1]:
    ax.set_ylabel("episode return")
  axes[0, 0].legend()
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
