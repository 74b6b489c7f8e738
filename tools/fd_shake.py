"""Shakes the finite-difference tests: many random points, both CPU switches.

Usage: python tools/fd_shake.py [--seeds=20] [--configs=default,no_onednn,one_thread]
                                [--workers=2] [-- extra pytest args]

Runs `pytest -m fd --fd-seeds=N` once per configuration (default; with
TF_ENABLE_ONEDNN_OPTS=0; with TF_NUM_INTRAOP_THREADS=1), every check logging
its worst error-to-tolerance ratio (tests/finite_differences.py), then prints
per test the worst ratio over all points and configurations and how many
checks ran. A tolerance at the noise floor shows as a ratio near 1 (or a
failure); the error model puts ordinary ones far below it.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "default": {},
    "no_onednn": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "one_thread": {"TF_NUM_INTRAOP_THREADS": "1"},
}


def _run(config, seeds, workers, extra, log_path):
  env = dict(os.environ, TF_METAGRAD_FD_LOG=log_path, TF_CPP_MIN_LOG_LEVEL="2",
             **CONFIGS[config])
  command = [sys.executable, "-m", "pytest", "-q", "-m", "fd",
             f"--fd-seeds={seeds}", "-p", "no:warnings", *extra]
  if workers > 1:
    command += ["-n", str(workers)]
  print(f"[{config}] {' '.join(command[1:])}", flush=True)
  return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def summarise(log_path):
  """(test -> (worst ratio, checks, configs seen)) from a shake log."""
  worst = collections.defaultdict(float)
  count = collections.Counter()
  seen = collections.defaultdict(set)
  with open(log_path) as f:
    for line in f:
      row = json.loads(line)
      test = row["test"].split("[")[0]
      params = row["test"][len(test):]
      # The seed id is the shaken part; other parameters name the case.
      case = test + "[" + "-".join(
          p for p in params.strip("[]").split("-")
          if p and not p.startswith("seed")) + "]"
      worst[case] = max(worst[case], row["worst_ratio"])
      count[case] += 1
      seen[case].add(row["config"])
  return {k: (worst[k], count[k], sorted(seen[k])) for k in worst}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=20)
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--log", default="")
  args, extra = parser.parse_known_args()
  extra = [a for a in extra if a != "--"]
  configs = args.configs.split(",")
  unknown = sorted(set(configs) - set(CONFIGS))
  if unknown:
    parser.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS)}")
  log_path = args.log or tempfile.mkstemp(suffix=".jsonl")[1]
  failed = []
  for config in configs:
    part_path = log_path + ".part"
    code = _run(config, args.seeds, args.workers, extra, part_path)
    # Each check's row gains the configuration it ran under.
    with open(part_path) as part, open(log_path, "a") as out:
      for line in part:
        out.write(json.dumps(dict(json.loads(line), config=config)) + "\n")
    os.remove(part_path)
    if code:
      failed.append(config)
  summary = summarise(log_path)
  print(f"\n{'worst ratio':>11}  {'checks':>6}  test  (log: {log_path})")
  for case, (ratio, count, _) in sorted(summary.items(),
                                        key=lambda kv: -kv[1][0]):
    print(f"{ratio:11.3g}  {count:6d}  {case}")
  if failed:
    print(f"pytest failed under: {', '.join(failed)}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
