"""The domain presets as the trainer resolves them from its flags.

STAC's control setup (supplement Tables 2 and 3, control columns) must reach
the run spec and the network: an LSTM core of 256, heads of one hidden
layer of 256, and items every 10 steps of the last 40 (overlap 30), with
the learning rate decayed over the learner steps that this makes. The trainer's flags live in its own process (absl flags are
global), so the command lines are resolved in one subprocess.
"""

import json
import subprocess
import sys

from tests.training import procs

# Resolves each command line with the trainer's own flags and checks and
# prints what the run would use, one JSON object per line.
_RESOLVE = """
import json, sys
from absl import flags
from tf_metagrad import runs
from tf_metagrad.agents import networks
from tf_metagrad.programs import train
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["trainers.train"] + argv)
  spec, options = train._options_and_spec()
  config = runs.agent_config(spec)
  env = runs.make_env(spec)
  network = networks.make_network(config, env.observation_spec,
                                  env.action_space)
  env.close()
  print(json.dumps({
      "core_units": config.core_units,
      "head_hidden_sizes": list(config.head_hidden_sizes),
      "network_core_units": network.core_units,
      "network_head_hidden_sizes": list(network.head_hidden_sizes),
      "unroll_length": options.unroll_length,
      "unroll_stride": options.unroll_stride,
      "decay_steps": spec.derived_config.get("decay_steps"),
      "batch_size": options.batch_size}))
"""


def _resolve(tmp_path, *command_lines):
  argvs = [[f"--logdir={tmp_path / 'run'}", *argv] for argv in command_lines]
  result = subprocess.run(
      [sys.executable, "-c", _RESOLVE, json.dumps(argvs)], cwd=procs.ROOT,
      env=procs.environment(), capture_output=True, text=True, timeout=300,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return [json.loads(line) for line in result.stdout.splitlines()]


def test_dmc_preset_is_stacs_control_setup_and_toy_keeps_its_own(tmp_path):
  dmc, overridden, short, no_overlap, toy = _resolve(
      tmp_path, ["--env=dmc:cartpole-swingup", "--total_env_steps=30000000"],
      ["--env=dmc:cartpole-swingup", "--config=core_units=0",
       "--config=head_hidden_sizes=64,64"],
      ["--env=dmc:cartpole-swingup", "--unroll_length=8"],
      ["--env=dmc:cartpole-swingup", "--unroll_stride=40",
       "--total_env_steps=30000000"],
      ["--env=catch"])
  # 30M env steps at 10 new frames x 24 unrolls per learner step.
  assert dmc == {"core_units": 256, "head_hidden_sizes": [256],
                 "network_core_units": 256,
                 "network_head_hidden_sizes": [256],
                 "unroll_length": 40, "unroll_stride": 10,
                 "decay_steps": 125_000, "batch_size": 24}
  assert overridden["core_units"] == 0
  assert overridden["network_head_hidden_sizes"] == [64, 64]
  # The preset's stride is capped at a shorter unroll (no overlap).
  assert short["unroll_stride"] == 8
  assert no_overlap["unroll_stride"] == 40
  assert no_overlap["decay_steps"] == 31_250
  assert toy["core_units"] == 0
  assert toy["head_hidden_sizes"] == [256, 256]
  assert toy["unroll_stride"] == 20
  assert toy["decay_steps"] is None
  assert not (tmp_path / "run").exists()
