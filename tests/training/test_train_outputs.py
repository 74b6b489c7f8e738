"""What a training run records: evaluations, configuration, per-quantile
metaparameters, run_spec.json, recent-window rates, and a finished run left
alone when started again."""

import json
import math
import os
import shutil

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tests.training import procs
from tf_metagrad.training import outputs

TOTAL = 160  # Ten learner steps of 4 unrolls of 4 frames.


def _flags(logdir):
  return [f"--logdir={logdir}", "--agent=drmg", "--env=two_colors",
          f"--total_env_steps={TOTAL}", "--eval_every_env_steps=48",
          "--num_actors=1", "--config=num_quantiles=4", "--seed=5",
          *procs.TINY_FLAGS]


def _run(flags):
  lines = []
  proc = procs.start("trainers.train", flags)
  output = procs.finish(proc, lines, timeout=300)
  return proc.returncode, output


def _snapshot(logdir):
  """Every file under the run directory with its bytes."""
  files = {}
  for root, _, names in os.walk(logdir):
    for name in names:
      with open(os.path.join(root, name), "rb") as f:
        files[os.path.relpath(os.path.join(root, name), logdir)] = f.read()
  return files


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """One finished DrMG run, the same command again, and once more after
  its exported policy was deleted."""
  logdir = str(tmp_path_factory.mktemp("outputs") / "run")
  code, output = _run(_flags(logdir))
  assert code == 0, output[-3000:]
  before = _snapshot(logdir)
  again_code, again = _run(_flags(logdir))
  after = _snapshot(logdir)
  shutil.rmtree(os.path.join(logdir, "saved_model"))
  export_code, export = _run(_flags(logdir))
  return {"logdir": logdir, "output": output, "before": before,
          "after": after, "again_code": again_code, "again": again,
          "export_code": export_code, "export": export}


def _events(logdir):
  """tag -> [(step, summary value)] over the run's event files."""
  tags = {}
  for name in sorted(os.listdir(logdir)):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(
          os.path.join(logdir, name)):
        for value in event.summary.value:
          tags.setdefault(value.tag, []).append((event.step, value))
  return tags


def _scalar(value):
  return float(tf.make_ndarray(value.tensor))


def _rows(logdir):
  return outputs.read_metrics(logdir)[1]


def test_rerunning_a_finished_run_writes_nothing(run):
  assert run["again_code"] == 0, run["again"][-3000:]
  done = [l for l in run["again"].splitlines() if "already complete" in l]
  steps = int(run["output"].split("training completed: env_steps=")[1]
              .split()[0])
  assert done == [f"run in {run['logdir']} already complete at {steps} env "
                  f"steps (--total_env_steps={TOTAL})"], run["again"][-2000:]
  assert "training completed" not in run["again"]
  assert run["after"] == run["before"]


def test_rerunning_a_finished_run_exports_a_missing_policy(run):
  assert run["export_code"] == 0, run["export"][-3000:]
  path = os.path.join(run["logdir"], "saved_model")
  assert f"already complete at {TOTAL} env steps (--total_env_steps=" \
      f"{TOTAL}); exported its missing policy to {path}" in run["export"]
  assert os.path.exists(os.path.join(path, "saved_model.pb"))
  loaded = tf.saved_model.load(path)
  assert int(loaded.get_metadata()["env_steps"].numpy()) == TOTAL
  changed = {k for k, v in _snapshot(run["logdir"]).items()
             if run["before"].get(k) != v}
  assert all(k.startswith("saved_model" + os.sep) for k in changed), changed


def test_evaluations_are_in_the_metrics_and_tensorboard(run):
  final = float(run["output"].split("final_eval_mean_return=")[1].split()[0])
  evals = [(int(r["env_steps"]), float(r["eval/mean_return"]))
           for r in _rows(run["logdir"]) if r["eval/mean_return"]]
  # At least the first threshold's (the thread is idle then) and the final.
  assert len(evals) >= 2, evals
  periodic, last = evals[:-1], evals[-1]
  assert all(steps % 16 == 0 and 48 <= steps < TOTAL
             for steps, _ in periodic), evals
  assert last[0] == TOTAL and last[1] == pytest.approx(final, abs=1e-4)
  logged = _events(run["logdir"])["eval/mean_return"]
  assert [s for s, _ in logged] == [s for s, _ in evals]
  assert [_scalar(v) for _, v in logged] == pytest.approx(
      [r for _, r in evals], abs=1e-4)


def test_configuration_and_quantiles_in_tensorboard(run):
  tags = _events(run["logdir"])
  text = tags["config"][0][1].tensor.string_val[0].decode()
  for line in ("| agent | \"drmg\" |", "| num_quantiles | 4 |",
               "| batch_size | 4 |", "| eval_every_env_steps | 48 |",
               "| total_env_steps | 160 |"):
    assert line in text, text
  plugin = tags[hparams_metadata.SESSION_START_INFO_TAG][0][1]
  info = hparams_metadata.parse_session_start_info_plugin_data(
      plugin.metadata.plugin_data.content)
  assert info.hparams["unroll_length"].number_value == 4
  assert info.hparams["agent"].string_value == "drmg"
  vectors = {t.rsplit("/", 1)[0] for t in tags
             if t.startswith("meta/") and t.endswith("/q0")}
  assert vectors, sorted(tags)
  for name in vectors:
    quantiles = [_scalar(tags[f"{name}/q{i}"][-1][1]) for i in range(4)]
    assert f"{name}/q4" not in tags
    assert min(quantiles) == pytest.approx(_scalar(tags[f"{name}/min"][-1][1]))
    assert max(quantiles) == pytest.approx(_scalar(tags[f"{name}/max"][-1][1]))
  # Per-quantile values stay out of the metrics.
  assert not any(k.endswith("/q0") for k in _rows(run["logdir"])[0])


def test_run_spec_records_the_whole_run(run):
  with open(os.path.join(run["logdir"], "run_spec.json")) as f:
    spec = json.load(f)
  assert (spec["unroll_length"], spec["batch_size"]) == (4, 4)
  options = spec["run_options"]
  assert options["total_env_steps"] == TOTAL
  assert options["num_actors"] == 1 and options["envs_per_actor"] == 4
  assert options["preset"] == "auto (toy)"
  assert options["steps_per_call"] == 1
  assert options["strategy"] == "default"
  assert options["package_version"] is None or isinstance(
      options["package_version"], str)
  assert options["git_commit"] is None or len(options["git_commit"]) == 40


def test_bad_eval_flags_are_one_line(tmp_path):
  for flags, expected in [
      (["--eval_every_env_steps=-1"], "error: --eval_every_env_steps=-1: "
       "expected an integer >= 0"),
      (["--eval_every_env_steps=8", "--eval_episodes=0"],
       "error: --eval_every_env_steps=8: expected --eval_episodes >= 1 too"),
  ]:
    code, output = _run([f"--logdir={tmp_path / 'bad'}", *flags])
    assert code == 1 and output.startswith(expected), output
    assert len(output.strip().splitlines()) == 1, output
    assert not os.path.exists(tmp_path / "bad")


def test_recent_rate_forgets_a_slow_start():
  rate = outputs.RecentRate(window_s=30.0)
  assert math.isnan(rate.update(0.0, 0))
  # A slow first minute (tracing), then 100 steps/s.
  assert rate.update(60.0, 600) == pytest.approx(10.0)
  for t in range(61, 121):
    value = rate.update(float(t), 600 + 100 * (t - 60))
  assert value == pytest.approx(100.0)
  # The anchor is the newest sample at least 30 s old, so after a stall
  # the rate drops within the window instead of over the whole run.
  assert rate.update(150.0, 6600) == pytest.approx(0.0)


def test_progress_line_eta_uses_the_recent_rate(tmp_path):
  now = [0.0]
  reporter = outputs.Reporter(str(tmp_path), tf.distribute.get_strategy(),
                              total_env_steps=10_000, start_env_steps=0,
                              clock=lambda: now[0])
  extras = {"episode_return": tf.constant([float("nan")])}
  now[0] = 20.0  # The first call: 20 s of tracing for 100 steps.
  reporter.add({}, extras, 100)
  for t in range(21, 41):
    now[0] = float(t)
    reporter.add({}, extras, 100 + 50 * (t - 20))
    row = reporter.row(100 + 50 * (t - 20), t - 20, 0)
  assert row["fps"] == pytest.approx(50.0)
  # (10000 - 1100) / 50 = 178 s; the average since start-up said 323 s.
  assert reporter.progress_line(row).endswith("eta=0h02m58s")


def test_first_report_of_a_resumed_run_has_no_eta(tmp_path):
  # Resumed at 4000 steps, the first report has seen no new step: no rate,
  # so "?" rather than an ETA from a near-zero rate (it read 544 million
  # hours).
  reporter = outputs.Reporter(str(tmp_path), tf.distribute.get_strategy(),
                              total_env_steps=10_000, start_env_steps=4000,
                              clock=lambda: 5.0)
  row = reporter.row(4000, 100, 0)
  assert row["fps"] == 0.0
  assert reporter.progress_line(row).endswith("eta=?")
