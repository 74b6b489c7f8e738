"""Run directories: spec round trip, checkpoint errors that name the file."""

import os

import pytest
import tensorflow as tf

from tf_metagrad import runs

TINY = {"mlp_hidden_sizes": (8,), "head_hidden_sizes": (8,)}


def _saved(tmp_path, agent="stac"):
  spec = runs.RunSpec(agent=agent, env="catch", config_overrides=TINY)
  runs.save_spec(str(tmp_path), spec)
  learner = runs.build_learner(spec)
  counter = tf.Variable(123, dtype=tf.int64)
  path = runs.checkpoint_manager(
      str(tmp_path), runs.make_checkpoint(learner, env_steps=counter)).save()
  return spec, learner, path


def test_spec_round_trip_and_restore(tmp_path):
  spec, learner, path = _saved(tmp_path)
  assert runs.load_spec(str(tmp_path)) == spec
  fresh = runs.build_learner(spec)
  counter = tf.Variable(0, dtype=tf.int64)
  runs.restore(runs.make_checkpoint(fresh, env_steps=counter), path)
  assert int(counter.numpy()) == 123
  for a, b in zip(learner.variables, fresh.variables):
    assert (a.numpy() == b.numpy()).all()


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
