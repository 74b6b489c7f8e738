"""An actor downloads the weights only when their version changed.

Each refresh reads the version table first (`weights.latest_version`); the
full fetch (`weights.fetch`) runs only when that version differs from the
one held: newer, or lower after a learner restart. Publishes happen from
inside the version read, between two unrolls, so that no test waits on a
clock.
"""

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.system import reverb_actor as actor_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib

_SPEC = runs.RunSpec(agent="impala", env="catch", seed=3, config_overrides={
    "mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,)})
_UNROLL, _ENVS = 3, 2


class _Run:
  """A server with published weights, the learner's network and an actor
  whose version reads and full fetches are counted."""

  def __init__(self, monkeypatch):
    self.network = runs.build_learner(_SPEC).network
    env = runs.make_env(_SPEC)
    item_spec = items.item_spec(env.observation_spec, env.action_space,
                                _UNROLL)
    env.close()
    self.server = server_lib.start_server(server_lib.make_tables(
        item_spec, server_lib.weights_signature(self.network.variables), 16))
    self.client = reverb.Client(server_lib.local_address(self.server.port))
    weights_lib.publish(self.client, self.network.variables, 0)
    self.fetched = []  # the version of each full fetch
    self.reads = 0
    # read number -> what to do before that read: a version to publish, or
    # ("ahead", v): that read answers v without asking the server.
    self.before_read = {}
    fetch, latest = weights_lib.fetch, weights_lib.latest_version

    def counted_fetch(*args, **kwargs):
      result = fetch(*args, **kwargs)
      self.fetched.append(result[0])
      return result

    def scripted_latest(*args, **kwargs):
      self.reads += 1
      action = self.before_read.get(self.reads)
      if isinstance(action, tuple):
        return action[1]
      if action is not None:
        self.publish(action)
      return latest(*args, **kwargs)

    monkeypatch.setattr(weights_lib, "fetch", counted_fetch)
    monkeypatch.setattr(weights_lib, "latest_version", scripted_latest)
    self.actor = actor_lib.Actor(
        self.client, _SPEC.env, runs.build_learner(_SPEC).network,
        num_envs=_ENVS, unroll_length=_UNROLL, seed=1, refresh_every=1)

  def publish(self, version):
    """Publishes new values (all variables + version) as `version`."""
    for v in self.network.variables:
      v.assign(tf.fill(v.shape, float(version)))
    weights_lib.publish(self.client, self.network.variables, version)

  def assert_actor_holds(self, version):
    assert self.actor.stats.weights_version == version
    for v in self.actor._network.variables:  # pylint: disable=protected-access
      np.testing.assert_array_equal(v.numpy(), np.full(v.shape, version))

  def close(self):
    self.actor.close()
    self.server.stop()


def test_unchanged_version_fetches_nothing_and_a_new_one_is_fetched(
    monkeypatch):
  run = _Run(monkeypatch)
  try:
    # Before the 3rd read: version 5; before the 5th: a restarted learner's
    # lower version 2 (its checkpoint's step).
    run.before_read = {3: 5, 5: 2}
    run.actor.run(max_unrolls=6)
    assert run.reads == 6
    # The start's forced fetch, then only the two changes.
    assert run.fetched == [0, 5, 2]
    run.assert_actor_holds(2)
  finally:
    run.close()


def test_a_version_read_ahead_of_the_weights_is_not_recorded(monkeypatch):
  run = _Run(monkeypatch)
  try:
    run.publish(4)
    # The version table says 7 while the weights item still holds 4 (the
    # two tables are written separately): the actor fetches, and records
    # the 4 it got, so the next read that says 7 fetches again.
    run.before_read = {1: ("ahead", 7), 2: ("ahead", 7), 3: 7}
    run.actor.run(max_unrolls=4)
    assert run.fetched == [4, 4, 4, 7]
    run.assert_actor_holds(7)
  finally:
    run.close()
