"""--strategy=tpu and --tpu (issue 14, item 5), without a TPU.

The strategy construction runs with TF's TPU entry points replaced by
recorders; the flag checks run `trainers.train`'s own check functions on
parsed command lines.
"""

from absl import flags
import pytest
import tensorflow as tf

from export import cli
from trainers import train

FLAGS = flags.FLAGS


class _Recorder:
  """Stands in for TF's TPU calls and records what they were given."""

  def __init__(self, monkeypatch):
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
    monkeypatch.setattr(tf.distribute, "TPUStrategy",
                        lambda r: ("strategy", r.tpu))


def test_local_tpu_is_initialised_without_connecting(monkeypatch):
  recorder = _Recorder(monkeypatch)
  assert train.tpu_strategy("local") == ("strategy", "local")
  assert recorder.calls == [("resolver", "local"), ("initialize", "local")]


def test_named_tpu_is_connected_first(monkeypatch):
  recorder = _Recorder(monkeypatch)
  assert train.tpu_strategy("node-1") == ("strategy", "node-1")
  assert recorder.calls == [("resolver", "node-1"), ("connect", "node-1"),
                            ("initialize", "node-1")]


def test_local_resolver_has_no_cluster_to_connect_to():
  # Why connecting is skipped: TF's resolver for "local" names no master
  # and no cluster, and experimental_connect_to_cluster returns at once
  # for a resolver whose master is "" (TF 2.15, eager/remote.py).
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
  assert resolver.master() == ""
  assert not resolver.cluster_spec().as_dict()


@pytest.fixture
def parsed(tmp_path):
  """Parses a trainer command line (with a fresh --logdir) into FLAGS."""

  def parse(*argv):
    FLAGS.unparse_flags()
    FLAGS(["trainers.train", f"--logdir={tmp_path / 'run'}"] + list(argv))

  yield parse
  FLAGS.unparse_flags()


def test_tpu_strategy_without_tpu_is_one_line(parsed):
  parsed("--strategy=tpu")
  with pytest.raises(cli.FlagError) as error:
    train._options_and_spec()  # pylint: disable=protected-access
  assert str(error.value) == ("--strategy=tpu: expected --tpu=NAME too "
                              "(--tpu=local on a Cloud TPU VM)")


def test_float64_with_tpu_strategy_is_one_line(parsed, tmp_path):
  parsed("--strategy=tpu", "--tpu=local", "--config=dtype=float64")
  with pytest.raises(cli.FlagError) as error:
    train._options_and_spec()  # pylint: disable=protected-access
  line = str(error.value)
  assert "\n" not in line
  assert line.startswith("--config=dtype=float64 with --strategy=tpu: "
                         "dtype='float64' cannot run on a TPU"), line
  assert not (tmp_path / "run").exists()


def test_bfloat16_with_local_tpu_passes_the_checks(parsed):
  parsed("--strategy=tpu", "--tpu=local", "--config=compute_dtype=bfloat16",
         "--steps_per_call=8")
  spec, options = train._options_and_spec()  # pylint: disable=protected-access
  assert spec.config_overrides["compute_dtype"] == "bfloat16"
  assert options.steps_per_call == 8
