"""A run directory on TensorFlow's in-memory ram:// file system.

ram:// stands in for remote file systems (gs://, s3://): paths that only
`tf.io.gfile` understands, where a directory cannot be renamed. It lives in
one process, so the tests train, resume, export and read back in this one
(actor processes write their logs through it), from an empty working
directory that must stay empty: a write that bypassed `tf.io.gfile` would
land there, in a folder named "ram:".
"""

import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.programs import cli
from tf_metagrad.serving import export_policy
from tf_metagrad.serving import gif
from tf_metagrad.serving import saved_policy
from tf_metagrad.training import actor_pool
from tf_metagrad.training import loop
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs

TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,)}
FRAMES = 4 * 4  # unroll x batch: env steps per learner step.


def _options(logdir, **kwargs):
  defaults = dict(logdir=logdir, total_env_steps=6 * FRAMES, unroll_length=4,
                  batch_size=4, num_actors=1, envs_per_actor=4,
                  eval_episodes=2, log_every_s=1e9, summary_every_s=0.0,
                  checkpoint_every_s=1e9, data_timeout_s=2.0,
                  max_data_wait_s=120.0)
  defaults.update(kwargs)
  return options_lib.Options(**defaults)


def _ram_dir():
  # One name per test: ram:// is shared by the whole process, and its
  # listings also report siblings whose names extend a directory's.
  return f"ram://{uuid.uuid4().hex}"


def _files(root):
  """Paths of the files under `root`, relative to it (found with glob, as
  the code under test does, not with ram://'s listdir)."""
  found, level = set(), [root]
  while level:
    entries = [p for d in level for p in tf.io.gfile.glob(d + "/*")]
    level = [p for p in entries if tf.io.gfile.isdir(p)]
    found.update(p[len(root) + 1:] for p in entries if p not in level)
  return found


def _metrics(logdir):
  return outputs.read_metrics(logdir)[1]


def _greedy(path):
  loaded = tf.saved_model.load(path)
  observation = np.zeros([1, 10, 5], np.float32)  # Catch's 10 x 5 board.
  observation[0, 0, 2] = observation[0, 9, 2] = 1.0
  action = loaded.greedy_action(tf.constant(observation)).numpy()
  assert action.shape == (1,) and 0 <= action[0] < 3, action
  return {k: v.numpy() for k, v in loaded.get_metadata().items()}


def test_train_resume_export_and_read_back(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  logdir = _ram_dir() + "/run"
  spec = runs.RunSpec(agent="impala", env="catch", config_overrides=TINY,
                      seed=3)
  lines = []
  first = loop.train(spec, _options(logdir), log=lines.append)
  assert first["status"] == "completed", lines
  assert (first["env_steps"], first["learner_steps"]) == (6 * FRAMES, 6)
  assert first["saved_model"] == f"{logdir}/saved_model"
  assert _greedy(first["saved_model"])["env_steps"] == 6 * FRAMES

  lines = []
  second = loop.train(spec, _options(logdir, total_env_steps=12 * FRAMES),
                      log=lines.append)
  assert (f"resumed from {logdir}/checkpoints/ckpt-1: env_steps={6 * FRAMES}"
          f" learner_steps=6") in lines, lines
  assert second["status"] == "completed", lines
  assert (second["env_steps"], second["learner_steps"]) == (12 * FRAMES, 12)
  metadata = _greedy(second["saved_model"])
  assert (metadata["env_steps"], metadata["learner_steps"]) == (
      12 * FRAMES, 12)
  assert metadata["agent"].decode() == "impala"

  rows = _metrics(logdir)
  steps = [int(r["env_steps"]) for r in rows]
  assert steps == sorted(steps) and steps[-1] == 12 * FRAMES, steps
  # A row per learner step of both sessions, then their final evaluations.
  assert {FRAMES * k for k in range(1, 13)} <= set(steps), steps
  evals = [(int(r["env_steps"]), float(r["eval/mean_return"])) for r in rows
           if r.get("eval/mean_return")]
  assert [s for s, _ in evals] == [6 * FRAMES, 12 * FRAMES], evals
  assert evals[-1][1] == pytest.approx(second["final_eval_mean_return"])
  losses = [float(r["policy_loss"]) for r in rows if r.get("policy_loss")]
  assert len(losses) >= 12 and np.all(np.isfinite(losses)), losses

  stored = runs.load_spec(logdir)
  assert (stored.agent, stored.env, stored.seed) == ("impala", "catch", 3)
  assert (stored.unroll_length, stored.batch_size) == (4, 4)
  assert stored.run_options["total_env_steps"] == 12 * FRAMES
  assert tf.train.latest_checkpoint(f"{logdir}/checkpoints").endswith(
      "ckpt-2")
  # The summaries, in events files of their own per flush, hold every row
  # and evaluation of the metrics.
  logged = {}
  for path in tf.io.gfile.glob(f"{logdir}/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        logged.setdefault(value.tag, set()).add(event.step)
  assert logged["env_steps"] == {
      int(r["env_steps"]) for r in rows if not r["eval/mean_return"]}
  assert logged["eval/mean_return"] == {s for s, _ in evals}
  exported = _files(f"{logdir}/saved_model")
  assert {"saved_model.pb", "variables/variables.index"} <= exported
  # Nothing beside the run's own files (no temporaries of the export).
  assert {p.split("/")[0] for p in _files(logdir)} == {
      "checkpoints", "saved_model", "metrics", "run_spec.json"} | {
          os.path.basename(p) for p in
          tf.io.gfile.glob(f"{logdir}/events.out.tfevents.*")}
  # Only whole chunks: no temporary of a chunk's write is left.
  chunks = sorted(p for p in _files(logdir) if p.startswith("metrics/"))
  assert chunks and all(p.endswith(".csv") and "tmp-" not in p
                        for p in chunks), chunks

  # The standalone export replaces the SavedModel (here with an older
  # checkpoint's policy), leaving no file of the one it replaced.
  path = export_policy.export_from_logdir(
      logdir, checkpoint=f"{logdir}/checkpoints/ckpt-1")
  assert path == f"{logdir}/saved_model"
  assert _greedy(path)["env_steps"] == 6 * FRAMES
  assert _files(path) == exported
  assert tf.io.gfile.glob(f"{logdir}/saved_model*") == [path]

  # What an export that died while copying leaves: no saved_model.pb (see
  # export_policy). The finished run, asked again, exports anew.
  tf.io.gfile.remove(f"{path}/saved_model.pb")
  lines = []
  third = loop.train(spec, _options(logdir, total_env_steps=12 * FRAMES),
                     log=lines.append)
  assert third["status"] == "already complete", lines
  assert _greedy(path)["env_steps"] == 12 * FRAMES

  assert os.listdir(tmp_path) == []


def test_export_replacement_where_directories_cannot_be_renamed(
    tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  spec = runs.RunSpec(agent="impala", env="catch", config_overrides=TINY,
                      seed=3)
  learner = runs.build_learner(spec)
  output = _ram_dir() + "/policy"
  export_policy.export(learner, spec, 5, output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 5

  # A failed save leaves the previous export in place.
  def failing_save(module, export_dir, signatures=None):
    del module, signatures
    with tf.io.gfile.GFile(f"{export_dir}/saved_model.pb", "wb") as f:
      f.write(b"partial")
    raise OSError("quota exceeded")

  with monkeypatch.context() as patch:
    patch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="quota exceeded"):
      export_policy.export(learner, spec, 6, output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 5
  assert tf.io.gfile.glob(output + "*") == [output]

  # A copy that fails (or a process that dies while it copies) leaves no
  # saved_model.pb: nothing loads, rather than a mix of two exports.
  real_copy = tf.io.gfile.copy

  def failing_copy(src, dst, overwrite=False):
    if dst.endswith("/saved_model.pb"):
      raise tf.errors.UnavailableError(None, None, "connection reset")
    return real_copy(src, dst, overwrite)

  with monkeypatch.context() as patch:
    patch.setattr(tf.io.gfile, "copy", failing_copy)
    with pytest.raises(tf.errors.UnavailableError):
      export_policy.export(learner, spec, 7, output)
  assert "saved_model.pb" not in _files(output)
  assert "variables/variables.index" in _files(output)
  with pytest.raises(OSError, match="SavedModel file does not exist"):
    tf.saved_model.load(output)
  assert tf.io.gfile.glob(output + "*") == [output]

  export_policy.export(learner, spec, 8, output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 8
  assert os.listdir(tmp_path) == []


def test_actor_process_logs_are_copied_into_the_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  logdir = _ram_dir() + "/run"
  spec = runs.RunSpec(agent="impala", env="catch", config_overrides=TINY)
  lines = []
  summary = loop.train(
      spec, _options(logdir, num_actors=0, num_actor_processes=1,
                     eval_episodes=0, export=False), log=lines.append)
  assert summary["status"] == "completed", lines
  assert summary["env_steps"] == 6 * FRAMES
  with tf.io.gfile.GFile(f"{logdir}/actor_logs/actor_0.log") as f:
    log = f.read()
  # The actor's last line, written as it exits: the copy is complete.
  assert "actor done: unrolls=" in log, log
  assert os.listdir(tmp_path) == []


def test_copy_output_appends_and_survives_an_unwritable_log():
  root = _ram_dir()
  read, write = os.pipe()
  os.write(write, b"first line\nsecond")
  os.close(write)
  path = f"{root}/actor_0.log"
  with tf.io.gfile.GFile(path, "w") as f:
    f.write("earlier session\n")
  lines = []
  actor_pool.copy_output(os.fdopen(read, "rb"), path, log=lines.append)
  with tf.io.gfile.GFile(path) as f:
    assert f.read() == "earlier session\nfirst line\nsecond"
  assert lines == []

  # A directory cannot be opened as the log: one line, and the pipe is
  # still read to its end so that the child never blocks on it.
  tf.io.gfile.makedirs(f"{root}/taken")
  read, write = os.pipe()
  os.write(write, b"lost")
  os.close(write)
  lines = []
  pipe = os.fdopen(read, "rb")
  actor_pool.copy_output(pipe, f"{root}/taken", log=lines.append)
  assert len(lines) == 1 and lines[0].startswith(f"cannot write {root}/taken")
  assert pipe.closed


def test_local_paths_and_urls():
  assert all(map(runs.is_local, ["run", "/tmp/run", "./a:b/run", "C:/run"]))
  assert not any(map(runs.is_local, ["ram://r", "gs://b/run", "file:///r",
                                     "s3://b/r", "hdfs://h:9000/r"]))


def test_urls_pass_the_flag_check_and_videos_go_through_gfile(
    tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  # Checked by the first write through tf.io.gfile instead: the flag check
  # runs before TensorFlow is imported.
  for url in ("ram://bucket/run", "gs://bucket/run", "file:///dev/null/run"):
    cli.writable_dir("logdir", url)
  (tmp_path / "file").write_text("")
  with pytest.raises(cli.FlagError, match="names an existing file"):
    cli.writable_dir("logdir", "file")
  (tmp_path / "file").unlink()

  path = _ram_dir() + "/videos/episode.gif"
  frames = [np.full([4, 6], 10 * i, np.uint8) for i in range(3)]
  gif.write(path, frames)
  with tf.io.gfile.GFile(path, "rb") as f:
    decoded = tf.io.decode_gif(f.read()).numpy()
  np.testing.assert_array_equal(decoded[..., 0], np.stack(frames))
  assert os.listdir(tmp_path) == []
