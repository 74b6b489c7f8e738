"""The run info a learner publishes for its actors: a JSON item that round
trips through a real Reverb server, the rules an actor's own settings are
held to, and the backoff of an actor waiting for a server (fake clock)."""

import json
import socket
import time

import numpy as np
import pytest
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.system import items
from tf_metagrad.system import run_info
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib

# FRODO with an LSTM core: the item unroll is (M+1) x T and the items carry
# the core state, the two things an actor could not guess.
SPEC = runs.RunSpec(
    agent="frodo", env="catch", seed=3, env_kwargs={"rows": 6},
    config_overrides={"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,),
                      "core_units": 8})
T = 4


def _describe(spec=SPEC):
  """(run info, item spec) as the trainer builds them."""
  learner = runs.build_learner(spec)
  env = runs.make_env(spec)
  unroll = T * (runs.agent_config(spec).num_inner_steps + 1)
  item_spec = items.item_spec(
      env.observation_spec, env.action_space, unroll,
      core_state_spec=learner.network.core_state_spec())
  env.close()
  return run_info.describe(spec, unroll, item_spec, envs_per_actor=8,
                           refresh_every=2), item_spec


@pytest.fixture(scope="module", name="described")
def described_fixture():
  return _describe()


def test_describe_holds_what_an_actor_needs(described):
  info, item_spec = described
  assert (info.agent, info.env, info.seed) == ("frodo", "catch", 3)
  assert info.env_kwargs == {"rows": 6}
  # Tuples survive, so the actor's config equals the learner's.
  assert info.config_overrides == SPEC.config_overrides
  assert info.unroll_length == T * (
      runs.agent_config(SPEC).num_inner_steps + 1)
  assert (info.envs_per_actor, info.refresh_every) == (8, 2)
  assert info.item_signature == run_info.signature_json(item_spec)
  assert info.item_signature["core_state_0"] == {"shape": [None, 8],
                                                 "dtype": "float32"}
  assert info.item_signature["observation"]["shape"] == [
      None, info.unroll_length + 1, 6, 5]
  assert runs.agent_config(info.run_spec()) == runs.agent_config(SPEC)
  # A new id at every start of a learner.
  assert _describe()[0].run_id != info.run_id


def test_publish_then_read_round_trips_and_replaces(described):
  info, item_spec = described
  server = server_lib.start_server(server_lib.make_tables(
      item_spec, server_lib.weights_signature([tf.Variable(0.0)]), 2))
  try:
    client = reverb.Client(server_lib.local_address(server.port))
    run_info.publish(client, info)
    assert run_info.read(client, deadline=float("inf")) == info
    restarted = run_info.RunInfo.from_json(
        info.to_json().replace(info.run_id, "restarted"))
    run_info.publish(client, restarted)
    assert run_info.read(client, deadline=float("inf")) == restarted
    assert client.server_info()[server_lib.RUN_INFO_TABLE].current_size == 1
    sample = next(client.sample(server_lib.RUN_INFO_TABLE,
                                emit_timesteps=False,
                                unpack_as_table_signature=True))
  finally:
    server.stop()
  # The item is plain JSON text.
  data = json.loads(np.asarray(sample.data).item().decode("utf-8"))
  assert data["format"] == run_info.FORMAT
  assert data["run_id"] == "restarted"
  assert data["config_overrides"]["mlp_hidden_sizes"] == [16]


@pytest.mark.parametrize("edit, message", [
    (lambda d: "not json", "is not valid JSON"),
    (lambda d: [d], "is not a JSON object"),
    (lambda d: dict(d, format=2), "has format 2, expected 1"),
    (lambda d: {k: v for k, v in d.items() if k != "env"},
     "lacks fields ['env']"),
    (lambda d: dict(d, extra=1), "unknown fields ['extra']"),
    (lambda d: dict(d, unroll_length="20"),
     "fields of the wrong type: ['unroll_length']"),
])
def test_unreadable_run_info_is_refused_with_one_line(described, edit,
                                                      message):
  data = json.loads(described[0].to_json())
  edited = edit(data)
  text = edited if isinstance(edited, str) else json.dumps(edited)
  with pytest.raises(run_info.RunInfoError) as raised:
    run_info.RunInfo.from_json(text, source="the item")
  assert message in str(raised.value)
  assert str(raised.value).startswith("the item ")
  assert "\n" not in str(raised.value)


def test_settings_given_to_an_actor_must_be_the_learners(described):
  info = described[0]
  config = runs.agent_config(SPEC)
  # Equal values (also a default spelled out) and no values agree.
  assert info.conflicts() == []
  assert info.conflicts(
      agent="frodo", env="catch", unroll_length=info.unroll_length,
      config={"mlp_hidden_sizes": (16,), "gamma": config.gamma},
      env_kwargs={"rows": 6}) == []
  assert info.conflicts(
      agent="stac", env="random_walk", config={"gamma": 0.5},
      env_kwargs={"rows": 7, "columns": 5}, unroll_length=T) == [
          ("agent", "stac", "frodo"),
          ("env", "random_walk", "catch"),
          ("env_kwargs", "rows=7", "rows=6"),
          ("env_kwargs", "columns=5", "columns (unset)"),
          ("unroll_length", str(T), str(info.unroll_length))]
  assert info.conflicts(config={"gamma": 0.5, "core_units": 8}) == [
      ("config", "gamma=0.5", f"gamma={config.gamma}")]


def test_differences_name_what_an_actor_was_built_from(described):
  info = described[0]
  restart = json.loads(info.to_json())
  restart.update(run_id="other", envs_per_actor=1, refresh_every=9, seed=4)
  # Another id, copies per actor, refresh and seed: the same actor fits.
  assert info.differences(
      run_info.RunInfo.from_json(json.dumps(restart))) == []
  restart["env_kwargs"] = {"rows": 7}
  restart["item_signature"] = dict(
      info.item_signature, core_state_1={"shape": [None, 4],
                                         "dtype": "float32"})
  assert info.differences(run_info.RunInfo.from_json(json.dumps(restart))) == [
      "env_kwargs: {'rows': 6} -> {'rows': 7}",
      "item_signature: columns ['core_state_1'] differ"]


def test_backoff_doubles_from_1s_up_to_30s():
  backoff = run_info.Backoff()
  assert [backoff.next() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
  with pytest.raises(ValueError, match="first_s=5"):
    run_info.Backoff(first_s=5, max_s=1)


class _Clock:
  """A fake clock that only `sleep` advances, in whole nanoseconds (so that
  sums of 0.1 s slices land exactly on whole seconds)."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now

  def sleep(self, seconds):
    self.now = round(self.now + seconds, 9)


class _SilentServer:
  """A client whose server never answers; records when it was asked."""

  def __init__(self, clock):
    self._clock = clock
    self.asked = []
    self.server_address = "127.0.0.1:1"

  def server_info(self, timeout):
    del timeout
    self.asked.append(round(self._clock(), 6))
    raise reverb.errors.DeadlineExceededError("ServerInfo call did not "
                                              "complete")


def test_read_retries_with_backoff_until_the_deadline():
  clock = _Clock()
  client = _SilentServer(clock)
  with pytest.raises(weights_lib.ServerUnavailableError) as raised:
    run_info.read(client, deadline=100.0, clock=clock, sleep=clock.sleep)
  # At once, after 1, 2, 4, 8, 16, 30, 30 s, and a last try at the deadline.
  assert client.asked == [0, 1, 3, 7, 15, 31, 61, 91, 100]
  assert "last error: DeadlineExceededError" in str(raised.value)


def test_read_stops_when_asked():
  clock = _Clock()
  client = _SilentServer(clock)
  assert run_info.read(client, deadline=100.0,
                       should_stop=lambda: clock.now > 5, clock=clock,
                       sleep=clock.sleep) is None
  assert client.asked == [0, 1, 3]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_read_waits_for_a_server_that_starts_later(described):
  info, item_spec = described
  port = _free_port()
  client = reverb.Client(server_lib.local_address(port))
  started = []

  def sleep(seconds):
    # The learner comes up while the reader waits for its first retry.
    if not started:
      started.append(server_lib.start_server(server_lib.make_tables(
          item_spec, server_lib.weights_signature([tf.Variable(0.0)]), 2),
                                             port=port))
      run_info.publish(reverb.Client(server_lib.local_address(port)), info)
    time.sleep(seconds)

  try:
    assert run_info.read(client, deadline=time.monotonic() + 120,
                         sleep=sleep) == info
  finally:
    for server in started:
      server.stop()


def test_a_server_without_run_info_is_refused_at_once():
  server = reverb.Server(tables=[reverb.Table.queue("trajectories", 1)])
  try:
    client = reverb.Client(server_lib.local_address(server.port))
    with pytest.raises(run_info.RunInfoError, match="has no 'run_info' "
                       "table"):
      run_info.read(client, deadline=float("inf"))
  finally:
    server.stop()
