"""The metric rows and TensorBoard events on an object store: what their
writes cost, and that the chunks read back as the single appended
metrics.csv did (resumes, columns that appear later, old run directories)
and the events files as TensorBoard's one file did.

Runs on TensorFlow's in-memory ram:// file system, through meters that
charge each write what an object store does: an object is immutable, so
closing a file written or appended to, or flushing one, uploads the whole
object, and a rename copies it.
"""

import uuid

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from tf_metagrad.training import outputs


def _ram_dir():
  # ram:// is shared by the whole process: one name per use.
  return f"ram://{uuid.uuid4().hex}"


class _Meter:
  """Bytes uploaded per object store write, and every object written."""

  def __init__(self, monkeypatch):
    self.uploads = []  # (path, bytes) per closed write or rename.
    self.modes = []
    self.created = []  # Every object's name, in the order written.
    real_gfile, real_rename = tf.io.gfile.GFile, tf.io.gfile.rename
    meter = self

    class MeteredGFile(real_gfile):

      def __init__(self, name, mode="r"):
        super().__init__(name, mode)
        self._metered = mode != "r" and mode != "rb"
        if self._metered:
          meter.modes.append(mode)
          # Appending does not create an object, it replaces one.
          if "a" not in mode:
            meter.created.append(name)

      def close(self):
        super().close()
        if self._metered:
          self._metered = False
          meter.uploads.append((self.name,
                                tf.io.gfile.stat(self.name).length))

    def metered_rename(src, dst, overwrite=False):
      real_rename(src, dst, overwrite)
      meter.created.append(dst)
      meter.uploads.append((dst, tf.io.gfile.stat(dst).length))

    monkeypatch.setattr(tf.io.gfile, "GFile", MeteredGFile)
    monkeypatch.setattr(tf.io.gfile, "rename", metered_rename)

  @property
  def total(self):
    return sum(n for _, n in self.uploads)


def _row(i, rng):
  """A row like the loop's reports (counters, rates, losses, metas)."""
  return {"env_steps": 320 * (i + 1), "learner_steps": i + 1,
          "wall_time_s": 0.5 * (i + 1), "fps": float(rng.uniform(1e3, 1e4)),
          "episodes": 3 * i, "actor_restarts": 0,
          "episode_return": float(rng.normal()),
          "total_loss": float(rng.normal()),
          "policy_loss": float(rng.normal()),
          "meta/gamma": float(rng.uniform(0.9, 1.0))}


def _log(logdir, rows, rng, checkpoint_every=300, max_rows=128):
  """`rows` reports with the loop's cadence: a flush after every
  checkpoint, at the end, and when `max_rows` rows are held."""
  log = outputs.CsvLog(logdir, max_rows=max_rows)
  for i in range(rows):
    log.write(_row(i, rng))
    if (i + 1) % checkpoint_every == 0:
      log.flush()
  log.flush()


def _appended(logdir, rows, rng):
  """The former way, one append per row: what the meter must catch."""
  path = f"{logdir}/metrics.csv"
  for i in range(rows):
    with tf.io.gfile.GFile(path, "a") as f:
      f.write(",".join(str(v) for v in _row(i, rng).values()) + "\n")


def test_bytes_written_are_linear_in_rows_and_no_object_is_rewritten(
    monkeypatch):
  costs, largest = {}, {}
  for rows in (2000, 4000):
    logdir = _ram_dir()
    with monkeypatch.context() as patch:
      meter = _Meter(patch)
      _log(logdir, rows, np.random.default_rng(rows))
    costs[rows] = meter.total
    largest[rows] = max(n for _, n in meter.uploads)
    assert set(meter.modes) == {"w"}, meter.modes
    assert len(meter.created) == len(set(meter.created)), meter.created
    files = outputs.metric_files(logdir)
    assert all(f in meter.created for f in files)
    # Each byte is written once and copied once by the rename, no more.
    assert meter.total == 2 * sum(tf.io.gfile.stat(f).length for f in files)
    assert len(outputs.read_metrics(logdir)[1]) == rows
  assert costs[4000] / costs[2000] == pytest.approx(2.0, abs=0.1), costs
  # No single write grows with the run.
  assert largest[4000] <= 1.05 * largest[2000], largest

  appended = {}
  for rows in (2000, 4000):
    with monkeypatch.context() as patch:
      meter = _Meter(patch)
      _appended(_ram_dir(), rows, np.random.default_rng(rows))
    appended[rows] = meter.total
  # The meter sees the square growth of appending (about 4x for 2x rows).
  assert appended[4000] / appended[2000] > 3.8, appended
  assert appended[2000] > 100 * costs[2000], (appended, costs)


def _text(row, columns):
  """`row` as the reader returns it: every column, "" where it has none."""
  return {c: "" if row.get(c) is None else str(row[c]) for c in columns}


def test_chunks_read_back_across_a_resume_and_a_new_column():
  logdir = _ram_dir()
  rows = [{"env_steps": 10 * k, "learner_steps": k, "fps": 1.5 * k,
           "total_loss": 0.25 * k} for k in range(1, 13)]
  first = outputs.CsvLog(logdir, max_rows=3)
  for row in rows[:5]:  # 10..30 go out as a full chunk.
    first.write(row)
  first.flush()  # The checkpoint at 50.
  for row in rows[5:]:  # 60..80 and 90..110 flushed, 120 lost (kill -9).
    first.write(row)
  # What a process killed while writing a chunk leaves.
  with tf.io.gfile.GFile(f"{logdir}/metrics/tmp-000009-000000000130.csv",
                         "w") as f:
    f.write("env_steps,learner_steps\n130,1")

  # Resumed from the checkpoint at 50; learner metrics only, and an
  # evaluation, from now on.
  resumed = [{"env_steps": 60, "learner_steps": 6, "fps": 2.0,
              "meta/gamma": 0.9, "total_loss": 0.5},
             {"env_steps": 60, "learner_steps": 6, "eval/mean_return": 0.75},
             {"env_steps": 70, "learner_steps": 7, "fps": 2.5,
              "meta/gamma": 0.8, "total_loss": 0.125}]
  second = outputs.CsvLog(logdir)
  for row in resumed:
    second.write(row)
  second.flush()

  columns, read = outputs.read_metrics(logdir)
  assert columns == ["env_steps", "learner_steps", "fps", "total_loss",
                     "meta/gamma", "eval/mean_return"]
  assert read == [_text(r, columns) for r in rows[:11] + resumed]
  # In the order written, although the resumed session's first env step
  # (60) is below the first of the stopped session's last chunk (90).
  names = [f.rsplit("/", 1)[1] for f in outputs.metric_files(logdir)]
  assert names == ["000000-000000000010.csv", "000001-000000000040.csv",
                   "000002-000000000060.csv", "000003-000000000090.csv",
                   "000010-000000000060.csv"], names
  assert outputs.last_value(logdir, "total_loss") == 0.125
  assert outputs.last_value(logdir, "eval/mean_return") == 0.75
  assert np.isnan(outputs.last_value(logdir, "episode_return"))


def test_a_legacy_metrics_csv_reads_alone_and_before_new_chunks():
  logdir = _ram_dir()
  with tf.io.gfile.GFile(f"{logdir}/metrics.csv", "w") as f:
    f.write("env_steps,learner_steps,fps\n0,0,1.5\n16,1,\n")
  assert outputs.read_metrics(logdir) == (
      ["env_steps", "learner_steps", "fps"],
      [{"env_steps": "0", "learner_steps": "0", "fps": "1.5"},
       {"env_steps": "16", "learner_steps": "1", "fps": ""}])
  assert outputs.last_value(logdir, "fps") == 1.5

  log = outputs.CsvLog(logdir)  # An old run resumed by this version.
  log.write({"env_steps": 32, "learner_steps": 2, "fps": 3.0,
             "total_loss": 0.5})
  log.flush()
  columns, rows = outputs.read_metrics(logdir)
  assert columns == ["env_steps", "learner_steps", "fps", "total_loss"]
  assert [(r["env_steps"], r["fps"], r["total_loss"]) for r in rows] == [
      ("0", "1.5", ""), ("16", "", ""), ("32", "3.0", "0.5")]
  with tf.io.gfile.GFile(f"{logdir}/metrics.csv") as f:
    assert f.read() == "env_steps,learner_steps,fps\n0,0,1.5\n16,1,\n"


def test_reporter_holds_rows_until_a_flush_and_flushes_evaluations():
  logdir = _ram_dir()
  reporter = outputs.Reporter(logdir, tf.distribute.get_strategy(),
                              total_env_steps=100, start_env_steps=0,
                              clock=lambda: 1.0)
  reporter.write_config({"agent": "impala", "batch_size": 4}, 0)
  assert len(_event_files(logdir)) == 1  # The configuration goes at once.
  extras = {"episode_return": tf.constant([float("nan")])}
  for steps in (16, 32):
    reporter.add({"total_loss": tf.constant(0.5)}, extras, steps)
    reporter.write(reporter.row(steps, steps // 16, 0))
  assert outputs.metric_files(logdir) == []
  assert len(_event_files(logdir)) == 1
  reporter.flush()
  assert len(outputs.metric_files(logdir)) == 1
  assert len(_event_files(logdir)) == 2
  reporter.write(reporter.row(48, 3, 0))
  reporter.write_eval(48, 3, 0.25)  # Takes the held row with it.
  # The held row in a training chunk, then the evaluation in its own.
  names = [f.rsplit("/", 1)[1] for f in outputs.metric_files(logdir)]
  assert names == ["000000-000000000016.csv", "000001-000000000048.csv",
                   "eval-000002-000000000048.csv"]
  with tf.io.gfile.GFile(f"{logdir}/metrics/{names[-1]}") as f:
    assert f.read() == ("env_steps,learner_steps,eval/mean_return\r\n"
                        "48,3,0.25\r\n")
  with tf.io.gfile.GFile(f"{logdir}/metrics/{names[1]}") as f:
    assert "eval/mean_return" not in f.read()
  assert len(_event_files(logdir)) == 3
  reporter.flush()  # Nothing held: no empty chunk or events file.
  assert len(outputs.metric_files(logdir)) == 3
  assert len(_event_files(logdir)) == 3
  _, rows = outputs.read_metrics(logdir)
  assert [r["env_steps"] for r in rows] == ["16", "32", "48", "48"]
  assert [r["eval/mean_return"] for r in rows] == ["", "", "", "0.25"]
  assert rows[0]["total_loss"] == "0.5"
  read = _read_scalars(logdir)
  assert read[("eval/mean_return", 48)] == 0.25
  assert [s for t, s in sorted(read) if t == "total_loss"] == [16, 32, 48]
  tensors = _accumulator(logdir).Tensors("config")
  assert "| agent | \"impala\" |" in tensors[0].tensor_proto.string_val[
      0].decode()


def test_evaluation_chunks_keep_the_write_order_across_a_resume():
  logdir = _ram_dir()
  first = outputs.CsvLog(logdir, max_rows=3)
  first.write({"env_steps": 10, "learner_steps": 1, "fps": 1.0})
  first.write({"env_steps": 10, "learner_steps": 1,
               "eval/mean_return": 0.5}, series=outputs.EVAL)
  first.write({"env_steps": 20, "learner_steps": 2, "fps": 2.0})
  # Three rows held over both series: a flush of both. The next is held
  # when the session is killed, and lost.
  first.write({"env_steps": 20, "learner_steps": 2,
               "eval/mean_return": 0.75}, series=outputs.EVAL)
  with tf.io.gfile.GFile(
      f"{logdir}/metrics/tmp-eval-000007-000000000030.csv", "w") as f:
    f.write("env_steps,learner_steps,eval/mean_return\n30,3")  # Killed.
  second = outputs.CsvLog(logdir)  # Resumed after the temporary.
  second.write({"env_steps": 30, "learner_steps": 3,
                "eval/mean_return": 1.0}, series=outputs.EVAL)
  second.flush()
  names = [f.rsplit("/", 1)[1] for f in outputs.metric_files(logdir)]
  assert names == ["000000-000000000010.csv", "eval-000001-000000000010.csv",
                   "eval-000008-000000000030.csv"]
  columns, rows = outputs.read_metrics(logdir)
  assert columns == ["env_steps", "learner_steps", "fps", "eval/mean_return"]
  assert [(r["env_steps"], r["fps"], r["eval/mean_return"])
          for r in rows] == [("10", "1.0", ""), ("20", "2.0", ""),
                             ("10", "", "0.5"), ("30", "", "1.0")]
  assert outputs.last_value(logdir, "eval/mean_return") == 1.0
  with pytest.raises(ValueError, match="series must be one of"):
    second.write({"env_steps": 1}, series="test")


def test_tensorboard_shows_the_scalars_as_scalars():
  """docs/TRAINING.md's word on reading the summaries: TensorBoard's server (its
  data provider) lists them as scalars, Python's EventAccumulator as
  tensors."""
  from tensorboard import context  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import data_provider  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import plugin_event_multiplexer  # pylint: disable=g-import-not-at-top
  logdir = _ram_dir()
  reporter = outputs.Reporter(logdir, tf.distribute.get_strategy(),
                              total_env_steps=100, start_env_steps=0,
                              clock=lambda: 1.0)
  reporter.write({"env_steps": 16, "learner_steps": 1, "fps": 2.0})
  reporter.write_eval(16, 1, 0.5)
  accumulator = _accumulator(logdir)
  assert accumulator.Tags()["scalars"] == []
  assert [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in
          accumulator.Tensors("eval/mean_return")] == [(16, 0.5)]
  multiplexer = plugin_event_multiplexer.EventMultiplexer({"run": logdir})
  multiplexer.Reload()
  provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
  listed = provider.list_scalars(context.RequestContext(), experiment_id="",
                                 plugin_name="scalars")
  assert set(listed["run"]) == {"env_steps", "learner_steps", "fps",
                                "eval/mean_return"}


def test_no_metrics_and_foreign_files():
  logdir = _ram_dir()
  assert outputs.read_metrics(logdir) == ([], [])
  assert np.isnan(outputs.last_value(logdir, "episode_return"))
  with tf.io.gfile.GFile(f"{logdir}/metrics.csv", "w") as f:
    f.write("step,loss\n1,2\n")
  with pytest.raises(ValueError, match=(
      f"^{logdir}/metrics.csv has no env_steps column \\(header: step,loss"
      f"\\); expected metrics written by trainers.train$")):
    outputs.read_metrics(logdir)


def _event_files(logdir):
  return tf.io.gfile.glob(f"{logdir}/events.out.tfevents.*")


class _EventsMeter:
  """Uploads of a directory's events files, as an object store charges them.

  Polled after every report: a file whose size changed was flushed or
  closed, which on gs:// uploads it whole. tf.summary's C++ writer queues
  events in memory and hands them to the file only when it flushes, so on
  ram:// a size change is a flush; several between two polls count as one,
  so the meter can undercount, never overcount.
  """

  def __init__(self, logdir):
    self._logdir = logdir
    self._sizes = {}
    self.uploads = []  # (path, bytes) per upload.

  def poll(self):
    for path in _event_files(self._logdir):
      size = tf.io.gfile.stat(path).length
      if size != self._sizes.get(path):
        self._sizes[path] = size
        self.uploads.append((path, size))

  @property
  def total(self):
    return sum(n for _, n in self.uploads)


def _meta(rng):
  """Metaparameter values as `Learner.meta_values()` gives them: vector
  ones go to TensorBoard element by element, scalar ones are in the row."""
  return {"gamma": rng.uniform(0.9, 1.0, size=4), "lambda_": 0.95}


def _expected(reported):
  """(tag, step) -> value of every scalar the reports should leave, as the
  float32 that a summary stores."""
  expected = {}
  for row, meta in reported:
    values = dict(row)
    values.update((f"meta/gamma/q{i}", x) for i, x in enumerate(meta["gamma"]))
    expected.update(((tag, row["env_steps"]), float(np.float32(value)))
                    for tag, value in values.items())
  return expected


def _report(logdir, rows, rng, write, flush, checkpoint_every=300):
  """`rows` reports with the loop's cadence (a flush after every
  checkpoint and at the end), the events files polled after each."""
  meter = _EventsMeter(logdir)
  reported = []
  for i in range(rows):
    reported.append((_row(i, rng), _meta(rng)))
    write(*reported[-1])
    meter.poll()
    if (i + 1) % checkpoint_every == 0:
      flush()
      meter.poll()
  flush()
  meter.poll()
  return meter, reported


def _accumulator(logdir):
  # TensorBoard's own reader of a run directory, keeping every value.
  accumulator = event_accumulator.EventAccumulator(
      logdir, size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  return accumulator


def _read_scalars(logdir):
  """(tag, step) -> value over every events file of `logdir`."""
  accumulator = _accumulator(logdir)
  return {(tag, event.step): float(tf.make_ndarray(event.tensor_proto))
          for tag in accumulator.Tags()["tensors"]
          if accumulator.SummaryMetadata(tag).plugin_data.plugin_name ==
          "scalars" for event in accumulator.Tensors(tag)}


def test_events_bytes_are_linear_in_rows_and_each_file_is_written_once():
  costs, largest = {}, {}
  for rows in (2000, 4000):
    logdir = _ram_dir()
    reporter = outputs.Reporter(logdir, tf.distribute.get_strategy(),
                                total_env_steps=10**9, start_env_steps=0,
                                clock=lambda: 1.0)
    meter, reported = _report(logdir, rows, np.random.default_rng(rows),
                              reporter.write, reporter.flush)
    costs[rows] = meter.total
    largest[rows] = max(n for _, n in meter.uploads)
    files = _event_files(logdir)
    # One file per checkpoint interval, each uploaded once and whole.
    assert len(files) == -(-rows // 300), files
    assert sorted(p for p, _ in meter.uploads) == sorted(files)
    assert meter.total == sum(tf.io.gfile.stat(f).length for f in files)
    assert _read_scalars(logdir) == _expected(reported)
  assert costs[4000] / costs[2000] == pytest.approx(2.0, abs=0.1), costs
  # No single write grows with the run.
  assert largest[4000] <= 1.05 * largest[2000], largest

  # tf.summary's writer, kept for the session as before: the meter sees the
  # square growth of its flushes (about 4x for 2x rows), whether the
  # reporter flushes it after each row or leaves that to `as_default`,
  # which flushes on exit.
  for flush_each_row in (True, False):
    before = {}
    for rows in (500, 1000):
      logdir = _ram_dir()
      writer = tf.summary.create_file_writer(logdir)

      def write(row, meta, writer=writer):
        with writer.as_default(step=row["env_steps"]):
          for tag, value in row.items():
            tf.summary.scalar(tag, value)
          for i, x in enumerate(meta["gamma"]):
            tf.summary.scalar(f"meta/gamma/q{i}", x)
        if flush_each_row:
          writer.flush()

      meter, reported = _report(logdir, rows, np.random.default_rng(rows),
                                write, lambda: None)
      writer.close()
      before[rows] = meter.total
      assert _read_scalars(logdir) == _expected(reported)
    assert before[1000] / before[500] > 3.8, (flush_each_row, before)
    assert before[1000] > 100 * costs[2000] / 2, (before, costs)


def test_event_log_writes_a_file_when_it_holds_max_values():
  logdir = _ram_dir()
  log = outputs.EventLog(logdir, max_values=25)
  for step in range(1, 8):
    log.write(step, outputs._scalars(  # pylint: disable=protected-access
        {f"tag{i}": step + i / 10 for i in range(10)}))
    # The third summary brings 30 values: written as one file.
    assert len(_event_files(logdir)) == step // 3
  log.flush()
  files = _event_files(logdir)
  assert len(files) == 3
  log.flush()
  assert _event_files(logdir) == files
  # Every name sorts in the order written, as TensorBoard reads them.
  steps = [[e.step for e in tf.compat.v1.train.summary_iterator(f)
            if e.HasField("summary")] for f in sorted(files)]
  assert steps == [[1, 2, 3], [4, 5, 6], [7]], steps
  assert _read_scalars(logdir) == {
      (f"tag{i}", step): float(np.float32(step + i / 10))
      for i in range(10) for step in range(1, 8)}
