"""An actor's items read back through a real Reverb server (tests only)."""

from typing import Dict, List, Optional, Tuple

import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad import types
from tf_metagrad.agents import actor_critic
from tf_metagrad.system import reverb_actor as actor_lib
from tf_metagrad.system import dataset as dataset_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib


def collect(spec: runs.RunSpec, num_envs: int, unroll_length: int,
            unrolls: int, seed: int
            ) -> Tuple[actor_critic.ActorCriticLearner,
                       List[types.Trajectory]]:
  """(learner, batches): an `Actor` of `spec` with `num_envs` copies writes
  `unrolls` items at the learner's initial weights; each batch is one item
  (all its copies), in the order written."""
  learner, batches, _ = collect_items(spec, num_envs, unroll_length,
                                      unrolls, seed)
  return learner, [trajectory for trajectory, _ in batches]


def collect_items(spec: runs.RunSpec, num_envs: int, unroll_length: int,
                  unrolls: int, seed: int,
                  unroll_stride: Optional[int] = None
                  ) -> Tuple[actor_critic.ActorCriticLearner,
                             List[Tuple[types.Trajectory,
                                        Dict[str, tf.Tensor]]],
                             actor_lib.ActorStats]:
  """`collect` with the items' episode statistics and the actor's counters,
  for an actor writing every `unroll_stride` steps."""
  learner = runs.build_learner(spec)
  network = learner.network
  env = runs.make_env(spec)
  item_spec = items.item_spec(env.observation_spec, env.action_space,
                              unroll_length,
                              core_state_spec=network.core_state_spec())
  env.close()
  server = server_lib.start_server(server_lib.make_tables(
      item_spec, server_lib.weights_signature(network.variables),
      max(4, unrolls)))
  try:
    client = reverb.Client(server_lib.local_address(server.port))
    weights_lib.publish(client, network.variables, 0)
    actor = actor_lib.Actor(client, spec.env, runs.build_learner(spec).network,
                            num_envs=num_envs, unroll_length=unroll_length,
                            seed=seed, env_kwargs=spec.env_kwargs,
                            unroll_stride=unroll_stride)
    actor.run(max_unrolls=unrolls)
    actor.close()
    dataset = dataset_lib.make_dataset(
        server_lib.local_address(server.port), item_spec, num_envs, 10_000)
    batches = list(dataset.take(unrolls))
  finally:
    server.stop()
  return learner, batches, actor.stats
