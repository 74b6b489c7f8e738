"""Every agent trains end to end through Reverb and exports (in process)."""

import dataclasses
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.training import loop
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs

TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,)}


def _options(logdir, **kwargs):
  defaults = dict(logdir=str(logdir), total_env_steps=4 * 4 * 6,
                  unroll_length=4, batch_size=4, num_actors=1,
                  envs_per_actor=4, eval_episodes=2, log_every_s=0.0,
                  summary_every_s=0.0, checkpoint_every_s=1e9,
                  data_timeout_s=2.0, max_data_wait_s=120.0)
  defaults.update(kwargs)
  return options_lib.Options(**defaults)


@pytest.mark.parametrize("agent,env,overrides", [
    ("impala", "catch", {}),
    ("mgrl", "catch", {}),
    ("stacx", "catch", {"num_heads": 2}),
    ("frodo", "random_walk", {"num_inner_steps": 1}),
    ("drmg", "two_colors", {"num_quantiles": 4}),
    ("stac", "gym:Pendulum-v1", {"reward_clip": None}),
])
def test_trainer_smoke(tmp_path, agent, env, overrides):
  spec = runs.RunSpec(agent=agent, env=env,
                      config_overrides=dict(TINY, **overrides), seed=3)
  lines = []
  summary = loop.train(spec, _options(tmp_path), log=lines.append)
  assert summary["status"] == "completed", lines
  frames = runs.item_unroll_length(spec, 4) * 4
  assert summary["env_steps"] == frames * -(-96 // frames)
  # Two updates per batch for DrMG (its swapped halves, Yin et al. (2023) 5.2).
  updates = runs.agent_config(spec).updates_per_batch()
  assert updates == (2 if agent == "drmg" else 1)
  assert summary["learner_steps"] == summary["env_steps"] // frames * updates
  assert np.isfinite(summary["final_eval_mean_return"])
  assert any(l.startswith("final_eval_mean_return=") for l in lines)
  assert any("cannot bind to 127.0.0.1" in l for l in lines)
  assert os.path.exists(tmp_path / "saved_model" / "saved_model.pb")
  loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
  assert loaded.get_metadata()["agent"].numpy().decode() == agent
  _, rows = outputs.read_metrics(str(tmp_path))
  assert rows and {"env_steps", "learner_steps", "fps"} <= set(rows[0])
  assert int(rows[-1]["env_steps"]) == summary["env_steps"]
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  tags = _summary_tags(tmp_path)
  meta = _meta_tags(runs.build_learner(spec))
  assert {"episode_return", "fps", "env_steps"} <= tags, sorted(tags)
  assert any("loss" in t for t in tags), sorted(tags)
  assert meta <= tags, sorted(meta - tags)
  progress = [l for l in lines if l.startswith("env_steps=")]
  assert progress, lines
  assert re.fullmatch(
      r"env_steps=\d+ \(\d+\.\d%\) fps=\d+ learner_steps=\d+ "
      r"return=(nan|-?\d+\.\d{3}) .*eta=(\?|\d+h\d\dm\d\ds)",
      progress[-1]), progress[-1]
  # Every scalar metaparameter, and vector ones (DrMG) as their mean.
  for key in meta:
    name = key[len("meta/"):]
    if "/" not in name or name.endswith("/mean"):
      assert f" {name}=" in progress[-1], (name, progress[-1])


def _summary_tags(logdir):
  tags = set()
  for name in os.listdir(logdir):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(
          os.path.join(logdir, name)):
        tags.update(v.tag for v in event.summary.value)
  return tags


def _meta_tags(learner):
  """The "meta/" tags a learner step reports: scalars as they are, vectors
  as /mean, /min and /max."""
  # pylint: disable=protected-access
  values = learner._meta_metrics(learner._meta_variables())
  tags = set()
  for name, value in values.items():
    if tf.convert_to_tensor(value).shape.rank == 0:
      tags.add(f"meta/{name}")
    else:
      tags.update(f"meta/{name}/{s}" for s in ("mean", "min", "max"))
  return tags


def test_resuming_a_finished_run_keeps_counters(tmp_path):
  spec = runs.RunSpec(agent="impala", env="catch", config_overrides=TINY)
  first = loop.train(spec, _options(tmp_path, eval_episodes=0, export=False),
                     log=lambda _: None)
  lines = []
  second = loop.train(spec, _options(tmp_path, total_env_steps=2 * 96,
                                     eval_episodes=0, export=False),
                      log=lines.append)
  assert any(l.startswith("resumed from") for l in lines)
  assert second["learner_steps"] == 2 * first["learner_steps"]
  index = tmp_path / "checkpoints" / "checkpoint"
  index.write_text("garbage")
  with pytest.raises(runs.RunError, match=f"index {index} is missing or "
                     "corrupt"):
    loop.train(spec, _options(tmp_path), log=lambda _: None)
  other = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY)
  with pytest.raises(runs.RunError, match="already holds a different run"):
    loop.train(other, _options(tmp_path), log=lambda _: None)


@pytest.mark.parametrize("kwargs,message", [
    ({"steps_per_call": 0}, r"^steps_per_call=0: expected an integer >= 1$"),
    ({"actor_nice": 20, "num_actor_processes": 1},
     r"^actor_nice=20: expected an integer in \[0, 19\]$"),
    ({"actor_nice": 3}, r"^actor_nice=3: expected num_actor_processes >= 1 "
     r"too \(actor threads share the learner's priority\), got 0$"),
    ({"eval_every_env_steps": 8, "eval_episodes": 0},
     r"^eval_every_env_steps=8: expected eval_episodes >= 1 too, got 0$"),
])
def test_bad_options_are_refused_before_the_run_starts(tmp_path, kwargs,
                                                        message):
  spec = runs.RunSpec(agent="impala", env="catch", config_overrides=TINY)
  with pytest.raises(options_lib.OptionError, match=message):
    loop.train(spec, _options(tmp_path / "run", **kwargs))
  assert not (tmp_path / "run").exists()
  # Options are checked whenever they are made, so none that fail the
  # checks reaches the loop.
  with pytest.raises(options_lib.OptionError, match=message):
    dataclasses.replace(_options(tmp_path / "run"), **kwargs)
