"""The cluster's bookkeeping without processes: fingerprints, votes,
divergence and lost-worker lines (two real workers: test_multi_worker.py)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.distribute import cluster as cluster_lib


def _two_workers(index):
  """A Cluster as worker `index` of two sees it (its exchanges are not
  used by these tests, or are replaced)."""
  cluster = cluster_lib.Cluster(tf.distribute.get_strategy())
  cluster.names = ["worker 0 (localhost:1111)", "worker 1 (localhost:2222)"]
  cluster.index = index
  cluster.num_workers = 2
  return cluster


def test_fingerprints_are_exact_and_order_free():
  rng = np.random.default_rng(0)
  values = rng.normal(size=1000).astype(np.float32)
  a = cluster_lib._fingerprints([tf.Variable(values)])  # pylint: disable=protected-access
  b = cluster_lib._fingerprints([tf.Variable(values[::-1].copy())])  # pylint: disable=protected-access
  assert a.numpy()[0] == b.numpy()[0]  # Integer sums ignore the order.
  flipped = values.copy()
  flipped.view(np.int32)[17] ^= 1  # One bit of one value.
  c = cluster_lib._fingerprints([tf.Variable(flipped)])  # pylint: disable=protected-access
  assert c.numpy()[0] != a.numpy()[0]
  # Doubles and integers too; every entry is an exact integer < 2**31.
  mixed = cluster_lib._fingerprints([  # pylint: disable=protected-access
      tf.Variable(values.astype(np.float64)), tf.Variable(7, dtype=tf.int64)])
  assert np.all(mixed.numpy() == np.floor(mixed.numpy()))
  assert np.all((mixed.numpy() >= 0) & (mixed.numpy() < 2**31))


def test_one_process_votes_alone():
  cluster = cluster_lib.Cluster(tf.distribute.get_strategy())
  assert (cluster.num_workers, cluster.index, cluster.is_chief) == (1, 0, True)
  assert cluster.vote({"signal": True, "no_data": False}) == {
      "signal": ["the learner"], "no_data": [], "error": [], "waiting": []}
  with pytest.raises(ValueError, match="unknown stop reasons"):
    cluster.vote({"sigterm": True})
  cluster.check_consistent([tf.Variable([1.0])])  # Nothing to compare.


def test_diverged_workers_are_named_by_variable(monkeypatch):
  cluster = _two_workers(0)
  same, other = tf.Variable([1.0, 2.0], name="kernel"), tf.Variable(3.0,
                                                                    name="bias")

  def gather(values):
    table = np.stack([values, values])
    table[1, 1] += 1  # Worker 1's bias differs.
    return table

  monkeypatch.setattr(cluster, "gather", gather)
  with pytest.raises(cluster_lib.DivergedError,
                     match=r"1 of 2 differ, e.g. \['bias:0'\]"):
    cluster.check_consistent([same, other])
  monkeypatch.setattr(cluster, "gather", lambda v: np.stack([v, v]))
  cluster.check_consistent([same, other])


_HEARTBEAT = ("Collective ops is aborted by: Error reported from "
              "/job:worker/task:1: Task /job:worker/replica:0/task:1 heartbeat "
              "timeout. This indicates that the remote task has failed")
_RESET = ("Collective ops is aborted by: Connection reset by peer\n"
          "Additional GRPC error information from remote target "
          "/job:worker/replica:0/task:0 while calling "
          "/tensorflow.WorkerService/CompleteInstance")


def test_lost_worker_lines_name_the_other_worker():
  line = _two_workers(0).lost_worker(
      tf.errors.UnavailableError(None, None, _HEARTBEAT))
  assert line.startswith("lost worker 1 (localhost:2222) while worker 0 "
                         "(localhost:1111) was training (heartbeat timeout)")
  line = _two_workers(1).lost_worker(
      tf.errors.UnavailableError(None, None, _RESET))
  assert line.startswith("lost worker 0 (localhost:1111) while worker 1 "
                         "(localhost:2222) was training (connection lost)")
  # Its own name in the message is skipped for the other one's.
  both = ("from /job:worker/replica:0/task:1: peer "
          "/job:worker/replica:0/task:0 heartbeat timeout")
  assert _two_workers(1).lost_worker(
      tf.errors.UnavailableError(None, None, both)).startswith(
          "lost worker 0 ")


def test_other_errors_are_not_lost_workers():
  assert _two_workers(0).lost_worker(ValueError(_HEARTBEAT)) is None
  alone = cluster_lib.Cluster(tf.distribute.get_strategy())
  assert alone.lost_worker(tf.errors.UnavailableError(None, None,
                                                      _HEARTBEAT)) is None
