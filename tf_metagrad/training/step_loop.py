"""The learner's steps of a session, from the first call to the final
checkpoint: the workers' votes before each call, what happens when no data
comes, the counting, and the reports.

The learner counts environment steps as the frames it consumed (every item
in the queue is consumed exactly once), which makes the counter exact and
resumable. With overlapping items (`Options.unroll_stride` S < T, STAC's
control setup) an item brings S new frames per copy, so a learner step
counts S x batch environment steps, not the T x batch frames it trains on;
only each actor's first item, which holds T new frames, is counted short
(by T - S per copy, once per actor start).

Each learner call runs `steps_per_call` steps in one `tf.function` (the TPU
training-loop pattern, see `Learner.steps_from_iterator`); both counters
advance in that graph, and the host keeps its own copy of them
(`session.Counts`), so between calls it reads nothing back unless it logs,
writes summaries, checkpoints or publishes weights.

No data: a call that finds no batch within `Options.data_timeout_s` is
retried with a new iterator; once none came for `max_data_wait_s` the
session fails, after the next vote so that every worker stops alike (see
`distribute.cluster`).
"""

import gc
import time
from typing import Any, Dict, Optional

import tensorflow as tf

from tf_metagrad.training import data_plane as data_plane_lib
from tf_metagrad.training import opening
from tf_metagrad.training import session as session_lib

# `StepLoop._decide`'s verdict that some worker lacks this call's batches.
_WAIT = "wait"
_NO_BATCH = (StopIteration, tf.errors.OutOfRangeError,
             tf.errors.DeadlineExceededError)


class StepLoop:
  """Runs a session's learner calls (see the module docstring).

  Args:
    session: the running session; its `counts` are kept up to date (also
      when a call fails).
    trainee: the learner, its counter and checkpoints.
    plane: the session's running data plane.
    stride: steps between an actor's items: new frames per item and copy.
  """

  def __init__(self, session: session_lib.Session, trainee: opening.Trainee,
               plane: data_plane_lib.DataPlane, stride: int) -> None:
    self._trainee = trainee
    self._plane = plane
    self._options = session.options
    self._cluster = session.cluster
    self._counts = session.counts
    self._reporter = session.reporter
    self._stop = session.stop
    self._log = session.log
    # New environment frames per learner step (see the module docstring).
    self._frames_per_step = stride * session.options.batch_size
    self._batches = plane.batches()
    self._last_data = time.monotonic()
    self._no_data: Optional[RuntimeError] = None
    self.final_row: Dict[str, float] = {}

  def run(self) -> str:
    """Trains to the budget or a stop; returns the status ("completed",
    "stopped by ..."). Ends with a checkpoint (if the session made a
    learner step and no worker was lost) and a last report row
    (`final_row`), also when it raises.

    Raises:
      RuntimeError: actors that keep failing, no data, another worker's
        failure or loss.
    """
    lost = None
    # Everything built so far lives as long as the run; moving it out of
    # the collector's generations keeps full collections (up to 0.18 s
    # each on Catch, stalling every thread) short.
    gc.collect()
    gc.freeze()
    try:
      return self._calls()
    except tf.errors.OpError as e:
      lost = self._cluster.lost_worker(e)
      if lost is None:
        raise
      raise RuntimeError(lost) from None
    finally:
      gc.unfreeze()
      # After a lost worker no collective can complete, and the chief's
      # last checkpoint is what a restart resumes from. Without a learner
      # step there is nothing new to save (every worker's count is the
      # same).
      if lost is None and self._counts.new_learner_steps:
        self._save()
      self.final_row = self._row()
      self._reporter.write(self.final_row,
                           self._trainee.learner.meta_values())
      self._reporter.flush()

  def _calls(self) -> str:
    options, counts = self._options, self._counts
    while counts.env < options.total_env_steps:
      # The last call stops at the run's length, as single steps would.
      num_steps = min(options.steps_per_call, -(
          -(options.total_env_steps - counts.env) // self._frames_per_step))
      decision = self._decide(num_steps)
      if decision == _WAIT:
        continue
      if decision is not None:
        return decision
      self._call(num_steps)
    return "completed"

  def _decide(self, num_steps: int) -> Optional[str]:
    """Every worker's verdict on the next call, from the same votes (see
    `distribute.cluster`): None to make it, `_WAIT` to vote again, or the
    status of a stop; raises for a failure."""
    failure = None
    arrived = None
    try:
      self._plane.supervise()
      arrived = self._plane.wait_for_batches(num_steps)
    except RuntimeError as e:
      failure = e
    if arrived:
      self._last_data = time.monotonic()
    ready = arrived is not False
    starved = (not ready and time.monotonic() - self._last_data
               > self._options.max_data_wait_s)
    votes = self._cluster.vote({
        "signal": self._stop.is_set(),
        "no_data": self._no_data is not None or starved,
        "error": failure is not None, "waiting": not ready})
    if failure is not None:
      raise failure
    if votes["error"]:
      raise RuntimeError(f"{', '.join(votes['error'])} failed (see its "
                         f"output); every worker stops")
    if self._no_data is not None:
      raise self._no_data
    if votes["no_data"]:
      raise RuntimeError(f"no trajectories on {', '.join(votes['no_data'])}"
                         f" for longer than max_data_wait_s="
                         f"{self._options.max_data_wait_s}; every worker "
                         f"stops")
    if votes["signal"]:
      by = ((self._stop.signal_name or "request") if self._stop.is_set()
            else "a signal")
      return f"stopped by {by}{self._cluster.where(votes['signal'])}"
    if votes["waiting"]:
      # Some worker lacks this call's batches: nobody enters the step.
      self._log(f"waiting for trajectories on {', '.join(votes['waiting'])}")
      return _WAIT
    return None

  def _call(self, num_steps: int) -> None:
    """One learner call of `num_steps` steps, counted and reported."""
    trainee, counts, options = self._trainee, self._counts, self._options
    try:
      metrics, extras = trainee.learner.steps_from_iterator(
          self._batches, num_steps, env_steps=trainee.env_steps,
          frames_per_step=self._frames_per_step,
          max_steps=options.steps_per_call)
    except _NO_BATCH:
      counts.read(trainee)
      self._waited_for_data()
      return
    self._last_data = time.monotonic()
    previous = counts.learner
    counts.env += num_steps * self._frames_per_step
    counts.learner += num_steps * trainee.learner.updates_per_batch
    # Publish when the call crossed a multiple of weights_every.
    if counts.learner // options.weights_every > (
        previous // options.weights_every):
      self._plane.offer_weights(counts.learner)
    self._reporter.add(metrics, extras, counts.env, num_rows=num_steps)
    self._plane.evaluate(counts.env, counts.learner)
    self._report()

  def _waited_for_data(self) -> None:
    """After a call that found no batch in time: says so, and past
    `max_data_wait_s` keeps the error to raise after the next vote (so that
    the other workers stop too)."""
    options = self._options
    waited = time.monotonic() - self._last_data
    if waited > options.max_data_wait_s:
      self._no_data = RuntimeError(
          f"No trajectories for {waited:.0f}s (max_data_wait_s="
          f"{options.max_data_wait_s}); are any actors running? "
          f"(num_actors={options.num_actors}, num_actor_processes="
          f"{options.num_actor_processes}; external actors connect "
          f"with --reverb_address=HOST:{self._plane.server.port})")
    self._log(f"waiting for trajectories ({waited:.0f}s)")
    self._batches = self._plane.batches()

  def _report(self) -> None:
    options, reporter = self._options, self._reporter
    if reporter.due("summary", options.summary_every_s):
      reporter.write(self._row(), self._trainee.learner.meta_values())
    if reporter.due("log", options.log_every_s):
      self._log(reporter.progress_line(self._row()))
    # Every worker must save at the same call (a save exchanges
    # fingerprints), so the chief's clock decides for all.
    if self._cluster.chief_decides(
        reporter.due("checkpoint", options.checkpoint_every_s)):
      self._save()

  def _row(self) -> Dict[str, Any]:
    return self._reporter.row(self._counts.env, self._counts.learner,
                              self._plane.actor_restarts)

  def _save(self) -> None:
    path = self._trainee.save()
    self._reporter.flush()
    if self._cluster.writes_run_dir:
      self._log(f"saved checkpoint {path} env_steps={self._counts.env} "
                f"learner_steps={self._counts.learner}")
