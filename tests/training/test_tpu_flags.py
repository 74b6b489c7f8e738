"""--strategy=tpu and --tpu (issue 14, item 5), without a TPU.

The strategy construction runs with TF's TPU entry points replaced by
recorders; the flag checks run `trainers.train`'s own check functions on
parsed command lines, in a subprocess: the trainer's absl flags would clash
with the benchmark flags other test files import into this process.
"""

import json
import subprocess
import sys
import types

import pytest
import tensorflow as tf

from tests.training import procs
from tf_metagrad.distribute import strategies


class _Recorder:
  """Stands in for TF's TPU calls and records what they were given."""

  def __init__(self, monkeypatch, num_hosts=1):
    self.calls = []
    recorder = self

    class Resolver:

      def __init__(self, tpu=None):
        self.tpu = tpu
        recorder.calls.append(("resolver", tpu))

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver",
                        Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster",
                        lambda r: self.calls.append(("connect", r.tpu)))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                        lambda r: self.calls.append(("initialize", r.tpu)))
    monkeypatch.setattr(
        tf.distribute, "TPUStrategy",
        lambda r: types.SimpleNamespace(
            tpu=r.tpu, extended=types.SimpleNamespace(num_hosts=num_hosts)))


def test_local_tpu_is_initialised_without_connecting(monkeypatch):
  recorder = _Recorder(monkeypatch)
  assert strategies.tpu_strategy("local").tpu == "local"
  assert recorder.calls == [("resolver", "local"), ("initialize", "local")]


def test_named_tpu_is_connected_first(monkeypatch):
  recorder = _Recorder(monkeypatch)
  assert strategies.tpu_strategy("node-1").tpu == "node-1"
  assert recorder.calls == [("resolver", "node-1"), ("connect", "node-1"),
                            ("initialize", "node-1")]


def test_a_pod_slice_is_refused_in_one_sentence(monkeypatch):
  _Recorder(monkeypatch, num_hosts=4)
  with pytest.raises(ValueError, match=r"^the TPU has 4 hosts \(a pod "
                     r"slice\); .* TPU pods are not supported yet"):
    strategies.tpu_strategy("pod-32")


def test_local_resolver_has_no_cluster_to_connect_to():
  # Why connecting is skipped: TF's resolver for "local" names no master
  # and no cluster, and experimental_connect_to_cluster returns at once
  # for a resolver whose master is "" (TF 2.15, eager/remote.py).
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
  assert resolver.master() == ""
  assert not resolver.cluster_spec().as_dict()


# Parses each command line into the trainer's flags and runs its checks;
# prints one JSON object per line: the error, or what the checks returned.
_CHECKS = """
import json, sys
from absl import flags
from tf_metagrad.programs import cli
from tf_metagrad.programs import train
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["trainers.train"] + argv)
  try:
    spec, options = train._options_and_spec()
    print(json.dumps({"compute_dtype": spec.config_overrides.get(
        "compute_dtype"), "steps_per_call": options.steps_per_call}))
  except cli.FlagError as e:
    print(json.dumps({"error": str(e)}))
"""


def _check(tmp_path, *command_lines):
  argvs = [[f"--logdir={tmp_path / 'run'}", *argv] for argv in command_lines]
  result = subprocess.run(
      [sys.executable, "-c", _CHECKS, json.dumps(argvs)], cwd=procs.ROOT,
      env=dict(procs.environment(), TF_CPP_MIN_LOG_LEVEL="3"),
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return [json.loads(line) for line in result.stdout.splitlines()]


def test_tpu_flag_checks_are_one_line_errors_or_pass(tmp_path):
  no_tpu, float64, bfloat16 = _check(
      tmp_path, ["--strategy=tpu"],
      ["--strategy=tpu", "--tpu=local", "--config=dtype=float64"],
      ["--strategy=tpu", "--tpu=local", "--config=compute_dtype=bfloat16",
       "--steps_per_call=8"])
  assert no_tpu == {"error": "--strategy=tpu: expected --tpu=NAME too "
                             "(--tpu=local on a Cloud TPU VM)"}
  assert "\n" not in float64["error"]
  assert float64["error"].startswith(
      "--config=dtype=float64 with --strategy=tpu: dtype='float64' cannot "
      "run on a TPU"), float64
  assert bfloat16 == {"compute_dtype": "bfloat16", "steps_per_call": 8}
  assert not (tmp_path / "run").exists()
