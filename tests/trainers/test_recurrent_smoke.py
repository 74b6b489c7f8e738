"""A recurrent (LSTM-core) agent trains end to end through Reverb, exports,
and its greedy evaluation carries the core state."""

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.trainers import loop
from tf_metagrad.trainers import outputs
from tests.trainers import test_train_smoke as smoke


def test_recurrent_stac_trains_and_exports(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch",
                      config_overrides=dict(smoke.TINY, core_units=8),
                      seed=5)
  lines = []
  summary = loop.train(spec, smoke._options(tmp_path), log=lines.append)
  assert summary["status"] == "completed", lines
  assert summary["learner_steps"] > 0
  assert np.isfinite(summary["final_eval_mean_return"])
  loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
  metadata = loaded.get_metadata()
  assert bool(metadata["recurrent"].numpy())
  state = loaded.get_initial_state(tf.constant(3, tf.int64))
  assert sorted(state) == ["core_state_0", "core_state_1"]
  assert state["core_state_0"].shape == (3, 8)
  rows = [r for r in outputs.read_metrics(str(tmp_path))[1]
          if r.get("skipped_updates")]
  assert rows and float(rows[-1]["skipped_updates"]) == 0.0
