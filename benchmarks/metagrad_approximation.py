r"""How far the "optimizer statistics as constants" meta-gradient is from the
exact one, on real Catch trajectories.

  python -m benchmarks.metagrad_approximation [--agent=stac] [--batches=5]

Builds the agent twice in float64 (differentiate_optimizer_state True and
False, same weights), warms the RMSProp statistics up with a few real
updates, then compares both meta-gradients on fresh batches collected by a
uniformly random behaviour policy (so the data are off-policy). Prints, per
batch, the relative error |g_approx - g_exact| / |g_exact| and the cosine
between them; the last line is machine-readable:
  agent=A median_relative_error=<float> median_cosine=<float>
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import envs
from tf_metagrad import types

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "stac", "A meta-gradient agent (not impala).")
flags.DEFINE_integer("batches", 5, "Batches compared.")
flags.DEFINE_integer("warmup", 5, "Real updates before comparing.")
flags.DEFINE_integer("batch_size", 16, "Unrolls per batch.")
flags.DEFINE_integer("unroll_length", 20, "Steps per unroll.")
flags.DEFINE_integer("seed", 0, "Seed.")


def _random_batch(env, rng, unroll, num_actions):
  obs = [env.reset(seed=int(rng.integers(1 << 30)))]
  actions, rewards, discounts = [], [], []
  for _ in range(unroll):
    action = rng.integers(0, num_actions, size=env.num_envs)
    step = env.step(action)
    actions.append(action)
    rewards.append(step.reward)
    discounts.append(~(step.terminated | step.truncated))
    obs.append(step.observation)
  k = env.num_envs
  return types.Trajectory(
      observation=tf.constant(np.stack(obs).astype(np.float64)),
      action=tf.constant(np.stack(actions).astype(np.int32)),
      reward=tf.constant(np.stack(rewards).astype(np.float64)),
      discount=tf.constant(np.stack(discounts).astype(np.float64)),
      behaviour_log_prob=tf.constant(
          np.full((unroll, k), -np.log(num_actions))))


def main(argv):
  del argv
  if FLAGS.agent == "impala" or FLAGS.agent not in agents.AGENTS:
    raise app.UsageError(f"--agent must be a meta-gradient agent, one of "
                         f"{sorted(set(agents.AGENTS) - {'impala'})}.")
  env = envs.make_batched("catch", FLAGS.batch_size, seed=FLAGS.seed)
  spec = tf.TensorSpec(env.observation_spec.shape, tf.float64)
  overrides = dict(dtype="float64", seed=FLAGS.seed)
  if FLAGS.agent == "frodo":
    overrides["num_inner_steps"] = 1
  exact = agents.make_learner(FLAGS.agent, spec, env.action_space,
                              differentiate_optimizer_state=True, **overrides)
  approx = agents.make_learner(FLAGS.agent, spec, env.action_space,
                               differentiate_optimizer_state=False,
                               **overrides)
  rng = np.random.default_rng(FLAGS.seed)
  unroll = FLAGS.unroll_length * (2 if FLAGS.agent == "frodo" else 1)
  for _ in range(FLAGS.warmup):
    exact.step(_random_batch(env, rng, unroll, env.action_space.n))
  for a, b in zip(exact.variables, approx.variables):
    b.assign(a)
  errors, cosines = [], []
  for i in range(FLAGS.batches):
    batch = _random_batch(env, rng, unroll, env.action_space.n)
    inner, outer = exact._split(batch)  # pylint: disable=protected-access
    g_exact = exact.metagradient(inner, outer)
    g_approx = approx.metagradient(inner, outer)
    e = np.concatenate([np.reshape(g_exact[k], -1) for k in sorted(g_exact)])
    a = np.concatenate([np.reshape(g_approx[k], -1) for k in sorted(g_exact)])
    errors.append(np.linalg.norm(a - e) / np.linalg.norm(e))
    cosines.append(float(a @ e / (np.linalg.norm(a) * np.linalg.norm(e))))
    print(f"batch {i}: relative_error={errors[-1]:.4g} "
          f"cosine={cosines[-1]:.4f}")
  print(f"agent={FLAGS.agent} median_relative_error={np.median(errors):.6g} "
        f"median_cosine={np.median(cosines):.6g}")


if __name__ == "__main__":
  app.run(main)
