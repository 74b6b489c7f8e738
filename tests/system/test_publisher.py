"""The weights publisher: consistent snapshots, sent off the learner thread,
no more often than asked; and the one-slot snapshot worker under it (and
under the periodic evaluator)."""

import contextlib
import time
import types

import numpy as np
import pytest
import reverb
import tensorflow as tf

from tf_metagrad.system import server as server_lib
from tf_metagrad.system import snapshots
from tf_metagrad.system import weights as weights_lib


@contextlib.contextmanager
def _client(variables):
  """A client of a fresh server whose weights table fits `variables`."""
  spec = {"x": tf.TensorSpec([None, 1], tf.float32)}
  server = server_lib.start_server(server_lib.make_tables(
      spec, server_lib.weights_signature(variables), 2))
  try:
    yield reverb.Client(server_lib.local_address(server.port))
  finally:
    server.stop()


def _wait_for_version(client, version, timeout_s=60.0):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    fetched = weights_lib.fetch(client, timeout_s=5.0)
    if fetched is not None and fetched[0] == version:
      return fetched
    time.sleep(0.01)
  raise AssertionError(f"version {version} was not published")


def test_the_snapshot_is_the_values_at_offer_time():
  variables = [tf.Variable(np.arange(6.0).reshape(2, 3), dtype=tf.float32),
               tf.Variable([1.0, 2.0])]
  with _client(variables) as client:
    publisher = weights_lib.Publisher(client, variables)
    assert publisher.offer(7)
    # An update after the offer, before the insert, must not leak into it.
    for v in variables:
      v.assign(v * 10.0 + 1.0)
    publisher.start()
    version, values = _wait_for_version(client, 7)
    np.testing.assert_array_equal(values[0], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(values[1], [1.0, 2.0])
    publisher.close()
    assert not publisher.is_alive() and publisher.error is None


def test_an_offer_while_a_snapshot_is_pending_is_skipped():
  variables = [tf.Variable([0.0])]
  with _client(variables) as client:
    publisher = weights_lib.Publisher(client, variables)
    assert publisher.offer(1)
    # Not started yet: snapshot 1 is still unsent, so 2 is dropped, not
    # queued behind it (it would be stale by the time it went out).
    assert not publisher.offer(2)
    publisher.start()
    _wait_for_version(client, 1)
    deadline = time.monotonic() + 60.0
    while not publisher.offer(3):  # idle again once 1 is sent
      assert time.monotonic() < deadline
      time.sleep(0.01)
    _wait_for_version(client, 3)
    publisher.close()


def _offer_at(publisher, monkeypatch, now, version):
  """`publisher.offer(version)` with the publisher's clock reading `now`.

  Real sleeps between offers would make the outcome depend on how long the
  test thread is descheduled on a loaded machine; with a fake clock the
  interval check sees exactly the times the test names.
  """
  with monkeypatch.context() as patch:
    patch.setattr(weights_lib, "time",
                  types.SimpleNamespace(monotonic=lambda: now))
    return publisher.offer(version)


def test_offers_closer_than_the_minimum_interval_are_skipped(monkeypatch):
  variables = [tf.Variable([0.0])]
  with _client(variables) as client:
    publisher = weights_lib.Publisher(client, variables, min_interval_s=0.5)
    publisher.start()
    assert _offer_at(publisher, monkeypatch, 100.0, 1)
    _wait_for_version(client, 1)
    variables[0].assign([4.0])
    # The interval has passed at 100.5: only snapshot 1's insert, still
    # finishing on the publisher thread, can delay this offer.
    deadline = time.monotonic() + 60.0
    while not _offer_at(publisher, monkeypatch, 100.5, 2):
      assert time.monotonic() < deadline
      time.sleep(0.01)
    _, values = _wait_for_version(client, 2)
    np.testing.assert_array_equal(values[0], [4.0])
    # Closing joins the thread after its insert, so nothing is pending and
    # only the interval can refuse the offers below.
    publisher.close()
    assert not publisher.is_alive() and publisher.error is None
    assert not _offer_at(publisher, monkeypatch, 100.5, 3)
    assert not _offer_at(publisher, monkeypatch, 100.999, 3)
    assert _offer_at(publisher, monkeypatch, 101.0, 3)


class _Recorder(snapshots.SnapshotWorker):
  """Records what it is handed; fails on the tag "fail"."""

  def __init__(self, variables, finish_pending):
    super().__init__(variables, name="recorder", what="recording",
                     finish_pending=finish_pending)
    self.done = []

  def work(self, tag, tensors):
    if tag == "fail":
      raise ValueError("cannot record")
    self.done.append((tag, [t.numpy().tolist() for t in tensors]))


@pytest.mark.parametrize("finish_pending", [True, False])
def test_a_snapshot_pending_at_close_is_worked_on_only_if_asked(
    finish_pending):
  variables = [tf.Variable([1.0, 2.0])]
  worker = _Recorder(variables, finish_pending)
  assert worker.hand_over("a")
  variables[0].assign([5.0, 6.0])
  assert not worker.hand_over("b")  # One slot, taken by "a".
  # Closed before its thread ran: "a" is still pending when it starts.
  assert worker.close()
  worker.start()
  worker.join(60)
  assert not worker.is_alive()
  assert worker.done == ([("a", [[1.0, 2.0]])] if finish_pending else [])


def test_a_failed_work_is_raised_by_the_next_check():
  worker = _Recorder([tf.Variable([0.0])], finish_pending=True)
  worker.start()
  assert worker.hand_over("fail")
  worker.join(60)  # The error ends the thread.
  with pytest.raises(RuntimeError, match="^recording failed$") as raised:
    worker.raise_if_failed()
  assert isinstance(raised.value.__cause__, ValueError)
