"""Run directories built by hand, as the trainer would leave them."""

import os
import subprocess

import numpy as np
import tensorflow as tf

from tf_metagrad import envs
from tf_metagrad import runs
from tf_metagrad.agents import acting

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


# The start of a client script for a fresh interpreter: makes `tf_metagrad`
# unimportable (it is installed in editable mode, so hiding it from sys.path
# is not enough) and proves it.
HIDE_TF_METAGRAD = r"""
import importlib.abc
import sys


class HideTfMetagrad(importlib.abc.MetaPathFinder):

  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "tf_metagrad":
      raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return None


sys.meta_path.insert(0, HideTfMetagrad())
try:
  import tf_metagrad
except ModuleNotFoundError:
  pass
else:
  raise SystemExit("tf_metagrad is still importable")

# tf_metagrad/serving/saved_policy.py needs nothing from the library, so a
# serving project can vendor it: the client loads a copy by path (its last
# argument; see `serving_copy`).
import importlib.util
_spec = importlib.util.spec_from_file_location("saved_policy", sys.argv.pop())
saved_policy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(saved_policy)
"""


def serving_copy(directory) -> str:
  """Copies tf_metagrad/serving/saved_policy.py into `directory`; returns the
  path a HIDE_TF_METAGRAD client takes as its last argument."""
  # pylint: disable-next=g-import-not-at-top
  from tf_metagrad.serving import saved_policy
  path = os.path.join(str(directory), "serving_copy.py")
  with open(saved_policy.__file__) as src, open(path, "w") as dst:
    dst.write(src.read())
  return path


def run_clean(args, cwd, tf_log_level="3"):
  """Runs a command without PYTHONPATH and, by default, without TensorFlow's
  C++ log lines (`tf_log_level` None: TF_CPP_MIN_LOG_LEVEL unset)."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
  if tf_log_level is not None:
    env["TF_CPP_MIN_LOG_LEVEL"] = tf_log_level
  return subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=120, check=False)


def reference_returns(learner, seed, episodes, sample):
  """Returns of greedy or sampled episodes on a 6 x 4 Catch played with the
  in-process policy (what `export.evaluate` must reproduce), the state reset
  at every episode start."""
  policy = acting.Policy(learner.network)
  env = envs.make("catch", seed=seed, rows=6, columns=4)
  returns, step = [], 0
  for _ in range(episodes):
    observation, _ = env.reset()
    state = policy.initial_state(1)
    total, done = 0.0, False
    while not done:
      batch = observation[None]
      if sample:
        action, _, state = policy.sample_step(
            batch, state, tf.constant([seed, step], tf.int64))
      else:
        action, state = policy.greedy_step(batch, state)
      observation, reward, terminated, truncated, _ = env.step(
          action.numpy()[0])
      total += reward
      done = terminated or truncated
      step += 1
    returns.append(total)
  return returns
