"""Feedback state is part of the model: `.keras`, checkpoints, SavedModel.

For every algorithm of docs/algorithms.md §1, a small functional model mixing
tfbio Conv2D and Dense layers is trained a few steps; then

* a `.keras` save/load round trip gives bit-identical variables (feedback
  state and ``feedback_step`` included) and an identical continuation of
  training (for ``brsf``/``brsf_p`` this needs the step counter restored);
* a ``tf.train.Checkpoint`` restored into a freshly built model whose every
  variable was scrambled gives the same variables and the same continuation;
* an exported SavedModel serves the same predictions in a process where
  ``tfbio`` cannot be imported at all.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio

ALGORITHMS = tfbio.feedback.names()
EXPORT_ALGORITHMS = ["bp", "ss", "fa", "brsf", "urfb"]
# One algorithm per kind of feedback state (none, stored fixed B, trainable
# B, per-step counter, stored magnitudes + flips, stored random B): the
# checkpoint tests below; the .keras test runs every algorithm.
STATE_KINDS = ["bp", "fa", "urfb", "brsf_p", "frsf_p", "rndf"]
FEEDBACK_LAYERS = ("conv_a", "conv_b", "hidden", "logits")
BATCH = 4


def _algorithm(name):
  if name.endswith("_p"):
    return tfbio.feedback.get(name, flip_prob=0.3)
  return name


def _build(name, init_seed=0):
  """Functional model: Conv2D → Conv2D(stride 2) → Flatten → Dense → Dense.

  Layer seeds (which key the feedback randomness) are fixed; ``init_seed``
  only changes the initial values of kernels and biases.
  """
  fb = _algorithm(name)

  def init(i):
    return keras.initializers.GlorotUniform(seed=100 * init_seed + i)

  def bias(i):
    return keras.initializers.RandomUniform(-0.1, 0.1,
                                            seed=100 * init_seed + 50 + i)

  inputs = keras.Input((6, 6, 2), name="image")
  x = tfbio.layers.Conv2D(3, 3, padding="same", activation="relu",
                          feedback=fb, seed=11, kernel_initializer=init(1),
                          bias_initializer=bias(1), name="conv_a")(inputs)
  x = tfbio.layers.Conv2D(4, 3, strides=2, activation="tanh", feedback=fb,
                          seed=12, kernel_initializer=init(2),
                          bias_initializer=bias(2), name="conv_b")(x)
  x = keras.layers.Flatten()(x)
  x = tfbio.layers.Dense(5, activation="tanh", feedback=fb, seed=13,
                         kernel_initializer=init(3), bias_initializer=bias(3),
                         name="hidden")(x)
  outputs = tfbio.layers.Dense(3, feedback=fb, seed=14,
                               kernel_initializer=init(4),
                               bias_initializer=bias(4), name="logits")(x)
  model = keras.Model(inputs, outputs, name="state_model")
  model.compile(
      optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def _data(n_steps, offset=0):
  rng = np.random.default_rng(7 + offset)
  x = rng.normal(size=(BATCH * n_steps, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 3, size=(BATCH * n_steps,)).astype("int32")
  return x, y


def _fit(model, n_steps, offset=0):
  x, y = _data(n_steps, offset)
  model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)


def _variables(model):
  """``{path: value}`` of every model variable, failing on duplicate paths."""
  values = {}
  for v in model.variables:
    assert v.path not in values, f"duplicate variable path {v.path}"
    values[v.path] = np.array(v.numpy())
  return values


def _optimizer_variables(model):
  return [np.array(v.numpy()) for v in model.optimizer.variables]


def _feedback_kernels(model):
  return {n: np.array(model.get_layer(n).feedback_kernel())
          for n in FEEDBACK_LAYERS}


def _assert_same_arrays(a, b, what):
  assert sorted(a) == sorted(b), f"{what}: different variables"
  for key in a:
    assert a[key].dtype == b[key].dtype, f"{what}: dtype of {key}"
    assert np.array_equal(a[key], b[key]), f"{what}: {key} differs"


def _expected_state_names(name):
  """Variable names (without layer prefix) each feedback layer must have."""
  base = {"kernel", "bias"}
  extra = {
      "brsf": {"feedback_step"},
      "brsf_p": {"feedback_step"},
      "frsf": {"feedback_magnitude"},
      "frsf_p": {"feedback_magnitude", "feedback_flips"},
      "rndf": {"feedback_kernel"},
      "fa": {"feedback_kernel"},
      "frfb": {"feedback_kernel"},
      "urfb": {"feedback_kernel"},
      "kp": {"feedback_kernel"},
  }
  return base | extra.get(name, set())


def _check_state_layout(model, name):
  for layer_name in FEEDBACK_LAYERS:
    layer = model.get_layer(layer_name)
    assert isinstance(layer, tfbio.layers.BaseFeedbackLayer)
    assert {v.name for v in layer.variables} == _expected_state_names(name)
  if name in ("brsf", "brsf_p"):
    for layer_name in FEEDBACK_LAYERS:
      step = model.get_layer(layer_name).feedback_step
      assert step.dtype == "int64"


def _scramble(model, seed=99):
  """Gives every model variable a different value than it had."""
  rng = np.random.default_rng(seed)
  for v in model.variables:
    old = np.array(v.numpy())
    if v.dtype.startswith("int"):
      new = old + 1000 + rng.integers(1, 50, size=old.shape).astype(old.dtype)
    else:
      new = (old + rng.uniform(0.5, 1.0, size=old.shape)).astype(old.dtype)
    v.assign(new)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_keras_file_round_trip_and_continued_training(name, tmp_path):
  model = _build(name)
  _check_state_layout(model, name)
  _fit(model, 2)
  if name in ("brsf", "brsf_p"):
    for layer_name in FEEDBACK_LAYERS:
      assert int(model.get_layer(layer_name).feedback_step.numpy()) == 2

  path = str(tmp_path / f"model_{name}.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)

  assert loaded is not model
  for layer_name in FEEDBACK_LAYERS:
    orig, new = model.get_layer(layer_name), loaded.get_layer(layer_name)
    assert type(new) is type(orig)
    assert new.feedback == orig.feedback
    assert new.seed == orig.seed
  _assert_same_arrays(_variables(model), _variables(loaded), "after load")
  _assert_same_arrays(_feedback_kernels(model), _feedback_kernels(loaded),
                      "feedback_kernel() after load")
  assert len(model.optimizer.variables) == len(loaded.optimizer.variables)
  for a, b in zip(_optimizer_variables(model), _optimizer_variables(loaded)):
    assert np.array_equal(a, b)
  x, _ = _data(1, offset=5)
  np.testing.assert_array_equal(model.predict(x, verbose=0),
                                loaded.predict(x, verbose=0))

  before = _variables(model)
  _fit(model, 2, offset=1)
  _fit(loaded, 2, offset=1)
  after = _variables(model)
  # Training actually moved the weights (else the comparison is vacuous).
  assert not np.array_equal(before["conv_a/kernel"], after["conv_a/kernel"])
  _assert_same_arrays(after, _variables(loaded), "after continued training")
  _assert_same_arrays(_feedback_kernels(model), _feedback_kernels(loaded),
                      "feedback_kernel() after continued training")


@pytest.mark.parametrize("name", STATE_KINDS)
def test_checkpoint_restore_into_fresh_model(name, tmp_path):
  model = _build(name, init_seed=0)
  _fit(model, 2)
  ckpt_path = tf.train.Checkpoint(
      model=model, optimizer=model.optimizer).save(str(tmp_path / "ckpt"))

  fresh = _build(name, init_seed=1)
  fresh.optimizer.build(fresh.trainable_variables)
  # A fresh build differs from the trained model before restoring...
  assert not np.array_equal(fresh.get_layer("hidden").kernel.numpy(),
                            model.get_layer("hidden").kernel.numpy())
  # ...and every variable (feedback state, step counter) is made to differ.
  _scramble(fresh)
  for key, value in _variables(fresh).items():
    assert not np.array_equal(value, _variables(model)[key]), key
  status = tf.train.Checkpoint(
      model=fresh, optimizer=fresh.optimizer).restore(ckpt_path)
  status.assert_existing_objects_matched()

  _assert_same_arrays(_variables(model), _variables(fresh), "after restore")
  _assert_same_arrays(_feedback_kernels(model), _feedback_kernels(fresh),
                      "feedback_kernel() after restore")
  assert len(model.optimizer.variables) == len(fresh.optimizer.variables)
  for a, b in zip(_optimizer_variables(model), _optimizer_variables(fresh)):
    assert np.array_equal(a, b)

  _fit(model, 2, offset=1)
  _fit(fresh, 2, offset=1)
  _assert_same_arrays(_variables(model), _variables(fresh),
                      "after continued training")
  _assert_same_arrays(_feedback_kernels(model), _feedback_kernels(fresh),
                      "feedback_kernel() after continued training")


@pytest.mark.parametrize("name", STATE_KINDS)
def test_checkpoint_of_model_alone_holds_feedback_state(name, tmp_path):
  """Without the optimizer in the checkpoint (whose slots also reach the
  trainable variables), the model's own object graph must hold all state."""
  model = _build(name)
  for layer_name in FEEDBACK_LAYERS:
    step = model.get_layer(layer_name).feedback_step
    if step is not None:
      step.assign(5)
  ckpt_path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  fresh = _build(name, init_seed=1)
  _scramble(fresh)
  tf.train.Checkpoint(model=fresh).restore(
      ckpt_path).assert_existing_objects_matched()
  _assert_same_arrays(_variables(model), _variables(fresh), "after restore")
  _assert_same_arrays(_feedback_kernels(model), _feedback_kernels(fresh),
                      "feedback_kernel() after restore")


_SERVE_SCRIPT = textwrap.dedent("""
    import importlib.abc
    import json
    import sys


    class _NoTfbio(importlib.abc.MetaPathFinder):
      def find_spec(self, fullname, path=None, target=None):
        if fullname == "tfbio" or fullname.startswith("tfbio."):
          raise ImportError("tfbio is blocked in this process: " + fullname)
        return None


    sys.meta_path.insert(0, _NoTfbio())
    try:
      import tfbio  # noqa: F401
    except ImportError:
      pass
    else:
      raise SystemExit("the tfbio import blocker does not work")

    import numpy as np
    import tensorflow as tf

    jobs = json.loads(sys.argv[1])
    for job in jobs:
      x = np.load(job["input"])
      # Keep a reference: the loaded object owns the variables.
      loaded = tf.saved_model.load(job["export"])
      served = loaded.serve(tf.constant(x))
      np.save(job["output"], np.asarray(served))
    assert not any(m == "tfbio" or m.startswith("tfbio.")
                   for m in sys.modules), "tfbio got imported"
    print("SERVED", len(jobs))
    """)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """Trains and exports one model per algorithm; serves them all in a single
  subprocess that cannot import tfbio. Returns ``{name: (expected, got)}``."""
  root = tmp_path_factory.mktemp("export")
  jobs, expected = [], {}
  for name in EXPORT_ALGORITHMS:
    keras.utils.clear_session()
    model = _build(name)
    _fit(model, 2)
    x, _ = _data(2, offset=3)
    expected[name] = model.predict(x, verbose=0)
    export_dir = str(root / f"export_{name}")
    model.export(export_dir, verbose=False)
    np.save(str(root / f"x_{name}.npy"), x)
    jobs.append({"export": export_dir, "input": str(root / f"x_{name}.npy"),
                 "output": str(root / f"y_{name}.npy")})
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-c", _SERVE_SCRIPT, json.dumps(jobs)],
      capture_output=True, text=True, timeout=300, cwd=str(root), env=env,
      check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert f"SERVED {len(jobs)}" in proc.stdout
  return {name: (expected[name], np.load(job["output"]))
          for name, job in zip(EXPORT_ALGORITHMS, jobs)}


@pytest.mark.parametrize("name", EXPORT_ALGORITHMS)
def test_saved_model_serves_without_tfbio(name, exported):
  expected, got = exported[name]
  assert got.shape == expected.shape == (2 * BATCH, 3)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
