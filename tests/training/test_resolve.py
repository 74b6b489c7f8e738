"""`training.resolve`: one meaning of a preset plus overrides for every
caller. The trainer's flags, benchmarks.reproduce's arms and
benchmarks.throughput's flags give the same spec and options for the same
input, and the learning-rate decay they derive stays out of the run's
identity, so a resume with a longer budget keeps it."""

import json
import subprocess
import sys

import pytest

from tests.training import procs
from tf_metagrad import runs
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import resolve


def test_decay_steps_is_derived_and_a_longer_resume_keeps_it(tmp_path):
  # STAC's control setup: 10 new frames x 24 unrolls per learner step.
  spec, options = resolve.resolve("stac", "dmc:cartpole-swingup",
                                  str(tmp_path), 30_000_000)
  assert spec.derived_config == {"decay_steps": 125_000}
  assert "decay_steps" not in spec.config_overrides
  assert (options.unroll_length, options.unroll_stride,
          options.batch_size) == (40, 10, 24)
  assert options.preset == "auto (dmc)"
  stored = runs.check_or_save_spec(str(tmp_path), spec)
  longer, _ = resolve.resolve("stac", "dmc:cartpole-swingup", str(tmp_path),
                              60_000_000)
  assert longer.derived_config == {"decay_steps": 250_000}
  assert runs.resolve_spec(str(tmp_path), longer) == stored


def test_constant_learning_rate_presets_derive_nothing():
  spec, options = resolve.resolve("frodo", "catch", "unused", 10_000,
                                  config_overrides={"num_inner_steps": 2},
                                  unroll_length=8, num_actors=1)
  assert spec.derived_config == {}
  assert "end_learning_rate" not in spec.config()
  # FRODO's item is M+1 = 3 unrolls: the default stride is all of it.
  assert options.unroll_stride == 24 and options.num_actors == 1


def test_an_agent_changes_its_preset_and_the_user_changes_both():
  # FRODO's toy-preset changes (FrodoConfig.preset_changes), not IMPALA's.
  spec, options = resolve.resolve("frodo", "catch", "unused", 10_000)
  assert spec.config_overrides == {
      "gamma": 0.99, "learning_rate": 3e-3, "meta_learning_rate": 1e-2,
      "num_inner_steps": 2}
  assert (options.unroll_length, options.batch_size, options.envs_per_actor,
          options.unroll_stride) == (16, 8, 64, 48)
  impala, impala_options = resolve.resolve("impala", "catch", "unused",
                                           10_000)
  assert impala.config_overrides == {"gamma": 0.99, "learning_rate": 6e-4}
  assert (impala_options.unroll_length, impala_options.batch_size,
          impala_options.envs_per_actor) == (20, 32, 256)
  # What the user gives wins over both.
  spec, options = resolve.resolve(
      "frodo", "catch", "unused", 10_000, unroll_length=10, batch_size=4,
      envs_per_actor=2, config_overrides={"learning_rate": 1e-3,
                                          "num_inner_steps": 3})
  assert spec.config()["learning_rate"] == 1e-3
  assert spec.config()["num_inner_steps"] == 3
  assert spec.config()["meta_learning_rate"] == 1e-2
  assert (options.unroll_length, options.batch_size, options.envs_per_actor,
          options.unroll_stride) == (10, 4, 2, 40)
  # Other domains keep their preset for FRODO.
  spec, options = resolve.resolve("frodo", "atari:Pong", "unused", 10_000)
  assert spec.config()["learning_rate"] == 6e-4
  assert runs.agent_config(spec).num_inner_steps == 5
  assert (options.unroll_length, options.batch_size) == (20, 32)


def test_bad_settings_name_themselves():
  with pytest.raises(options_lib.OptionError,
                     match=r"^unroll_stride=25: expected an integer in "
                     r"\[1, 24\] \(the item unroll length\)$"):
    resolve.resolve("frodo", "catch", "unused", 10_000, unroll_length=8,
                    config_overrides={"num_inner_steps": 2},
                    unroll_stride=25)
  with pytest.raises(resolve.ConfigError, match="gamma must be in"):
    resolve.resolve("stac", "catch", "unused", 10_000,
                    config_overrides={"gamma": 2.0})
  with pytest.raises(options_lib.OptionError, match="^steps_per_call=0:"):
    resolve.resolve("stac", "catch", "unused", 10_000, steps_per_call=0)


# Resolves each case through the three callers, with their own flags and
# code, in one process (absl flags are global: each program's flags are
# removed before the next one's are defined). reproduce's `_run` trains
# through `loop.train`, which records what it is given instead.
_CALLERS = r"""
import dataclasses, json, sys
from absl import flags
from tf_metagrad.training import loop

FLAGS = flags.FLAGS
cases, workdir = json.loads(sys.argv[1]), sys.argv[2]


def record(spec, options):
  return {"spec": dataclasses.asdict(spec),
          "options": {k: getattr(options, k) for k in (
              "total_env_steps", "unroll_length", "batch_size",
              "unroll_stride", "envs_per_actor")}}


def parse(argv):
  FLAGS.unparse_flags()
  FLAGS(["binary"] + argv)


def drop_flags(module):
  for flag in list(FLAGS.flags_by_module_dict().get(module, ())):
    delattr(FLAGS, flag.name)


def flag_list(case):
  return [f"--agent={case['agent']}", f"--env={case['env']}",
          f"--total_env_steps={case['steps']}"] + [
              f"--{k}={v}" for k, v in case["run"].items()]


out = {"train": [], "throughput": [], "reproduce": []}
from tf_metagrad.programs import train
for case in cases:
  parse(flag_list(case) + [f"--logdir={workdir}/train"])
  out["train"].append(record(*train._options_and_spec()))
drop_flags("tf_metagrad.programs.train")
from benchmarks import throughput
for case in cases:
  parse(flag_list(case))
  out["throughput"].append(record(*throughput._spec_and_options("unused")))
drop_flags("benchmarks.throughput")
from benchmarks import reproduce
parse([f"--workdir={workdir}"])
given = []
loop.train = lambda spec, options, log: given.append(record(spec, options)) or {
    "status": "recorded", "env_steps": 0, "episode_return": 0.0}
for case in cases:
  reproduce._run("resolve", "arm", case["agent"], {}, case["run"],
                 case["env"], case["steps"], 0)
out["reproduce"] = given
print(json.dumps(out))
"""


def test_the_trainer_and_both_benchmarks_resolve_alike(tmp_path):
  cases = [
      # A decaying preset (the decay is derived) with a changed option.
      {"agent": "stac", "env": "dmc:cartpole-swingup", "steps": 30_000,
       "run": {"envs_per_actor": 4}},
      # A constant one, with the unroll, batch and stride changed.
      {"agent": "impala", "env": "catch", "steps": 5_000,
       "run": {"unroll_length": 16, "batch_size": 8, "unroll_stride": 8,
               "envs_per_actor": 64}},
      # An agent's own preset changes, with no flag: reproduce's FRODO arms
      # train with the trainer's defaults.
      {"agent": "frodo", "env": "catch", "steps": 5_000, "run": {}},
  ]
  result = subprocess.run(
      [sys.executable, "-c", _CALLERS, json.dumps(cases), str(tmp_path)],
      cwd=procs.ROOT, env=procs.environment(), capture_output=True,
      text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.splitlines()[-1])
  for i, case in enumerate(cases):
    train, throughput, reproduce = (out[c][i] for c in (
        "train", "throughput", "reproduce"))
    assert train == throughput == reproduce, (case, train, throughput,
                                              reproduce)
  dmc, catch, frodo = out["train"]
  assert dmc["spec"]["derived_config"] == {"decay_steps": 30_000 // 240}
  assert "decay_steps" not in dmc["spec"]["config_overrides"]
  assert dmc["options"]["envs_per_actor"] == 4
  assert catch["spec"]["derived_config"] == {}
  assert catch["options"] == {"total_env_steps": 5_000, "unroll_length": 16,
                              "batch_size": 8, "unroll_stride": 8,
                              "envs_per_actor": 64}
  assert frodo["options"] == {"total_env_steps": 5_000, "unroll_length": 16,
                              "batch_size": 8, "unroll_stride": 48,
                              "envs_per_actor": 64}
  assert frodo["spec"]["config_overrides"]["num_inner_steps"] == 2
