"""benchmarks/reproduce.py runs end to end with tiny budgets and writes its
three outputs (no learning asserted). A file of its own: each case costs
about half a minute of CPU, so `--dist loadfile` can run it beside the
other script smoke tests instead of after them."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


# meta_trajectories: 750 env steps, two learner steps of the toy preset
# (20 x 32 frames) of its STAC arm (--arms), through the trainer like every
# experiment but random_walk (which steps learners in-process and has no
# smoke test: its 30 s did not fit the suite's budget).
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
