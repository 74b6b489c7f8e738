"""The data plane starts and stops as one unit: when a part fails to start,
every part started before it is stopped (server, publisher, actors,
periodic evaluator), and leaving it stops them all. Real parts, tiny
settings; a failure is injected only into the part that must fail."""

import pytest
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.distribute import cluster as cluster_lib
from tf_metagrad.training import actor_pool
from tf_metagrad.training import data_plane
from tf_metagrad.training import opening
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs
from tf_metagrad.training import session as session_lib
from tf_metagrad.training import stop_flag

_SPEC = runs.RunSpec(agent="impala", env="catch", seed=1, config_overrides={
    "mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,)})


def _plane(tmp_path, lines, **kwargs):
  options = options_lib.Options(
      logdir=str(tmp_path), total_env_steps=64, unroll_length=4,
      batch_size=4, num_actors=1, envs_per_actor=2, eval_every_env_steps=16,
      eval_episodes=1, data_timeout_s=2.0, **kwargs)
  cluster = cluster_lib.Cluster(tf.distribute.get_strategy())
  session = session_lib.Session(
      options, str(tmp_path), cluster, session_lib.Counts(),
      outputs.Reporter(str(tmp_path), cluster.strategy, 64, 0),
      stop_flag.StopFlag(), lines.append)
  return data_plane.DataPlane(
      session, opening.Plan(spec=_SPEC, unroll=4, stride=4, latest=None),
      runs.build_learner(_SPEC).network)


def _answers(address):
  try:
    reverb.Client(address).server_info(timeout=1)
  except (reverb.errors.ReverbError, RuntimeError):
    # A server gone reads as a deadline (ReverbError) or, while its socket
    # closes, as gRPC's "GOAWAY received" / "Socket closed" (RuntimeError).
    return False
  return True


def _assert_all_stopped(plane, address):
  assert not _answers(address)
  assert not plane.publisher.is_alive()
  assert plane.pool.threads and not any(
      t.is_alive() for t in plane.pool.threads)
  assert not plane.evaluator.is_alive()


def test_leaving_stops_every_part(tmp_path):
  lines = []
  with _plane(tmp_path, lines) as plane:
    address = plane.address
    assert _answers(address)
    assert plane.publisher.is_alive() and plane.evaluator.is_alive()
    assert all(t.is_alive() for t in plane.pool.threads)
    next(plane.batches())  # The actor's first item reaches the learner.
  _assert_all_stopped(plane, address)
  assert any(l.startswith("reverb server on port") for l in lines)


def _fail(*args, **kwargs):
  del args, kwargs
  raise RuntimeError("this part failed to start")


@pytest.mark.parametrize("failing", ["input", "actor process"])
def test_a_failed_start_stops_what_it_started(tmp_path, monkeypatch,
                                              failing):
  if failing == "input":
    monkeypatch.setattr(data_plane.dataset_lib, "distributed_dataset", _fail)
    extra = {}
  else:
    # The actor thread starts first; the process after it fails.
    monkeypatch.setattr(actor_pool.ActorPool, "_process", _fail)
    extra = {"num_actor_processes": 1}
  plane = _plane(tmp_path, [], **extra)
  with pytest.raises(RuntimeError, match="this part failed to start"):
    with plane:
      pytest.fail("entered a data plane that failed to start")
  _assert_all_stopped(plane, plane.address)
