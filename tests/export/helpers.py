"""Run directories built by hand, as the trainer would leave them."""

import numpy as np
import tensorflow as tf

from tf_metagrad import runs

TINY = dict(mlp_hidden_sizes=(16,), head_hidden_sizes=(16,),
            resnet_channels=(4,))


def make_run(logdir, agent="stac", env="catch", env_steps=1234, seed=1,
             env_kwargs=None, **overrides):
  """Writes a run spec and one checkpoint of a learner with random weights.

  Every trainable variable (network weights and metaparameter logits) is
  drawn at random, so exported values differ from the initial ones.

  Returns:
    (spec, learner, manager, env_steps): the learner holds the checkpointed
    values; `env_steps.assign(n); manager.save()` adds a checkpoint.
  """
  spec = runs.RunSpec(agent=agent, env=env,
                      config_overrides=dict(TINY, **overrides),
                      env_kwargs=dict(env_kwargs or {}), seed=seed)
  runs.save_spec(str(logdir), spec)
  learner = runs.build_learner(spec)
  rng = np.random.default_rng(seed)
  for variable in learner.trainable_variables:
    variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(
        variable.dtype.as_numpy_dtype))
  learner.learner_steps.assign(7)
  counter = tf.Variable(env_steps, dtype=tf.int64)
  manager = runs.checkpoint_manager(
      str(logdir), runs.make_checkpoint(learner, env_steps=counter))
  manager.save()
  return spec, learner, manager, counter


def observations(shape, batch=6, dtype=np.float32, seed=0):
  rng = np.random.default_rng(seed)
  if np.dtype(dtype) == np.uint8:
    return rng.integers(0, 256, size=(batch,) + tuple(shape)).astype(dtype)
  return rng.uniform(-1.0, 1.0, size=(batch,) + tuple(shape)).astype(dtype)
