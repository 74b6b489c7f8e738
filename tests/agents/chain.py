"""A 3-state chain built for learner tests, with a known optimum.

States 0 -> 1 -> 2; "right" (action 1, or a > 0 for continuous actions)
moves on, and from state 2 ends the episode with reward +1; "left" ends it
with reward 0. The optimal policy always goes right (return 1, discounted
gamma^2); a uniform policy reaches the reward with probability 1/8.
"""

import math

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import types
from tf_metagrad.agents import acting
from tf_metagrad.agents import networks

# Small networks and step sizes under which every agent solves the chain in
# about 150 learner steps.
SMALL = dict(mlp_hidden_sizes=(32,), head_hidden_sizes=(32,),
             learning_rate=3e-3, meta_learning_rate=3e-2, gamma=0.9,
             max_grad_norm=40.0)

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
  return 0.5 * (1.0 + np.vectorize(math.erf)(z / np.sqrt(2.0)))


def train(agent, steps, unroll=6, batch=16, continuous=False, lag=3,
          **overrides):
  """Trains `agent` (config `SMALL` + `overrides`) on the chain.

  The actor's weights lag `lag` updates behind the learner's, so the data
  are off-policy as in IMPALA.

  Returns:
    (learner, P(right) before, P(right) after, meta_params before, after,
    the last step's metrics).
  """
  spec = tf.TensorSpec([NUM_STATES], tf.float32)
  space = (gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous
           else gymnasium.spaces.Discrete(2))
  learner = agents.make_learner(agent, spec, space,
                                **dict(SMALL, **overrides))
  behaviour = networks.make_network(learner.config, spec, space)
  sample = tf.function(acting.Policy(behaviour).sample, autograph=False)
  policy = type("P", (), {"sample": staticmethod(sample)})
  env = Chain(batch, continuous=continuous)
  before_meta = {k: v.numpy() for k, v in learner.meta_params().items()}
  before = probability_right(learner.network)
  for step in range(steps):
    if step % lag == 0:
      for dst, src in zip(behaviour.variables, learner.network.variables):
        dst.assign(src)
    metrics = learner.step(rollout(policy, env, unroll, step))
  after = probability_right(learner.network)
  after_meta = {k: v.numpy() for k, v in learner.meta_params().items()}
  return learner, before, after, before_meta, after_meta, metrics


def assert_learned(agent, before, after, meta0, meta1, metrics,
                   continuous=False):
  """The policy now goes right from every state, no update was skipped, and
  every metaparameter moved. A Gaussian policy starts near 1/2 per state,
  so for it the check is a clear gain instead of a low start."""
  if continuous:
    assert np.all(after > 0.9) and after.mean() > before.mean() + 0.2, (
        before, after)
  else:
    assert np.all(before < 0.8), before
    assert np.all(after > 0.9), (before, after)
  assert float(metrics["skipped_updates"]) == 0
  for name in meta0:
    assert not np.allclose(meta0[name], meta1[name]), (
        f"{agent}: metaparameter {name} did not move")
