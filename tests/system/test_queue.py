"""The unroll queue: items of K copies in, batches of B per-copy unrolls out.

A real Reverb server on localhost; items are written as actors write them
(one per unroll of all copies) and read through the learner's dataset.
"""

import threading

import gymnasium
import numpy as np
import pytest
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.system import reverb_actor as actor_lib
from tf_metagrad.system import dataset as dataset_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib

T = 3
OBS = tf.TensorSpec([2], tf.float32)
ACTIONS = gymnasium.spaces.Discrete(4)


def _buffers(first_copy: int, k: int):
  """Time-major actor buffers whose entries encode (copy id, time step)."""
  copies = np.arange(first_copy, first_copy + k)
  steps = np.arange(T + 1)[:, None]
  obs = np.stack([np.broadcast_to(copies, (T + 1, k)),
                  np.broadcast_to(steps, (T + 1, k))], -1).astype(np.float32)
  code = (100 * copies + steps[:T]).astype(np.float32)
  return (obs, (code % 4).astype(np.int32), code, np.ones((T, k), np.float32),
          -code, np.full((T, k), np.nan, np.float32),
          np.zeros((T, k), np.int32), np.ones((T, k), np.float32))


def test_numpy_item_is_the_batch_major_copy_of_the_buffers():
  buffers = _buffers(7, 5)
  item = items.numpy_item(*buffers, core_state=(np.arange(10, dtype=np.float32).reshape(5, 2),))
  assert item["observation"].shape == (5, T + 1, 2)
  assert item["reward"].shape == (5, T)
  for name, buffer in zip(["observation", "action", "reward", "discount",
                           "behaviour_log_prob"], buffers):
    np.testing.assert_array_equal(item[name], np.swapaxes(buffer, 0, 1))
    assert item[name].flags["C_CONTIGUOUS"]
  np.testing.assert_array_equal(item["core_state_0"],
                                np.arange(10.).reshape(5, 2))
  spec = items.item_spec(OBS, ACTIONS, T, core_state_spec=(
      tf.TensorSpec([2], tf.float32),))
  for name, value in item.items():
    assert spec[name].shape[0] is None
    assert spec[name].is_compatible_with(tf.TensorSpec.from_tensor(
        tf.constant(value))), name


def test_items_of_different_sizes_become_batches_of_every_copy_once():
  spec = items.item_spec(OBS, ACTIONS, T)
  server = server_lib.start_server(server_lib.make_tables(
      spec, server_lib.weights_signature([tf.Variable(0.0)]), capacity=10))
  try:
    address = server_lib.local_address(server.port)
    client = reverb.Client(address)
    # Three "actors" with 3, 5 and 4 copies: 12 copies, 3 batches of 4.
    first = 0
    for k in (3, 5, 4):
      writer = client.trajectory_writer(num_keep_alive_refs=1)
      server_lib.append_item(writer, server_lib.TRAJECTORY_TABLE,
                             items.numpy_item(*_buffers(first, k)))
      writer.flush()
      writer.close()
      first += k
    dataset = dataset_lib.make_dataset(address, spec, 4, timeout_ms=2000)
    batches = list(dataset.take(3))
  finally:
    server.stop()
  seen = []
  for trajectory, stats in batches:
    obs = trajectory.observation.numpy()
    assert obs.shape == (T + 1, 4, 2)
    copies = obs[0, :, 0].astype(int)
    seen.extend(copies.tolist())
    # Time-major again, and every field follows its copy.
    np.testing.assert_array_equal(obs[:, :, 1],
                                  np.broadcast_to(np.arange(T + 1)[:, None],
                                                  (T + 1, 4)))
    code = 100 * copies[None, :] + np.arange(T)[:, None]
    np.testing.assert_array_equal(trajectory.reward.numpy(), code)
    np.testing.assert_array_equal(trajectory.behaviour_log_prob.numpy(),
                                  -code)
    np.testing.assert_array_equal(trajectory.action.numpy(), code % 4)
    assert stats["episode_return"].shape == (T, 4)
  # FIFO: the copies in the order they were written, each exactly once.
  assert seen == list(range(12))


@pytest.mark.parametrize("capacity,envs,batch", [(1, 3, 7), (2, 16, 4)])
def test_a_small_queue_feeds_actors_to_the_learner_without_deadlock(
    capacity, envs, batch):
  spec = runs.RunSpec(agent="impala", env="catch", config_overrides={
      "mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,)})
  network = runs.build_learner(spec).network
  env = runs.make_env(spec)
  item_spec = items.item_spec(env.observation_spec, env.action_space, T)
  env.close()
  server = server_lib.start_server(server_lib.make_tables(
      item_spec, server_lib.weights_signature(network.variables), capacity))
  stop = threading.Event()
  try:
    address = server_lib.local_address(server.port)
    weights_lib.publish(reverb.Client(address), network.variables, 0)
    actors = [actor_lib.Actor(reverb.Client(address), "catch",
                              runs.build_learner(spec).network, num_envs=envs,
                              unroll_length=T, seed=i) for i in range(2)]
    threads = [threading.Thread(target=a.run, args=(stop.is_set,))
               for a in actors]
    for thread in threads:
      thread.start()
    dataset = dataset_lib.make_dataset(address, item_spec, batch,
                                       timeout_ms=60_000)
    count = sum(1 for _ in dataset.take(6))
  finally:
    stop.set()
    for thread in threads:
      thread.join(60)
    server.stop()
  assert count == 6
  assert not any(thread.is_alive() for thread in threads)


def test_queue_capacity_counts_items():
  # About four learner batches of per-copy unrolls, at least 2 items.
  assert server_lib.queue_capacity(32, 64) == 2
  assert server_lib.queue_capacity(32, 8) == 16
  assert server_lib.queue_capacity(32, 5) == 26
  assert server_lib.queue_capacity(32, 1000) == 2
  assert server_lib.queue_capacity(32, 8, requested=1) == 1
  with pytest.raises(ValueError, match="queue_capacity must be >= 1 item"):
    server_lib.queue_capacity(32, 8, requested=0)
