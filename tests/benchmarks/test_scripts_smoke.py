"""The benchmark scripts run end to end with tiny budgets (no speed or
learning asserted; their numbers are reported, not tested)."""

import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _run(module, *flags):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout.strip().splitlines()


def test_throughput_prints_its_ratio():
  # The actor in a process: the acting-only measurement, which runs actor
  # threads, must not need the run to have any. bfloat16 compute reaches
  # the actor process through the run's spec.
  lines = _run("benchmarks.throughput", "--agent=impala", "--env=catch",
               "--num_actors=0", "--num_actor_processes=1",
               "--unroll_length=4", "--batch_size=4", "--envs_per_actor=4",
               "--total_env_steps=320", "--ceiling_repeats=2",
               "--acting_unrolls=2", "--head_hidden_sizes=",
               "--compute_dtype=bfloat16", "--steps_per_call=2",
               "--actor_nice=3")
  assert ("network: torso=mlp mlp_hidden_sizes=(256, 256) "
          "head_hidden_sizes=() compute_dtype=bfloat16 "
          "unroll_length=4 batch_size=4") in lines, lines
  # 320 env steps of 16 frames: ten calls of two steps.
  assert any(l.startswith("run: 320 env steps, 20 learner steps, 0 actor "
                          "threads + 1 actor processes (nice 3) x 4 envs, 2 "
                          "learner step(s) per call;") for l in lines), lines
  match = re.fullmatch(r"env_steps_per_s=([\d.]+) "
                       r"learner_ceiling_steps_per_s=([\d.]+) ratio=([\d.]+)",
                       lines[-1])
  assert match, lines[-1]
  rate, ceiling, ratio = map(float, match.groups())
  assert rate > 0 and ceiling > 0
  assert abs(ratio - rate / ceiling) < 1e-2
  cpu = [l for l in lines if l.startswith("cpu")]
  assert cpu and (cpu[0] == "cpu: the run was too short to sample" or (
      re.match(r"cpu: \d+\.\d+ cores busy over the last \d+\.\d+ s "
               r"\(not counting 1 actor process\),", cpu[0])
      and "MainThread" in cpu[1])), cpu
  acting = [re.fullmatch(r"cpu of acting alone: ([\d.]+) us per env frame, "
                         r"([\d.]+) ms for a learner step's 16 new frames", l)
            for l in lines if l.startswith("cpu of acting")]
  assert len(acting) == 1 and acting[0], lines
  per_frame_us, per_step_ms = map(float, acting[0].groups())
  assert per_frame_us > 0
  assert abs(per_step_ms - 16 * per_frame_us / 1e3) <= 0.05 + 1e-3 * per_step_ms


def test_metagrad_approximation_prints_its_error():
  lines = _run("benchmarks.metagrad_approximation", "--batches=3",
               "--warmup=1", "--batch_size=4", "--unroll_length=5")
  batches = [re.fullmatch(r"batch (\d): relative_error=(\S+) "
                          r"cosine=(\S+)", l) for l in lines[:-1]]
  assert len(batches) == 3 and all(batches), lines
  errors = np.array([float(m.group(2)) for m in batches])
  cosines = np.array([float(m.group(3)) for m in batches])
  # The two learners differ only in whether the inner update's RMSProp
  # statistics carry eta's gradient: the error is positive (two learners
  # built alike give exactly 0) and below 1, as docs/PERFORMANCE.md's 0.037
  # at the default sizes says (at 1 or more the bound below says nothing).
  assert np.all((errors > 0) & (errors < 1)), lines
  # For vectors a, e at angle theta, |a - e| >= |e| sin(theta), so a
  # relative error r < 1 bounds the cosine from below by sqrt(1 - r^2): at
  # these sizes r ~ 1e-3 leaves the printed cosine no room below 1.0000, so
  # a cosine of other vectors, or a wrong formula, shows. The printed values
  # are rounded: r to 4 significant digits (+5e-4 relative), the cosine to
  # 4 decimals (+5e-5).
  bound = np.sqrt(1 - np.minimum(errors * (1 + 5e-4), 1) ** 2)
  assert np.all(cosines + 5e-5 >= bound), (errors, cosines)
  match = re.fullmatch(r"agent=stac median_relative_error=(\S+) "
                       r"median_cosine=(\S+)", lines[-1])
  assert match, lines[-1]
  # The summary is the per-batch values' median, not their mean or the
  # last batch's (printed to 6 significant digits).
  np.testing.assert_allclose(float(match.group(1)), np.median(errors),
                             rtol=1e-3)
  assert abs(float(match.group(2)) - np.median(cosines)) <= 1e-4


def test_conv_floor_counts_checks_and_prints_its_ratios():
  lines = _run("benchmarks.conv_floor", "--tiny", "--batch_size=1",
               "--unroll_length=1", "--repeats=1")
  # The tiny ResNet: one section of a conv and 2 blocks, 5 convolutions.
  assert lines[0].startswith("network=resnet channels=(4,) head_hidden_sizes="
                             "() layers=5 frames=2 repeats=1 "), lines
  # IMPALA: 5 forwards, 5 filter and 4 input gradients; STAC: that twice,
  # and the second-order pairs (one conv for the first layer).
  assert lines[1] == "convolutions: impala 14 stac 37", lines
  # Merged and summed pairs differ only by float32 summation order. A
  # wrong merge (kernels swapped between x and u) differs by O(1); an
  # honest one by at most about K^1.5 u / 6 = 1.3e-4 of the largest output,
  # for K <= 576 products per output (3 x 3 x 64 input channels) of unit
  # normals (worst-case accumulation K u sum|x y|, sum|x y| ~ 0.64 K,
  # largest output ~ 4 sqrt(K)).
  match = re.fullmatch(r"merged vs pairs: largest difference (\S+) of the "
                       r"largest output", lines[2])
  assert match and float(match.group(1)) < 1.3e-4, lines
  match = re.fullmatch(r"cpu per call: impala_step ([\d.]+) ms, stac_convs "
                       r"([\d.]+) ms, ratio ([\d.]+)", lines[3])
  assert match, lines
  impala_cpu, stac_cpu, cpu_ratio = map(float, match.groups())
  assert impala_cpu > 0 and stac_cpu > 0
  # Printed to 0.1 ms (each off by <= 0.05) and the ratio to 0.001: the
  # ratio of the printed times is off by at most r (0.05/s + 0.05/i) to
  # first order, plus the ratio's own rounding.
  ratio = stac_cpu / impala_cpu
  bound = 0.0005 + 1.01 * ratio * (0.05 / stac_cpu + 0.05 / impala_cpu)
  assert abs(cpu_ratio - ratio) <= bound, (cpu_ratio, ratio, bound)
  match = re.fullmatch(
      r"impala_step_ms=([\d.]+) impala_convs_ms=([\d.]+) "
      r"stac_convs_ms=([\d.]+) pairs_ms=([\d.]+) merged_ms=([\d.]+) "
      r"floor_ratio=([\d.]+) merged_over_pairs=([\d.]+)", lines[-1])
  assert match, lines[-1]
  step, _, stac, pairs, merged, floor, ratio = map(float, match.groups())
  assert min(step, stac, pairs, merged) > 0
  assert abs(floor - stac / step) <= 1e-3 + 1e-2 * floor
  assert abs(ratio - merged / pairs) <= 1e-3 + 1e-2 * ratio


def test_weights_traffic_prints_both_behaviours_and_their_ratio():
  lines = _run("benchmarks.weights_traffic", "--tiny", "--unrolls=4",
               "--block=1", "--unroll_length=2", "--envs_per_actor=2",
               "--learner_step_ms=5")
  assert lines[0].startswith("network: agent=stac env=atari:Pong "
                             "torso=resnet "), lines
  match = re.fullmatch(r"network: .* variables, (\d+) bytes; .*", lines[0])
  weight_bytes = int(match.group(1))
  counted = {}
  for phase in ("before", "after"):
    found = [re.fullmatch(
        rf"{phase}: (\d+) env steps, (\d+) full fetches(?:, (\d+) version "
        rf"reads)?, (\d+) bytes, ([\d.]+) bytes per 1000 env steps", l)
             for l in lines if l.startswith(f"{phase}:")]
    assert len(found) == 1 and found[0], lines
    steps, fetches, reads, total, per_1000 = found[0].groups()
    # Two blocks of one refresh each, after an unroll of 2 steps x 2 copies.
    assert int(steps) == 8
    # A fetch moves the arrays and the version; a version read 8 bytes.
    assert int(total) == (int(fetches) * (weight_bytes + 8)
                          + 8 * int(reads or 0))
    assert abs(float(per_1000) - 1000 * int(total) / 8) <= 0.1
    counted[phase] = (int(fetches), int(reads or 0), float(per_1000))
  # The old actor fetched at every refresh; the new one reads the version
  # at every refresh and fetches at most as often.
  assert counted["before"][:2] == (2, 0)
  assert counted["after"][1] == 2 and counted["after"][0] <= 2
  match = re.fullmatch(r"before_bytes_per_1000_env_steps=([\d.]+) "
                       r"after_bytes_per_1000_env_steps=([\d.]+) "
                       r"ratio=([\d.]+)", lines[-1])
  assert match, lines[-1]
  before, after, ratio = map(float, match.groups())
  assert (before, after) == (counted["before"][2], counted["after"][2])
  assert abs(ratio - after / before) <= 1e-4


def test_device_programs_counts_and_times_against_a_baseline():
  # The checkout is its own baseline: both code bases must count alike
  # (one program per step, one reduction per call) and time their calls.
  lines = _run("benchmarks.device_programs", "--agent=impala",
               "--steps_per_call=2", f"--baseline={ROOT}", "--repeats=1",
               "--calls=1")
  for name in ("this", "baseline"):
    assert (f"{name}: agent=impala network=mlp steps=2 programs_per_call=2 "
            f"reductions_per_call=1 dynamic_shapes=0") in lines, lines
  match = re.fullmatch(r"network=mlp steps=2 call_ms=([\d.]+) "
                       r"baseline_call_ms=([\d.]+) ratio=([\d.]+)", lines[-1])
  assert match, lines[-1]
  this, baseline, ratio = map(float, match.groups())
  assert abs(ratio - this / baseline) < 1e-2
