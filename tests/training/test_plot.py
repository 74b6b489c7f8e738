"""trainers.plot on hand-written run directories (no training): the table's
numbers against means and bands worked out from the fake data, grouping,
the figure's panels (one per metaparameter group, a row per agent, no
empty panel, evaluations as their own series, --metrics names and
patterns), PNG output, one-line errors, a ram:// (in-memory, remote-like)
file system and the command line."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.programs import cli
from tf_metagrad import runs
from tf_metagrad.training import outputs
from tf_metagrad.programs import plot
from tf_metagrad.analysis import curves

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PNG = b"\x89PNG\r\n\x1a\n"

# STAC seed 0 runs to 400 env steps, seed 1 only to 300: the table compares
# them at 300. The last row of each is an evaluation (other columns empty),
# as training.outputs writes it. Seed 0 is written as training.outputs does
# now, chunks under metrics/ (the evaluation's column only in the chunk that
# has one); seed 1 and impala as a legacy single metrics.csv.
STAC_METRICS = {
    0: {"000000-000000000100.csv": (
            "env_steps,learner_steps,episode_return,meta/gamma,"
            "meta/lambda_/max,meta/lambda_/mean,meta/lambda_/min\n"
            "100,1,,0.99,0.92,0.9,0.88\n"
            "200,2,0.0,0.98,0.91,0.89,0.87\n"),
        "000001-000000000300.csv": (
            "env_steps,learner_steps,episode_return,meta/gamma,"
            "meta/lambda_/max,meta/lambda_/mean,meta/lambda_/min,"
            "eval/mean_return\n"
            "300,3,0.5,0.97,0.9,0.88,0.86,\n"
            "400,4,1.0,0.96,0.89,0.87,0.85,\n"
            "400,4,,,,,,0.8\n")},
    1: ("env_steps,learner_steps,episode_return,meta/gamma,meta/lambda_/max,"
        "meta/lambda_/mean,meta/lambda_/min,eval/mean_return\n"
        "100,1,,0.99,0.92,0.9,0.88,\n"
        "200,2,0.2,0.97,0.91,0.89,0.87,\n"
        "300,3,0.3,0.95,0.9,0.86,0.86,\n"
        "300,3,,,,,,0.6\n"),
}
IMPALA_CSV = ("env_steps,learner_steps,episode_return\n"
              "100,1,0.1\n200,2,0.2\n300,3,0.3\n400,4,0.4\n500,5,0.5\n")


def _write_run(directory, metrics, agent, seed, config=None):
  """`metrics`: a legacy metrics.csv's text, or chunks by name."""
  files = ({"metrics.csv": metrics} if isinstance(metrics, str) else
           {f"metrics/{k}": v for k, v in metrics.items()})
  for name, text in files.items():
    path = os.path.join(directory, name)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(text)
  runs.save_spec(directory, runs.RunSpec(
      agent=agent, env="catch", config_overrides=dict(config or {}),
      seed=seed, unroll_length=20, batch_size=32))


def _make_runs(root):
  """Three run directories under `root` (a local path or a ram:// URL)."""
  dirs = []
  for seed in (0, 1):
    dirs.append(os.path.join(root, f"stac-seed{seed}"))
    _write_run(dirs[-1], STAC_METRICS[seed], "stac", seed,
               {"meta_learned": ("gamma", "lambda_")})
  dirs.append(os.path.join(root, "impala-seed0"))
  _write_run(dirs[-1], IMPALA_CSV, "impala", 0)
  return dirs


def _rows(table):
  """The markdown table as {group: {column: cell}}."""
  lines = [l for l in table.splitlines() if l.startswith("| ")]
  header = [c.strip() for c in lines[0].strip("|").split("|")]
  return {cells[0]: dict(zip(header, cells)) for cells in (
      [c.strip() for c in line.strip("|").split("|")] for line in lines[1:])}


def _cell(values):
  """Mean [95% band] of `values`, computed here from their definition."""
  values = np.asarray(values, dtype=float)
  mean = values.mean()
  half = 1.96 * values.std(ddof=1) / np.sqrt(values.size) if (
      values.size > 1) else 0.0
  return f"{mean:.4g} [{mean - half:.4g}, {mean + half:.4g}]"


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
  return _make_runs(str(tmp_path_factory.mktemp("runs")))


# STACX seed s: per-head metaparameters (a column per head), an empty
# meta/g_v column (NaN in every row), returns s/10 + k/10 at 100 k env
# steps, and evaluations at 200 and 400 in chunks of their own.
def _stacx_row(k, seed):
  return {"env_steps": 100 * k, "learner_steps": k,
          "episode_return": seed / 10 + k / 10,
          "meta/gamma/head0": 0.99 + 1e-5 * k, "meta/gamma/head1": 0.99,
          "meta/lambda_/head0": 0.9 + 0.01 * seed,
          "meta/lambda_/head1": 0.8, "meta/g_v/head0": float("nan")}


def _make_stacx_runs(root):
  dirs = []
  for seed in (0, 1):
    dirs.append(os.path.join(root, f"stacx-seed{seed}"))
    log = outputs.CsvLog(dirs[-1])
    for k in (1, 2, 3, 4):
      log.write(_stacx_row(k, seed))
      if k % 2 == 0:
        log.write({"env_steps": 100 * k, "learner_steps": k,
                   "eval/mean_return": seed + k}, series=outputs.EVAL)
        log.flush()
    runs.save_spec(dirs[-1], runs.RunSpec(
        agent="stacx", env="catch", seed=seed, unroll_length=20,
        batch_size=32))
  return dirs


@pytest.fixture(scope="module")
def mixed_dirs(tmp_path_factory, run_dirs):
  """STAC (2 seeds), IMPALA (1) and STACX (2 seeds, evaluation chunks)."""
  return run_dirs + _make_stacx_runs(str(tmp_path_factory.mktemp("stacx")))


def _axes(fig):
  """title -> {"curves": legend labels (or None), "bands": band count,
  "lines": the Line2D objects}."""
  out = {}
  for ax in fig.axes:
    legend = ax.get_legend()
    out[ax.get_title()] = {
        "curves": legend and [t.get_text() for t in legend.get_texts()],
        "bands": len(ax.collections), "lines": ax.get_lines()}
  return out


def _draw(dirs, metrics=(), group_by="setting"):
  summaries, columns = plot.load(dirs, group_by, metrics)
  return curves.draw(summaries, columns), summaries, columns


STAC = "stac catch meta_learned=gamma,lambda_"
RETURN_TITLE = "episode_return (training, last 100 episodes)"
EVAL_TITLE = "eval/mean_return (greedy evaluations)"


def test_figure_has_a_panel_per_metaparameter_group_and_agent(mixed_dirs):
  fig, _, columns = _draw(mixed_dirs)
  assert columns == [
      "episode_return", "eval/mean_return", "meta/g_v/head0", "meta/gamma",
      "meta/gamma/head0", "meta/gamma/head1", "meta/lambda_/head0",
      "meta/lambda_/head1", "meta/lambda_/mean"]
  axes = _axes(fig)
  # The groups compared first, then a row per agent; STACX's meta/g_v has
  # no value, IMPALA no metaparameter: neither has a panel.
  assert list(axes) == [RETURN_TITLE, EVAL_TITLE, "stac: meta/gamma",
                        "stac: meta/lambda_", "stacx: meta/gamma",
                        "stacx: meta/lambda_"]
  assert len(fig.axes) == 6
  assert axes[RETURN_TITLE]["curves"] == [
      f"{STAC} (2 seeds)", "impala catch (1 seed)", "stacx catch (2 seeds)"]
  assert axes[RETURN_TITLE]["bands"] == 3
  # IMPALA was never evaluated: no curve there, the legend is the first
  # panel's.
  assert axes[EVAL_TITLE]["bands"] == 2 and axes[EVAL_TITLE]["curves"] is None
  assert axes["stac: meta/gamma"]["curves"] == [STAC]
  assert axes["stac: meta/lambda_"]["curves"] == ["mean"]
  assert axes["stacx: meta/gamma"]["curves"] == ["head0", "head1"]
  assert axes["stacx: meta/lambda_"]["curves"] == ["head0", "head1"]
  assert axes["stacx: meta/lambda_"]["bands"] == 2
  for title, ax in axes.items():  # No empty panel.
    assert ax["bands"] >= 1 and any(
        np.isfinite(np.asarray(l.get_ydata(), float)).any()
        for l in ax["lines"]), title
  # Both rows start at the left: 3 columns, the second row's first panel
  # under the first.
  first, stac_gamma = fig.axes[0], fig.axes[2]
  assert stac_gamma.get_position().x0 == pytest.approx(
      first.get_position().x0)
  assert stac_gamma.get_position().y0 < first.get_position().y0
  # Metaparameters near 0.99 keep their values on the ticks.
  fig.canvas.draw()
  assert fig.axes[4].yaxis.get_offset_text().get_text() == ""


def test_evaluations_are_their_own_series(mixed_dirs):
  fig, summaries, _ = _draw(mixed_dirs[3:])
  run = summaries["stacx catch"].runs[1]
  # The training rows without evaluations, and no row of empty columns.
  assert "eval/mean_return" not in run.data
  np.testing.assert_array_equal(run.data["env_steps"], [100, 200, 300, 400])
  np.testing.assert_array_equal(run.evals[0], [200, 400])
  np.testing.assert_array_equal(run.evals[1], [3, 5])
  # Seeds evaluated at 200 and 400: the mean and band there.
  line = _axes(fig)[EVAL_TITLE]["lines"][0]
  np.testing.assert_array_equal(line.get_xdata(), [200, 400])
  np.testing.assert_allclose(line.get_ydata(), [2.5, 4.5])
  assert line.get_marker() == "o"
  mean, lo, hi = summaries["stacx catch"].eval_curve
  half = 1.96 * np.std([2, 3], ddof=1) / np.sqrt(2)
  np.testing.assert_allclose(hi - mean, [half, half])
  np.testing.assert_allclose(mean - lo, [half, half])
  # The training return's band at 300, from the seeds' 0.3 and 0.4.
  ret = summaries["stacx catch"].bands["episode_return"]
  i = int(np.searchsorted(summaries["stacx catch"].grid, 300))
  assert ret[0][i] == pytest.approx(0.35)
  assert ret[2][i] - ret[0][i] == pytest.approx(
      1.96 * np.std([0.3, 0.4], ddof=1) / np.sqrt(2))


@pytest.mark.parametrize("metrics,titles,curves", [
    (["meta/gamma"], ["stac: meta/gamma", "stacx: meta/gamma"],
     [[STAC], ["head0", "head1"]]),
    (["meta/lambda_/*"], ["stac: meta/lambda_", "stacx: meta/lambda_"],
     [["max", "mean", "min"], ["head0", "head1"]]),
    (["eval/mean_return", "episode_return"], [RETURN_TITLE, EVAL_TITLE],
     [[f"{STAC} (2 seeds)", "impala catch (1 seed)",
       "stacx catch (2 seeds)"], None]),
    (["*gamma/head1", "episode_return"], [RETURN_TITLE, "stacx: meta/gamma"],
     [[f"{STAC} (2 seeds)", "impala catch (1 seed)",
       "stacx catch (2 seeds)"], ["head1"]]),
])
def test_metrics_selects_panels_by_name_group_or_pattern(mixed_dirs, metrics,
                                                         titles, curves):
  fig, _, _ = _draw(mixed_dirs, metrics)
  axes = _axes(fig)
  assert list(axes) == titles
  assert [a["curves"] for a in axes.values()] == curves


def test_a_selection_without_values_is_one_line(mixed_dirs, tmp_path):
  out = tmp_path / "none.png"
  with pytest.raises(cli.FlagError, match=r"^nothing to draw: these runs "
                     r"have no value of meta/g_v/head0 \(--metrics\)$"):
    plot.plot(mixed_dirs, str(out), metrics=["meta/g_v"])
  assert not out.exists()


def test_group_by_agent_puts_each_agent_in_one_band(mixed_dirs, tmp_path):
  out = tmp_path / "agents.png"
  plot.plot(mixed_dirs, str(out), group_by="agent",
            metrics=["episode_return", "meta/gamma"])
  assert out.read_bytes()[:8] == PNG
  fig, _, _ = _draw(mixed_dirs, ["episode_return", "meta/gamma"], "agent")
  axes = _axes(fig)
  assert axes[RETURN_TITLE]["curves"] == [
      "stac (2 seeds)", "impala (1 seed)", "stacx (2 seeds)"]
  assert axes["stac: meta/gamma"]["curves"] == ["stac"]


def test_groups_seeds_of_one_setting_into_a_band(run_dirs, tmp_path):
  out, md = tmp_path / "fig" / "runs.png", tmp_path / "runs.md"
  text = plot.plot(run_dirs, str(out), str(md))
  assert out.read_bytes()[:8] == PNG
  assert md.read_text() == text
  rows = _rows(text)
  stac = rows["stac catch meta_learned=gamma,lambda_"]
  impala = rows["impala catch"]
  assert list(stac) == ["group", "seeds", "env steps", "episode_return",
                        "meta/gamma", "meta/lambda_/mean",
                        "last eval/mean_return"]
  # Seeds at the 300 env steps both reached; seed 1's last evaluation
  # counts although seed 0's is later.
  assert stac["seeds"] == "2" and stac["env steps"] == "300"
  assert stac["episode_return"] == _cell([0.5, 0.3]) == "0.4 [0.204, 0.596]"
  assert stac["meta/gamma"] == _cell([0.97, 0.95]) == "0.96 [0.9404, 0.9796]"
  assert stac["meta/lambda_/mean"] == _cell([0.88, 0.86])
  assert stac["last eval/mean_return"] == _cell([0.8, 0.6])
  assert impala["seeds"] == "1" and impala["env steps"] == "500"
  assert impala["episode_return"] == "0.5"  # One seed: no band.
  assert impala["meta/gamma"] == "n/a"
  assert impala["last eval/mean_return"] == "n/a"
  for d in run_dirs:
    assert d in text  # Each group lists its run directories.


def test_curves_csv_holds_the_drawn_bands(run_dirs, tmp_path):
  out, curves = tmp_path / "x.png", tmp_path / "curves.csv"
  plot.plot(run_dirs, str(out), metrics=["episode_return", "meta/gamma"],
            curves=str(curves))
  with open(curves, newline="") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["group", "metric", "env_steps", "mean", "lo95",
                           "hi95"]
  stac = "stac catch meta_learned=gamma,lambda_"
  # The same bands the table gives at the 300 env steps both seeds reached.
  at_300 = {r["metric"]: r for r in rows
            if r["group"] == stac and r["env_steps"] == "300"}
  for metric, values in (("episode_return", [0.5, 0.3]),
                         ("meta/gamma", [0.97, 0.95])):
    row = at_300[metric]
    assert _cell(values) == (f"{float(row['mean']):.4g} "
                             f"[{float(row['lo95']):.4g}, "
                             f"{float(row['hi95']):.4g}]")
  # IMPALA has no gamma: no rows rather than NaNs.
  assert not [r for r in rows if r["group"] == "impala catch"
              and r["metric"] == "meta/gamma"]


def test_group_by_env_agent_and_none(run_dirs, tmp_path):
  out = str(tmp_path / "x.png")
  by_env = _rows(plot.plot(run_dirs, out, group_by="env",
                           metrics=["episode_return"]))
  # All three at the 300 steps the shortest reached (impala: 0.3 there).
  assert list(by_env) == ["catch"]
  assert by_env["catch"]["seeds"] == "3"
  assert by_env["catch"]["episode_return"] == _cell([0.5, 0.3, 0.3])
  by_agent = _rows(plot.plot(run_dirs, out, group_by="agent"))
  assert {k: v["seeds"] for k, v in by_agent.items()} == {
      "stac": "2", "impala": "1"}
  alone = _rows(plot.plot(run_dirs, out, group_by="none",
                          metrics=["meta/gamma", "eval/mean_return"]))
  assert list(alone) == ["stac-seed0", "stac-seed1", "impala-seed0"]
  assert alone["stac-seed0"]["env steps"] == "400"
  assert alone["stac-seed0"]["meta/gamma"] == "0.96"
  # Evaluations are a series of their own: the last one, not a column
  # read at the last step.
  assert "eval/mean_return" not in alone["stac-seed1"]
  assert alone["stac-seed1"]["last eval/mean_return"] == "0.6"
  assert alone["stac-seed0"]["last eval/mean_return"] == "0.8"
  assert open(out, "rb").read(8) == PNG


def test_metric_names_resolve_vector_means(run_dirs, tmp_path):
  rows = _rows(plot.plot(run_dirs[:2], str(tmp_path / "x.png"),
                         metrics=["meta/lambda_"]))
  row = rows["stac catch"]
  assert "meta/lambda_/mean" in row and "episode_return" not in row
  assert row["meta/lambda_/mean"] == _cell([0.88, 0.86])


def test_bad_inputs_are_one_line(run_dirs, tmp_path):
  out = str(tmp_path / "x.png")
  empty = tmp_path / "empty"
  empty.mkdir()
  no_spec = tmp_path / "no_spec"
  no_spec.mkdir()
  (no_spec / "metrics.csv").write_text(IMPALA_CSV)
  no_rows = tmp_path / "no_rows"
  no_rows.mkdir()
  (no_rows / "metrics.csv").write_text("env_steps,episode_return\n")
  cases = [
      ([str(tmp_path / "nope")], {}, f"{tmp_path / 'nope'}: no such "
       "directory"),
      ([str(no_spec / "metrics.csv")], {}, "is a file; expected a run "
       "directory"),
      ([str(empty)], {}, f"{empty}: no metrics (metrics/*.csv or "
       "metrics.csv); expected a run directory written by trainers.train"),
      ([str(no_rows)], {}, f"{no_rows}: its metrics have no rows yet"),
      ([str(no_spec)], {}, "no run_spec.json, which grouping by setting, "
       "agent or env needs; use --group_by=none"),
      (run_dirs, {"metrics": ["meta/nope"]}, "--metrics: 'meta/nope' "
       "matches no metric; the runs' metrics are learner_steps, "
       "episode_return, meta/gamma"),
      (run_dirs, {"metrics": ["meta/*", "x*"]}, "--metrics: 'x*' matches "
       "no metric"),
      ([str(tmp_path / "zz*")], {}, "zz*: matches no directory"),
      ([], {}, "expected at least one run directory"),
  ]
  for args, kwargs, message in cases:
    with pytest.raises(cli.FlagError) as e:
      plot.plot(args, out, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)
  with pytest.raises(cli.FlagError, match=r"^--output=x.pdf: expected a "
                     r"file name ending in \.png$"):
    plot.plot(run_dirs, "x.pdf")
  assert not os.path.exists(out)
  # Without a spec, every directory is its own curve.
  assert "| no_spec | 1 | 500 |" in plot.plot([str(no_spec)], out,
                                               group_by="none")


def test_reads_and_writes_an_in_memory_file_system(tmp_path):
  _make_runs("ram://runs/test_plot")
  text = plot.plot(["ram://runs/test_plot/stac-seed*"],
                   "ram://plots/runs.png", "ram://plots/runs.md")
  with tf.io.gfile.GFile("ram://plots/runs.png", "rb") as f:
    assert f.read()[:8] == PNG
  with tf.io.gfile.GFile("ram://plots/runs.md") as f:
    assert f.read() == text
  assert _rows(text)["stac catch"]["episode_return"] == _cell([0.5, 0.3])


def test_command_line(run_dirs, tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  out, md = tmp_path / "cli.png", tmp_path / "cli.md"
  # Directories before and after the flags, as a shell glob would put them.
  proc = subprocess.run(
      [sys.executable, "-m", "trainers.plot", run_dirs[0],
       f"--output={out}", f"--table={md}", "--metrics=episode_return",
       *run_dirs[1:]],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert out.read_bytes()[:8] == PNG
  assert proc.stdout == md.read_text()
  assert _rows(proc.stdout)["stac catch meta_learned=gamma,lambda_"][
      "episode_return"] == _cell([0.5, 0.3])
  bad = subprocess.run(
      [sys.executable, "-m", "trainers.plot", run_dirs[0],
       f"--output={tmp_path / 'x.pdf'}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert bad.returncode == 1
  assert bad.stderr.splitlines() == [
      f"error: --output={tmp_path / 'x.pdf'}: expected a file name ending "
      f"in .png {cli.HELP_HINT}"]
