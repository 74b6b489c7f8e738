"""Every agent trains end to end through Reverb and exports (in process)."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import runs
from trainers import loop

TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,)}


def _options(logdir, **kwargs):
  defaults = dict(logdir=str(logdir), total_env_steps=4 * 4 * 6,
                  unroll_length=4, batch_size=4, num_actors=1,
                  envs_per_actor=4, eval_episodes=2, log_every_s=0.0,
                  summary_every_s=0.0, checkpoint_every_s=1e9,
                  data_timeout_s=2.0, max_data_wait_s=120.0)
  defaults.update(kwargs)
  return loop.Options(**defaults)


@pytest.mark.parametrize("agent,env,overrides", [
    ("impala", "catch", {}),
    ("mgrl", "catch", {}),
    ("stac", "catch", {}),
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
  frames = loop.item_unroll_length(spec, 4) * 4
  assert summary["env_steps"] == frames * -(-96 // frames)
  assert summary["learner_steps"] == summary["env_steps"] // frames
  assert np.isfinite(summary["final_eval_mean_return"])
  assert any(l.startswith("final_eval_mean_return=") for l in lines)
  assert os.path.exists(tmp_path / "saved_model" / "saved_model.pb")
  loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
  assert loaded.get_metadata()["agent"].numpy().decode() == agent
  with open(tmp_path / "metrics.csv") as f:
    rows = list(csv.DictReader(f))
  assert rows and {"env_steps", "learner_steps", "fps"} <= set(rows[0])
  assert int(rows[-1]["env_steps"]) == summary["env_steps"]
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert any(f.startswith("events.out.tfevents") for f in
             os.listdir(tmp_path))


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
  other = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY)
  with pytest.raises(runs.RunError, match="already holds a different run"):
    loop.train(other, _options(tmp_path), log=lambda _: None)
