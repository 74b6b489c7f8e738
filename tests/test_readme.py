"""The README's Python examples run as written.

Every ```python block of README.md is executed in order, in one namespace
(later blocks use the names of earlier ones, as a reader's session would),
from a temporary directory so that files they write land there.
"""

import contextlib
import io
import os
import re

import numpy as np

_README = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                       "README.md")


def _python_blocks():
  with open(_README, encoding="utf-8") as f:
    text = f.read()
  return re.findall(r"^```python\n(.*?)^```$", text, re.S | re.M)


def test_readme_has_python_blocks():
  assert len(_python_blocks()) >= 2


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  namespace = {"__name__": "__readme__"}
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    for i, block in enumerate(_python_blocks()):
      exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # pylint: disable=exec-used
  learner, batch = namespace["learner"], namespace["batch"]
  assert int(learner.learner_steps.numpy()) == 3
  assert float(learner.skipped_updates.numpy()) == 0
  assert np.isfinite(float(namespace["metrics"]["outer_loss"]))
  assert set(learner.meta_values()) == {"gamma", "lambda_", "alpha", "g_v",
                                        "g_p", "g_e"}
  # The export acts as the learner's greedy policy does.
  assert (tmp_path / "stac_catch_policy" / "saved_model.pb").exists()
  observation = batch.observation[-1]
  exported = namespace["policy"].greedy_action(observation).numpy()
  logits = learner.network(observation)[0][0]
  np.testing.assert_array_equal(exported, np.argmax(logits.numpy(), -1))
  printed = out.getvalue()
  assert "outer loss" in printed and "'gamma'" in printed, printed
