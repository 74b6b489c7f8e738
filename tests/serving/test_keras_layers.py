"""Our torso and head inside someone else's functional Keras model.

The model round-trips through every format Keras 2.15 writes: `.keras`,
SavedModel and H5 (which needs weight names unique within the model). A
`.keras` file names our classes by their registered names, which Keras 2.15
resolves only through its registry: `tf_metagrad` must be imported before
`load_model` (checked in a fresh process).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import networks


def _data(seed=0, size=64):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(size, 7)).astype(np.float32)
  labels = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
  returns = (x[:, 2] - x[:, 3]).astype(np.float32)
  return x, labels, returns


def _model():
  inputs = tf.keras.Input(shape=(7,), name="features")
  hidden = tf.keras.layers.Dense(12, activation="tanh", name="adapter")(
      inputs)
  torso = networks.MLPTorso((16, 16), name="torso")(hidden)
  logits, value = networks.PolicyValueHead(3, (16,), name="head")(torso)
  logits = tf.keras.layers.Activation("linear", name="logits")(logits)
  value = tf.keras.layers.Activation("linear", name="value")(value)
  return tf.keras.Model(inputs, {"logits": logits, "value": value})


def _fitted_model():
  tf.keras.utils.set_random_seed(3)
  model = _model()
  model.compile(
      optimizer=tf.keras.optimizers.Adam(1e-2),
      loss={"logits": tf.keras.losses.SparseCategoricalCrossentropy(
          from_logits=True), "value": "mse"})
  x, labels, returns = _data()
  before = [v.numpy() for v in model.trainable_variables]
  history = model.fit(x, {"logits": labels, "value": returns}, batch_size=32,
                      epochs=1, shuffle=False, verbose=0)
  assert len(history.history["loss"]) == 1  # One epoch: two steps of 32.
  after = [v.numpy() for v in model.trainable_variables]
  # Every weight of our layers trained, not only Keras' own Dense.
  ours = [v.name for v in model.trainable_variables
          if not v.name.startswith("adapter")]
  assert len(ours) == 4 + 4 + 4  # torso 2 layers, policy/value MLPs 2 each.
  assert all(not np.array_equal(b, a) for b, a in zip(before, after))
  return model


def test_weight_names_are_unique():
  names = [v.name for v in _model().weights]
  assert len(set(names)) == len(names), names
  assert "torso/mlp/linear_1/kernel:0" in names
  assert "head/value/linear_0/bias:0" in names


@pytest.mark.parametrize("suffix", [".keras", "_savedmodel", ".h5"])
def test_fit_save_load_predict(tmp_path, suffix):
  model = _fitted_model()
  path = os.path.join(tmp_path, "model" + suffix)
  model.save(path)
  loaded = tf.keras.models.load_model(path)
  assert isinstance(loaded.get_layer("torso"), networks.MLPTorso)
  assert isinstance(loaded.get_layer("head"), networks.PolicyValueHead)
  test_x = _data(seed=1, size=10)[0]
  expected = model.predict(test_x, verbose=0)
  got = loaded.predict(test_x, verbose=0)
  assert sorted(got) == ["logits", "value"]
  assert got["logits"].shape == (10, 3) and got["value"].shape == (10,)
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key])
  for a, b in zip(model.variables, loaded.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


_LOAD_IN_FRESH_PROCESS = textwrap.dedent("""
    import json
    import sys
    import numpy as np
    import tensorflow as tf
    path, inputs_path, graph_options = sys.argv[1:]
    tf.config.optimizer.set_experimental_options(json.loads(graph_options))
    try:
      tf.keras.models.load_model(path)
      print("without import: loaded")
    except TypeError as e:
      print(f"without import: {type(e).__name__}: {e}")
    import tf_metagrad.networks  # registers our layers with Keras
    model = tf.keras.models.load_model(path)
    got = model.predict(np.load(inputs_path)["x"], verbose=0)
    np.savez(inputs_path.replace("inputs", "outputs"), **got)
    print("with import: loaded", type(model.get_layer("torso")).__name__)
""")


def test_keras_file_loads_in_a_fresh_process_after_import(tmp_path):
  model = _fitted_model()
  path = os.path.join(tmp_path, "model.keras")
  model.save(path)
  test_x = _data(seed=1, size=10)[0]
  inputs_path = os.path.join(tmp_path, "inputs.npz")
  np.savez(inputs_path, x=test_x)
  expected = model.predict(test_x, verbose=0)
  # The fresh process optimizes its graphs as this one does (see
  # tests/conftest.py): with another set of Grappler passes, Keras' Dense
  # layers would run fused and unfused kernels, which round differently.
  graph_options = json.dumps(tf.config.optimizer.get_experimental_options())
  result = subprocess.run(
      [sys.executable, "-c", _LOAD_IN_FRESH_PROCESS, path, inputs_path,
       graph_options],
      capture_output=True, text=True, timeout=300, check=False,
      cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  # Keras 2.15 looks layer classes up only in its registry; before the
  # import it hands the class name on as if it were the layer.
  assert ("without import: TypeError: 'str' object is not callable"
          in lines), result.stdout
  assert "with import: loaded MLPTorso" in lines, result.stdout
  got = np.load(os.path.join(tmp_path, "outputs.npz"))
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key])
