"""benchmarks/reproduce.py runs end to end with tiny budgets and writes its
three outputs (no learning asserted). A file of its own: each case costs
about half a minute of CPU, so `--dist loadfile` can run it beside the
other script smoke tests instead of after them."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


# meta_trajectories: 750 env steps, two learner steps of the toy preset
# (20 x 32 frames) of its STAC arm (--arms), through the trainer like every
# experiment but random_walk (see the test below).
@pytest.mark.parametrize("experiment,scale", [("meta_trajectories", 0.003)])
def test_reproduce_writes_csv_png_and_markdown(tmp_path, experiment, scale):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.reproduce",
       f"--experiment={experiment}", "--seeds=1", f"--scale={scale}",
       "--arms=STAC", f"--outdir={tmp_path}",
       f"--workdir={tmp_path / 'runs'}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  out = tmp_path / experiment
  with open(out / "curves.csv") as f:
    rows = list(csv.reader(f))
  assert len(rows) > 2 and rows[0][0] == "env_steps"
  assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
  assert (out / "results.md").read_text().startswith("# ")
  assert rows[0][1].startswith("STAC meta/"), rows[0]
  assert not any(name.startswith("STACX") for name in rows[0]), rows[0]


def test_random_walk_writes_every_arm_on_one_grid(tmp_path):
  # Two reward periods (1920 env steps, scale 0.032) of a fixed-target arm
  # and a FRODO arm with Qiu's (2021) optimizers (20 FRODO updates).
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  arms = ["4-step", "FRODO+ext bwd (Qiu (2021) opt)"]
  # A hand-written reading under an earlier table outlives the rewrite.
  (tmp_path / "random_walk").mkdir()
  (tmp_path / "random_walk" / "results.md").write_text(
      "# old\n\n| stale | table |\n\n## Reading these numbers\n\nkept\n")
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks.reproduce",
       "--experiment=random_walk", "--seeds=1", "--scale=0.032",
       f"--arms={','.join(arms)}", f"--outdir={tmp_path}",
       f"--workdir={tmp_path / 'runs'}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  out = tmp_path / "random_walk"
  with open(out / "curves.csv") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["env_steps"] + [f"{a} {c}" for a in arms
                                     for c in ("mean", "lo95", "hi95")]
  assert [int(r[0]) for r in rows[1:]] == list(range(96, 1921, 96))
  assert all(np.isfinite(float(v)) for r in rows[1:] for v in r[1:])
  assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
  table = (out / "results.md").read_text()
  assert all(f"| {a} | 1 |" in table for a in arms), table
  assert "stale" not in table
  assert table.endswith("\n## Reading these numbers\n\nkept\n"), table


def test_phase_aligned_and_last_half_means():
  # pylint: disable=g-import-not-at-top
  from benchmarks import reproduce
  grid = np.arange(96, 3841, 96)  # 4 periods of 960.
  curve = (grid % 960) / 96 + (grid > 1920) * 100.0
  assert reproduce.last_half_means(grid, curve) == np.mean(curve[20:])
  np.testing.assert_array_equal(
      reproduce.phase_aligned(grid, curve, 960, 96), np.arange(10) + 100.0)
  with pytest.raises(ValueError, match="multiple of every=96"):
    reproduce.phase_aligned(grid, curve, 1000, 96)
  with pytest.raises(ValueError, match="does not cover every phase"):
    reproduce.phase_aligned(grid[:12], curve[:12], 960, 96)
