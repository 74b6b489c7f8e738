"""What a GPU host needs, checked on a CPU-only machine: memory growth on
every GPU, no GPU for actor processes, actor threads and evaluations on the
CPU, and one line when --strategy=mirrored finds no GPU.

TensorFlow here sees no GPU, where every op lands on CPU:0 whatever the
code asks for. So the placement test splits the CPU into two logical
devices and points the policy device at the second one: what the actors
and evaluations run or create must then be on CPU:1, which only happens
if the device scope is entered in the thread that runs them.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from tf_metagrad.system import native_logs
from tf_metagrad.training import actor_pool
from tf_metagrad.distribute import strategies
from tests.training import procs

_GPUS = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU")
         for i in range(2)]


def _fake_gpus(monkeypatch, gpus):
  listed = tf.config.list_physical_devices
  monkeypatch.setattr(
      tf.config, "list_physical_devices",
      lambda kind=None: list(gpus) if kind == "GPU" else listed(kind))


def test_memory_growth_is_set_on_every_gpu(monkeypatch):
  _fake_gpus(monkeypatch, _GPUS)
  calls = []
  monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                      lambda device, enable: calls.append((device, enable)))
  assert strategies.enable_memory_growth() == [g.name for g in _GPUS]
  assert calls == [(_GPUS[0], True), (_GPUS[1], True)]


def test_memory_growth_without_gpus_does_nothing(monkeypatch):
  _fake_gpus(monkeypatch, [])
  calls = []
  monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                      lambda device, enable: calls.append(device))
  assert strategies.enable_memory_growth() == [] and calls == []


def test_memory_growth_after_the_gpus_started_is_one_line(monkeypatch):
  _fake_gpus(monkeypatch, _GPUS)

  def initialised(device, enable):
    raise RuntimeError("Physical devices cannot be modified after being "
                       "initialized")

  monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                      initialised)
  with pytest.raises(RuntimeError, match=r"^GPU memory growth can only be "
                     r"set before TensorFlow initialises the GPUs$"):
    strategies.enable_memory_growth()


@pytest.mark.parametrize("gpus, cuda, logical_cpus, expected", [
    ([], False, 0, "--strategy=mirrored: no GPU found, training on 1 CPU "
     "replica: this TensorFlow has no CUDA support (pip install '.[gpu]'"),
    ([], True, 0, "training on 1 CPU replica: TensorFlow sees no GPU "
     "(driver missing, or hidden by CUDA_VISIBLE_DEVICES)"),
    ([], False, 3, "training on 3 logical CPU replicas (--logical_cpus)"),
    (_GPUS, True, 0, None),
])
def test_mirrored_says_when_it_trains_on_cpus(monkeypatch, gpus, cuda,
                                               logical_cpus, expected):
  _fake_gpus(monkeypatch, gpus)
  monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: cuda)
  # Logical devices can be set up only before TensorFlow starts; the
  # strategy itself is not under test.
  monkeypatch.setattr(tf.config, "set_logical_device_configuration",
                      lambda device, logical: None)
  monkeypatch.setattr(tf.distribute, "MirroredStrategy",
                      lambda devices: ("mirrored", devices))
  lines = []
  strategy = strategies.make("mirrored", logical_cpus=logical_cpus,
                             log=lines.append)
  assert strategy[0] == "mirrored"
  if expected is None:
    assert lines == []
  else:
    assert len(lines) == 1 and expected in lines[0], lines
    assert "\n" not in lines[0]


def test_actor_processes_see_no_gpu(tmp_path, monkeypatch):
  # From another folder, which actor processes get too (for the user's own
  # environment modules, see process_environment).
  monkeypatch.chdir(tmp_path)
  env = actor_pool.process_environment({
      "CUDA_VISIBLE_DEVICES": "0,1", "PYTHONPATH": "/elsewhere",
      native_logs.FILTERED_ENV: "1", "HOME": "/home/x"})
  assert env["CUDA_VISIBLE_DEVICES"] == "-1"
  assert env["PYTHONPATH"] == os.pathsep.join(
      [procs.ROOT, str(tmp_path), "/elsewhere"])
  assert native_logs.FILTERED_ENV not in env and env["HOME"] == "/home/x"


# A fresh interpreter: logical devices must be configured before TF starts.
_PLACEMENT = r"""
import json
import threading
import time

import reverb
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
# Before TF starts: turned on later, it logs nothing.
tf.debugging.set_log_device_placement(True)

from tf_metagrad import runs
from tf_metagrad.agents import networks
from tf_metagrad.system import reverb_actor as system_actor
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib
from tf_metagrad.training import greedy_eval

system_actor.POLICY_DEVICE = "/CPU:1"
spec = runs.RunSpec(agent="impala", env="catch", seed=2, config_overrides={
    "mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,)})
learner = runs.build_learner(spec)
env = runs.make_env(spec)
server = server_lib.start_server(server_lib.make_tables(
    items.item_spec(env.observation_spec, env.action_space, 3),
    server_lib.weights_signature(learner.network.variables), 8))
address = server_lib.local_address(server.port)
weights_lib.publish(reverb.Client(address), learner.network.variables, 0)
stop = threading.Event()
latest = weights_lib.latest_version

def one_unroll(*args, **kwargs):
  stop.set()
  return latest(*args, **kwargs)

weights_lib.latest_version = one_unroll
built = []

def make_actor():
  network = networks.make_network(runs.agent_config(spec),
                                  env.observation_spec, env.action_space)
  built.append(network)
  return system_actor.Actor(reverb.Client(address), spec.env, network,
                            num_envs=2, unroll_length=3, seed=1)

thread = system_actor.ActorThread(make_actor, stop, "actor-0")
thread.start()
thread.join(300)
evaluator = greedy_eval.PeriodicEvaluator(spec, learner.network.variables, 1,
                                         1, 0)
evaluator.start()
evaluator.offer(1, 1)
deadline = time.monotonic() + 300
periodic = []
while not periodic and time.monotonic() < deadline:
  periodic = evaluator.results()
  time.sleep(0.05)
evaluator.close(60)
final = greedy_eval.evaluate(learner, spec, 1, seed=3)
server.stop()
print("RESULT " + json.dumps({
    "actor_error": repr(thread.error), "unrolls": thread.actor.stats.unrolls,
    "actor": sorted({v.device for v in built[0].variables}),
    "evaluator": sorted({v.device for v in evaluator._network.variables}),
    "learner": sorted({v.device for v in learner.network.variables}),
    "evaluations": [len(periodic), len(final)]}), flush=True)
"""


def _executed_on(stderr, function):
  """Devices that ran `function` (a tf.function's name), from TF's
  device-placement log."""
  return set(re.findall(rf"Executing op __inference_{function}_\d+ in "
                        rf"device (\S+)", stderr))


def test_actor_threads_and_evaluations_run_their_policy_on_the_cpu():
  env = dict(procs.environment(), TF_CPP_MIN_LOG_LEVEL="0")
  result = subprocess.run([sys.executable, "-c", _PLACEMENT], cwd=procs.ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
  assert line, result.stdout[-2000:] + result.stderr[-3000:]
  found = json.loads(line[0][len("RESULT "):])
  assert found["actor_error"] == "None" and found["unrolls"] == 1
  policy_device = "/job:localhost/replica:0/task:0/device:CPU:1"
  assert found["actor"] == [policy_device]
  assert found["evaluator"] == [policy_device]
  # The final evaluation acts on a copy: the learner's weights stay put.
  assert found["learner"] == ["/job:localhost/replica:0/task:0/device:CPU:0"]
  assert found["evaluations"] == [1, 1]
  assert _executed_on(result.stderr, "sample_step") == {policy_device}
  # The periodic evaluation's thread and the final one's (main) thread.
  assert _executed_on(result.stderr, "greedy_step") == {policy_device}
