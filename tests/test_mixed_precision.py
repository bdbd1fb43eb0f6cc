"""Every tfbio layer under Keras mixed precision (float16 and bfloat16).

Under ``mixed_float16`` / ``mixed_bfloat16`` a layer keeps every variable
(``W``, ``B``, masks, ``M``, sign references) in float32, computes in the
policy's compute dtype, and its output and gradients (input, kernel, bias,
``urfb``'s ``B``) match the float32 layer's with the same weights within
the compute dtype's tolerance. ``brsf`` checks that a per-step draw is the
float32 layer's draw (rounded), not a different random stream.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio

L = tfbio.layers
POLICIES = ("mixed_float16", "mixed_bfloat16")
# Relative tolerance (of the largest entry) per compute dtype: float16 has
# 11 significant bits, bfloat16 8.
TOLERANCE = {"float16": 1e-2, "bfloat16": 5e-2}
FEEDBACKS = ("fa", "brsf", "urfb")
FEEDBACK_KW = dict(density=0.5, feedback_density=0.5, sign_fixed=True)

# name -> (factory(feedback), input shapes); one input unless two shapes.
LAYERS = {
    "Dense": (lambda f: L.Dense(4, feedback=f, seed=3, **FEEDBACK_KW),
              [(3, 5)]),
    "Conv2D": (lambda f: L.Conv2D(3, 3, padding="same", feedback=f, seed=3,
                                  **FEEDBACK_KW), [(2, 6, 6, 2)]),
    "Conv1D": (lambda f: L.Conv1D(3, 3, feedback=f, seed=3, **FEEDBACK_KW),
               [(2, 8, 2)]),
    "Conv3D": (lambda f: L.Conv3D(2, 2, feedback=f, seed=3, **FEEDBACK_KW),
               [(2, 4, 4, 4, 2)]),
    "Conv1DTranspose": (lambda f: L.Conv1DTranspose(
        3, 3, strides=2, feedback=f, seed=3, **FEEDBACK_KW), [(2, 5, 2)]),
    "Conv2DTranspose": (lambda f: L.Conv2DTranspose(
        3, 3, strides=2, feedback=f, seed=3, **FEEDBACK_KW), [(2, 4, 4, 2)]),
    "Conv3DTranspose": (lambda f: L.Conv3DTranspose(
        2, 2, strides=2, feedback=f, seed=3, **FEEDBACK_KW),
                        [(2, 3, 3, 3, 2)]),
    "DepthwiseConv1D": (lambda f: L.DepthwiseConv1D(
        3, feedback=f, seed=3, **FEEDBACK_KW), [(2, 8, 3)]),
    "DepthwiseConv2D": (lambda f: L.DepthwiseConv2D(
        3, padding="same", feedback=f, seed=3, **FEEDBACK_KW),
                        [(2, 6, 6, 3)]),
    "SeparableConv1D": (lambda f: L.SeparableConv1D(
        4, 3, feedback=f, seed=3, **FEEDBACK_KW), [(2, 8, 3)]),
    "SeparableConv2D": (lambda f: L.SeparableConv2D(
        4, 3, feedback=f, seed=3, **FEEDBACK_KW), [(2, 6, 6, 3)]),
    "EinsumDense": (lambda f: L.EinsumDense(
        "abc,cd->abd", output_shape=(None, 4), bias_axes="d", feedback=f,
        seed=3, **FEEDBACK_KW), [(2, 3, 5)]),
    "MultiHeadAttention": (lambda f: L.MultiHeadAttention(
        2, 4, feedback=f, feedback_seed=3, **FEEDBACK_KW),
                           [(2, 3, 8), (2, 4, 8)]),
    "BatchNorm": (lambda f: L.affine_free_batch_norm(), [(6, 4)]),
}
for _impl in ("dense", "sparse", "offsets"):
  LAYERS[f"LocallyConnected2D_{_impl}"] = (
      lambda f, impl=_impl: L.LocallyConnected2D(
          3, 3, strides=(1, 2), padding="same", implementation=impl,
          feedback=f, seed=3, **FEEDBACK_KW), [(2, 6, 7, 2)])


@pytest.fixture
def policy(request):
  """Sets the global dtype policy for one test and restores it after."""
  before = keras.config.dtype_policy()
  keras.config.set_dtype_policy(request.param)
  yield request.param
  keras.config.set_dtype_policy(before)


def _call(layer, inputs, training=True):
  return layer(*inputs, training=training) if len(inputs) > 1 else layer(
      inputs[0], training=training)


def _grads(layer, inputs, g):
  """Output, input gradients and ``{variable path: gradient}`` (float32;
  paths without the layer's own name)."""
  inputs = [tf.constant(x) for x in inputs]
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    y = _call(layer, inputs)
    loss = tf.reduce_sum(tf.cast(y, tf.float32) * g)
  variables = layer.trainable_variables
  grads = tape.gradient(loss, inputs + variables)
  as32 = lambda t: None if t is None else tf.cast(t, tf.float32).numpy()
  return (y, [as32(t) for t in grads[:len(inputs)]],
          {v.path.split("/", 1)[-1]: as32(t)
           for v, t in zip(variables, grads[len(inputs):])})


def _close(got, want, tol, what, floor=1e-3):
  """``|got - want| <= tol * max(|want|_max, floor)``: ``floor`` bounds a
  gradient that is exactly 0 in exact arithmetic (a key bias: softmax does
  not see it) by the case's gradient scale."""
  assert got is not None and want is not None, what
  scale = max(float(np.abs(want).max()), floor)
  np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale,
                             err_msg=what)


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_under_mixed_precision_matches_float32(name, policy):
  factory, shapes = LAYERS[name]
  compute = keras.mixed_precision.Policy(policy).compute_dtype
  rng = np.random.default_rng(0)
  inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
  feedbacks = FEEDBACKS if name != "BatchNorm" else ("bp",)
  for feedback in feedbacks:
    case = f"{name}/{policy}/{feedback}"
    mixed = factory(feedback)
    _call(mixed, inputs, training=False)  # builds
    reference = _float32_twin(factory, feedback, inputs, mixed)
    assert mixed.compute_dtype == compute, case
    for v in mixed.weights:
      if v.dtype not in ("int64", "int32"):
        assert v.dtype == "float32", f"{case}: {v.path} is {v.dtype}"
    y_ref = _call(reference, inputs, training=False)
    g = tf.constant(rng.standard_normal(y_ref.shape).astype(np.float32))
    y_ref, dx_ref, dw_ref = _grads(reference, inputs, g)
    y, dx, dw = _grads(mixed, inputs, g)
    assert y.dtype == compute, case
    tol = TOLERANCE[compute]
    _close(tf.cast(y, tf.float32).numpy(), y_ref.numpy(), tol, f"{case}: y")
    for i, (a, b) in enumerate(zip(dx, dx_ref)):
      _close(a, b, tol, f"{case}: dx{i}")
    assert sorted(dw) == sorted(dw_ref), case
    floor = 0.1 * max([float(np.abs(t).max()) for t in dw_ref.values()],
                      default=0.0)
    for path in dw_ref:
      _close(dw[path], dw_ref[path], tol, f"{case}: d {path}", floor)


def _float32_twin(factory, feedback, inputs, mixed):
  """The same layer in float32 with ``mixed``'s variable values."""
  before = keras.config.dtype_policy()
  keras.config.set_dtype_policy("float32")
  try:
    reference = factory(feedback)
    _call(reference, inputs, training=False)
  finally:
    keras.config.set_dtype_policy(before)
  assert len(reference.weights) == len(mixed.weights)
  for r, m in zip(reference.weights, mixed.weights):
    r.assign(m.numpy())
  return reference


# -- tfbio-train's mixed_precision field ----------------------------------------


def _tiny_config(mixed_precision):
  from tfbio.train import config as config_lib  # pylint: disable=g-import-not-at-top

  c = config_lib.base_config()
  c.model.name = "simpnet"
  c.feedback = "brsf"
  c.data.name = "digits"
  c.batch_size = 16
  c.epochs = 1
  c.steps_per_epoch = 4
  c.data.max_eval_examples = 32
  c.alignment = False
  c.mixed_precision = mixed_precision
  return c


def test_mixed_precision_config_is_validated():
  from tfbio.train import config as config_lib  # pylint: disable=g-import-not-at-top

  with pytest.raises(ValueError, match="mixed_precision.*'float8'"):
    config_lib.validate(_tiny_config("float8"))
  config_lib.validate(_tiny_config(None))
  text = config_lib.to_json(_tiny_config("mixed_bfloat16"))
  assert config_lib.from_json(text).mixed_precision == "mixed_bfloat16"


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_a_few_training_steps_under_each_policy_are_finite(policy, tmp_path):
  from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top

  keras.config.set_dtype_policy("float32")  # the config sets it
  trainer = run_lib.make_trainer(_tiny_config(policy), str(tmp_path / "run"))
  trainer.setup_data()
  trainer.setup_model()
  assert keras.config.dtype_policy().name == policy
  assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) is (
      policy == "mixed_float16")
  before = [v.numpy().copy() for v in trainer.train_vars]
  assert all(v.dtype == "float32" for v in trainer.train_vars)
  # A few steps: float16's dynamic loss scale starts at 2**15 and skips
  # (and halves on) a step whose scaled gradients overflow.
  step = trainer._train_step_fn()  # pylint: disable=protected-access
  batches = iter(trainer._train_dataset(0, 0))  # pylint: disable=protected-access
  for _ in range(trainer.steps_per_epoch):
    metrics = step(batches)
    assert np.isfinite(float(metrics["loss"])), metrics
  after = [v.numpy() for v in trainer.train_vars]
  assert all(np.isfinite(a).all() for a in after)
  moved = any(np.abs(a - b).max() > 0 for a, b in zip(after, before))
  if policy == "mixed_float16":
    # Updated, or every step skipped as overflowing (the scale halved each
    # time; digits' unnormalised pixels make the first scales overflow).
    scale = float(trainer.optimizer.dynamic_scale)
    assert moved or scale == 32768.0 / 2**trainer.steps_per_epoch, scale
  else:
    assert moved
