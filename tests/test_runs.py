"""Run directories: spec round trip, checkpoint errors that name the file."""

import dataclasses
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import runs

TINY = {"mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,)}
DECAY = dict(TINY, end_learning_rate=0.0)


def _saved(tmp_path, agent="stac"):
  spec = runs.RunSpec(agent=agent, env="catch", config_overrides=TINY)
  runs.save_spec(str(tmp_path), spec)
  learner = runs.build_learner(spec)
  counter = tf.Variable(123, dtype=tf.int64)
  path = runs.checkpoint_manager(
      str(tmp_path), runs.make_checkpoint(learner, env_steps=counter)).save()
  return spec, learner, path


def test_spec_round_trip_and_restore(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch", config_overrides=DECAY,
                      derived_config={"decay_steps": 7})
  runs.save_spec(str(tmp_path), spec)
  assert runs.load_spec(str(tmp_path)) == spec
  learner = runs.build_learner(spec)
  rng = np.random.default_rng(0)
  # Values a fresh learner cannot have, so a restore that skipped any
  # variable fails the comparison below.
  for v in learner.variables:
    v.assign(rng.integers(1, 100, v.shape).astype(v.dtype.as_numpy_dtype))
  counter = tf.Variable(123, dtype=tf.int64)
  path = runs.checkpoint_manager(
      str(tmp_path), runs.make_checkpoint(learner, env_steps=counter)).save()
  fresh = runs.build_learner(spec)
  counter = tf.Variable(0, dtype=tf.int64)
  runs.restore(runs.make_checkpoint(fresh, env_steps=counter), path)
  assert int(counter.numpy()) == 123
  assert len(learner.variables) == len(fresh.variables)
  for a, b in zip(learner.variables, fresh.variables):
    assert a.name == b.name
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_derived_config_is_kept_on_resume_but_not_compared(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch", config_overrides=DECAY,
                      derived_config={"decay_steps": 10})
  assert runs.check_or_save_spec(str(tmp_path), spec) == spec
  longer = runs.RunSpec(agent="stac", env="catch", config_overrides=DECAY,
                        derived_config={"decay_steps": 99})
  resumed = runs.check_or_save_spec(str(tmp_path), longer)
  assert resumed.derived_config == {"decay_steps": 10}
  assert runs.agent_config(resumed).decay_steps == 10
  other = runs.RunSpec(agent="stac", env="catch",
                       config_overrides=dict(DECAY, gamma=0.9))
  with pytest.raises(runs.RunError, match="config_overrides"):
    runs.check_or_save_spec(str(tmp_path), other)


def test_corrupt_checkpoint_index_is_an_error(tmp_path):
  _, learner, path = _saved(tmp_path)
  runs.check_checkpoint_index(str(tmp_path), path)  # Healthy: no error.
  index = tmp_path / runs.CHECKPOINT_DIR / "checkpoint"
  index.write_text("\x00garbage{")
  manager = runs.checkpoint_manager(str(tmp_path), runs.make_checkpoint(
      learner, env_steps=tf.Variable(0, dtype=tf.int64)))
  assert manager.latest_checkpoint is None
  with pytest.raises(runs.RunError, match=f"index {index} is missing or "
                     f"corrupt but 1 checkpoint"):
    runs.check_checkpoint_index(str(tmp_path), manager.latest_checkpoint)
  runs.check_checkpoint_index(str(tmp_path / "new"), None)  # Fresh run.


def test_corrupt_checkpoint_names_the_file(tmp_path):
  spec, _, path = _saved(tmp_path)
  data = [f for f in os.listdir(os.path.dirname(path))
          if f.startswith(os.path.basename(path) + ".data")]
  with open(os.path.join(os.path.dirname(path), data[0]), "wb") as f:
    f.write(b"not a checkpoint")
  checkpoint = runs.make_checkpoint(runs.build_learner(spec),
                                    env_steps=tf.Variable(0, dtype=tf.int64))
  with pytest.raises(runs.RunError, match=f"Checkpoint {path} is corrupt"):
    runs.restore(checkpoint, path)


def test_checkpoint_of_another_agent_does_not_fit(tmp_path):
  _, _, path = _saved(tmp_path, agent="stac")
  other = runs.build_learner(runs.RunSpec(agent="impala", env="catch",
                                          config_overrides=TINY))
  with pytest.raises(runs.RunError, match=f"Checkpoint {path} does not fit"):
    runs.restore(runs.make_checkpoint(
        other, env_steps=tf.Variable(0, dtype=tf.int64)), path)


def test_missing_files_are_clear_errors(tmp_path):
  with pytest.raises(runs.RunError, match="is not a tf_metagrad run"):
    runs.load_spec(str(tmp_path))
  _, learner, _ = _saved(tmp_path)
  with pytest.raises(runs.RunError, match="does not exist"):
    runs.restore(runs.make_checkpoint(learner), str(tmp_path / "nope"))
  (tmp_path / runs.SPEC_FILE).write_text("{not json")
  with pytest.raises(runs.RunError, match="is not valid JSON"):
    runs.load_spec(str(tmp_path))


def test_spec_without_the_new_fields_still_loads_and_resumes(tmp_path):
  # A run_spec.json as written before unroll_length, batch_size and
  # run_options were recorded.
  (tmp_path / runs.SPEC_FILE).write_text(
      '{"agent": "stac", "env": "catch", "seed": 2, '
      '"config_overrides": {"mlp_hidden_sizes": [8]}, "env_kwargs": {}, '
      '"derived_config": {}}')
  old = runs.load_spec(str(tmp_path))
  assert (old.unroll_length, old.batch_size, old.run_options) == (
      None, None, {})
  assert old.config_overrides == {"mlp_hidden_sizes": (8,)}
  request = runs.RunSpec(agent="stac", env="catch", seed=2,
                         config_overrides={"mlp_hidden_sizes": (8,)},
                         unroll_length=4, batch_size=6,
                         run_options={"total_env_steps": 100})
  resumed = runs.check_or_save_spec(str(tmp_path), request)
  assert resumed == request
  assert runs.load_spec(str(tmp_path)) == request


def test_run_options_are_recorded_not_compared(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY,
                      unroll_length=4, batch_size=6,
                      run_options={"total_env_steps": 100, "num_actors": 2})
  runs.check_or_save_spec(str(tmp_path), spec)
  longer = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY,
                        unroll_length=4, batch_size=6,
                        run_options={"total_env_steps": 500, "num_actors": 1})
  assert runs.check_or_save_spec(str(tmp_path), longer) == longer
  assert runs.load_spec(str(tmp_path)).run_options == longer.run_options
  # Tools that only rebuild the learner leave the sizes unset.
  assert runs.resolve_spec(str(tmp_path), runs.RunSpec(
      agent="stac", env="catch", config_overrides=TINY)) == (
          dataclasses.replace(longer, run_options={}))
  for name, value in [("batch_size", 8), ("unroll_length", 5)]:
    other = dataclasses.replace(longer, **{name: value})
    with pytest.raises(runs.RunError, match=f"{name}: stored"):
      runs.resolve_spec(str(tmp_path), other)


def _git(*args):
  """`git args` in the directory above the package: its stdout, or None
  where git is missing or fails there."""
  if shutil.which("git") is None:
    return None
  root = os.path.dirname(os.path.dirname(os.path.abspath(runs.__file__)))
  proc = subprocess.run(["git", *args], cwd=root, capture_output=True,
                        text=True, timeout=60, check=False)
  return proc.stdout.strip() if proc.returncode == 0 else None


def test_provenance_records_the_checkouts_commit():
  found = runs.provenance()
  assert set(found) == {"package_version", "git_commit"}
  root = os.path.dirname(os.path.dirname(os.path.abspath(runs.__file__)))
  top = _git("rev-parse", "--show-toplevel")
  if top is not None and os.path.realpath(top) == os.path.realpath(root):
    # A checkout whose top level holds the package: its HEAD, exactly.
    assert found["git_commit"] == _git("rev-parse", "HEAD")
  else:
    # An installed copy, perhaps inside another repository's tree, must
    # not report that repository's commit.
    assert found["git_commit"] is None
