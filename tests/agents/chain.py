"""A 3-state chain built for learner tests, with a known optimum.

States 0 -> 1 -> 2; "right" (action 1, or a > 0 for continuous actions)
moves on, and from state 2 ends the episode with reward +1; "left" ends it
with reward 0. The optimal policy always goes right (return 1, discounted
gamma^2); a uniform policy reaches the reward with probability 1/8.
"""

import numpy as np
import tensorflow as tf

from tf_metagrad import types

NUM_STATES = 3


class Chain:
  """K copies stepped together (numpy)."""

  def __init__(self, num_envs, continuous=False):
    self.state = np.zeros(num_envs, np.int64)
    self.continuous = continuous

  def observation(self):
    return np.eye(NUM_STATES, dtype=np.float32)[self.state]

  def step(self, actions):
    actions = np.asarray(actions)
    right = actions[..., 0] > 0 if self.continuous else actions == 1
    reward = (right & (self.state == NUM_STATES - 1)).astype(np.float32)
    done = ~right | (self.state == NUM_STATES - 1)
    self.state = np.where(done, 0, self.state + 1)
    return reward, (~done).astype(np.float32)


def rollout(policy, env, unroll, seed):
  """One on-policy `Trajectory` of `unroll` steps from `env`."""
  obs, acts, rews, discs, logps = [env.observation()], [], [], [], []
  for t in range(unroll):
    action, logp = policy.sample(tf.constant(obs[-1]),
                                 tf.constant([seed, t], tf.int64))
    reward, discount = env.step(action.numpy())
    acts.append(action.numpy())
    logps.append(logp.numpy())
    rews.append(reward)
    discs.append(discount)
    obs.append(env.observation())
  return types.Trajectory(
      observation=tf.constant(np.stack(obs)),
      action=tf.constant(np.stack(acts)),
      reward=tf.constant(np.stack(rews)),
      discount=tf.constant(np.stack(discs)),
      behaviour_log_prob=tf.constant(np.stack(logps)))


def probability_right(network):
  """P(right) of the acting head in each of the 3 states."""
  outputs = network(tf.eye(NUM_STATES))
  dist = network.policy(outputs, 0)
  if hasattr(dist, "logits"):
    return tf.nn.softmax(dist.logits)[:, 1].numpy()
  z = (dist.mean / dist.std)[:, 0].numpy()
  return 0.5 * (1.0 + np.vectorize(np.math.erf)(z / np.sqrt(2.0)))
