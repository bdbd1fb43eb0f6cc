"""Mirrored training equals single-device training, for every algorithm.

docs/algorithms.md §1: per-step random feedback (``brsf``, ``brsf_p``) must draw
the same ``B`` on every replica of a distributed step, and fixed feedback state
(``fa``, ``rndf``, ``frsf*``, ``urfb``) is identical across replicas. So a model
trained under ``MirroredStrategy`` on two CPU devices with the same global batch
must end with the weights (and feedback state, and ``feedback_step``) of the
same model trained on one device.

Only ONE MirroredStrategy is created per process (``strategy`` fixture):
several strategies in one process collide on collective instance keys.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio

ALGORITHMS = tfbio.feedback.names()
FEEDBACK_LAYERS = ("conv_a", "conv_b", "hidden", "logits")
GLOBAL_BATCH = 8
STEPS = 3
ATOL = 1e-5


# The session-wide `strategy` fixture lives in conftest.py.


def _algorithm(name):
  if name.endswith("_p"):
    return tfbio.feedback.get(name, flip_prob=0.3)
  return name


def _build(name, **options):
  """Small Conv2D/Dense model whose initial values depend only on seeds.

  ``options`` (density, feedback_density, sign_fixed) reach every layer.
  """
  fb = _algorithm(name)

  def init(i):
    return keras.initializers.GlorotUniform(seed=i)

  def bias(i):
    return keras.initializers.RandomUniform(-0.1, 0.1, seed=50 + i)

  inputs = keras.Input((6, 6, 2))
  x = tfbio.layers.Conv2D(3, 3, padding="same", activation="relu",
                          feedback=fb, seed=21, kernel_initializer=init(1),
                          **options,
                          bias_initializer=bias(1), name="conv_a")(inputs)
  x = tfbio.layers.Conv2D(4, 3, strides=2, activation="tanh", feedback=fb,
                          seed=22, kernel_initializer=init(2), **options,
                          bias_initializer=bias(2), name="conv_b")(x)
  x = keras.layers.Flatten()(x)
  x = tfbio.layers.Dense(6, activation="tanh", feedback=fb, seed=23,
                         **options,
                         kernel_initializer=init(3), bias_initializer=bias(3),
                         name="hidden")(x)
  outputs = tfbio.layers.Dense(3, feedback=fb, seed=24, **options,
                               kernel_initializer=init(4),
                               bias_initializer=bias(4), name="logits")(x)
  model = keras.Model(inputs, outputs)
  # jit_compile=False on both sides: Keras' "auto" would turn XLA on for a
  # single-device run on a GPU host but not under tf.distribute, and brsf's
  # stateless draws differ between XLA and non-XLA execution.
  model.compile(
      optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      jit_compile=False)
  return model


def _data():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(GLOBAL_BATCH * STEPS, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 3, size=(GLOBAL_BATCH * STEPS,)).astype("int32")
  return x, y


def _fit(model):
  x, y = _data()
  model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False,
            verbose=0)


def _variables(model):
  values = {}
  for v in model.variables:
    assert v.path not in values, f"duplicate variable path {v.path}"
    values[v.path] = np.array(v.numpy())
  return values


def _replica_values(variable):
  """Per-device values of a (mirrored) Keras variable."""
  tf_var = variable.value if hasattr(variable, "value") else variable
  components = getattr(tf_var, "values", None)
  if components is None:
    components = [tf_var]
  return [np.array(c.numpy()) for c in components]


def _assert_close(a, b, what):
  assert sorted(a) == sorted(b), f"{what}: different variables"
  for key in a:
    assert a[key].dtype == b[key].dtype, f"{what}: dtype of {key}"
    if a[key].dtype.kind in "iu":
      assert np.array_equal(a[key], b[key]), f"{what}: {key}"
    else:
      np.testing.assert_allclose(a[key], b[key], rtol=0, atol=ATOL,
                                 err_msg=f"{what}: {key}")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_mirrored_training_equals_single_device(name, strategy):
  single = _build(name)
  with strategy.scope():
    mirrored = _build(name)
  assert mirrored.distribute_strategy is strategy
  # Same initial state, feedback state included.
  _assert_close(_variables(single), _variables(mirrored), "initial")

  before = _variables(single)
  _fit(single)
  _fit(mirrored)
  after = _variables(single)
  assert not np.allclose(before["hidden/kernel"], after["hidden/kernel"])
  _assert_close(after, _variables(mirrored), "after training")

  for layer_name in FEEDBACK_LAYERS:
    layer = mirrored.get_layer(layer_name)
    # Every variable holds the same value on both replicas.
    for v in layer.variables:
      values = _replica_values(v)
      assert len(values) == 2, f"{v.path} is not mirrored"
      for other in values[1:]:
        np.testing.assert_array_equal(values[0], other, err_msg=v.path)
    if name in ("brsf", "brsf_p"):
      assert int(single.get_layer(layer_name).feedback_step.numpy()) == STEPS
      assert [int(s) for s in _replica_values(layer.feedback_step)] == (
          [STEPS, STEPS])
    np.testing.assert_allclose(
        np.array(layer.feedback_kernel()),
        np.array(single.get_layer(layer_name).feedback_kernel()),
        rtol=0, atol=ATOL, err_msg=layer_name)


def _per_replica_feedback_kernels(strategy, model):
  @tf.function
  def step():
    def replica_fn():
      return [model.get_layer(n).feedback_kernel() for n in FEEDBACK_LAYERS]
    return strategy.run(replica_fn)

  per_replica = step()
  return [[np.array(t) for t in strategy.experimental_local_results(r)]
          for r in per_replica]


@pytest.mark.parametrize("name", ["brsf", "brsf_p"])
def test_per_step_feedback_identical_on_replicas(name, strategy):
  with strategy.scope():
    model = _build(name)
  draws = []
  n_steps = 2
  for step in range(n_steps + 1):
    kernels = _per_replica_feedback_kernels(strategy, model)
    for layer_name, replicas in zip(FEEDBACK_LAYERS, kernels):
      assert len(replicas) == 2
      np.testing.assert_array_equal(replicas[0], replicas[1],
                                    err_msg=f"{layer_name} at step {step}")
      # B = M ∘ sign(W) [∘ S_p]: |B| <= 1, and B is not W itself.
      assert np.all(np.abs(replicas[0]) <= 1.0)
      kernel = model.get_layer(layer_name).kernel.numpy()
      assert not np.allclose(replicas[0], kernel)
    draws.append(kernels)
    if step < n_steps:
      x, y = _data()
      model.fit(x[:GLOBAL_BATCH], y[:GLOBAL_BATCH], batch_size=GLOBAL_BATCH,
                epochs=1, shuffle=False, verbose=0)
      for n in FEEDBACK_LAYERS:
        assert [int(s) for s in _replica_values(
            model.get_layer(n).feedback_step)] == [step + 1, step + 1]
  # Each step draws a different B (so the equality above is not trivial).
  for a, b in zip(draws, draws[1:]):
    assert not np.allclose(np.abs(a[2][0]), np.abs(b[2][0]))


@pytest.mark.parametrize("name", ["fa", "urfb"])
def test_fixed_feedback_state_identical_on_replicas(name, strategy):
  with strategy.scope():
    model = _build(name)
  single = _build(name)
  for step in range(2):
    kernels = _per_replica_feedback_kernels(strategy, model)
    for layer_name, replicas in zip(FEEDBACK_LAYERS, kernels):
      np.testing.assert_array_equal(replicas[0], replicas[1],
                                    err_msg=f"{layer_name} at step {step}")
      layer = model.get_layer(layer_name)
      state = [v for v in layer.variables
               if v.name.startswith("feedback_")]
      assert state, f"{layer_name} has no feedback state"
      for v in state:
        values = _replica_values(v)
        assert len(values) == 2
        np.testing.assert_array_equal(values[0], values[1], err_msg=v.path)
      if step == 0:
        np.testing.assert_array_equal(
            replicas[0], np.array(single.get_layer(layer_name)
                                  .feedback_kernel()))
    if step == 0:
      _fit(model)


@pytest.mark.parametrize("name", ["fa", "urfb", "brsf"])
def test_mirrored_masks_and_sign_fixed(name, strategy):
  # The kernel constraint (mask + sign fix) runs inside the distributed
  # optimizer update: results must match one device and stay exact.
  options = dict(density=0.5, feedback_density=0.5, sign_fixed=True)
  single = _build(name, **options)
  with strategy.scope():
    mirrored = _build(name, **options)
  _fit(single)
  _fit(mirrored)
  _assert_close(_variables(single), _variables(mirrored), "after training")
  for layer_name in FEEDBACK_LAYERS:
    layer = mirrored.get_layer(layer_name)
    kernel = layer.kernel.numpy()
    mask = layer.kernel_mask.numpy()
    assert 0 < mask.sum() < mask.size
    assert np.all(kernel[mask == 0] == 0), layer_name
    kept = mask == 1
    np.testing.assert_array_equal(np.sign(kernel[kept]),
                                  layer.sign_reference.numpy()[kept])
    b = np.array(layer.feedback_kernel())
    assert np.all(b[layer.feedback_mask.numpy() == 0] == 0), layer_name


def _build_lc(name, implementation="dense"):
  """LC → LC(stride 2) → Flatten → Dense, initial values fixed by seeds."""
  fb = _algorithm(name)

  def init(i):
    return keras.initializers.GlorotUniform(seed=i)

  def bias(i):
    return keras.initializers.RandomUniform(-0.1, 0.1, seed=50 + i)

  lc = tfbio.layers.LocallyConnected2D
  inputs = keras.Input((6, 6, 2))
  x = lc(3, 3, padding="same", activation="relu", feedback=fb, seed=31,
         implementation=implementation, kernel_initializer=init(1),
         bias_initializer=bias(1), name="lc_a")(inputs)
  x = lc(4, 3, strides=2, activation="tanh", feedback=fb, seed=32,
         implementation=implementation, kernel_initializer=init(2),
         bias_initializer=bias(2), name="lc_b")(x)
  x = keras.layers.Flatten()(x)
  outputs = tfbio.layers.Dense(3, feedback=fb, seed=33,
                               kernel_initializer=init(3),
                               bias_initializer=bias(3), name="logits")(x)
  model = keras.Model(inputs, outputs)
  # jit_compile=False on both sides: Keras' "auto" would turn XLA on for a
  # single-device run on a GPU host but not under tf.distribute, and brsf's
  # stateless draws differ between XLA and non-XLA execution.
  model.compile(
      optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      jit_compile=False)
  return model


@pytest.mark.parametrize("name", ["bp", "fa", "brsf", "urfb"])
def test_lc_mirrored_training_equals_single_device(name, strategy):
  single = _build_lc(name)
  with strategy.scope():
    mirrored = _build_lc(name)
  assert mirrored.distribute_strategy is strategy
  for model in (single, mirrored):
    for layer_name in ("lc_a", "lc_b"):
      assert model.get_layer(layer_name).resolved_implementation == "dense"
  _assert_close(_variables(single), _variables(mirrored), "initial")

  before = _variables(single)
  _fit(single)
  _fit(mirrored)
  after = _variables(single)
  for layer_name in ("lc_a", "lc_b"):
    key = f"{layer_name}/kernel"
    assert not np.allclose(before[key], after[key]), key
  _assert_close(after, _variables(mirrored), "after training")

  for layer_name in ("lc_a", "lc_b", "logits"):
    layer = mirrored.get_layer(layer_name)
    for v in layer.variables:
      values = _replica_values(v)
      assert len(values) == 2, f"{v.path} is not mirrored"
      np.testing.assert_array_equal(values[0], values[1], err_msg=v.path)
    if name == "brsf":
      assert [int(s) for s in _replica_values(layer.feedback_step)] == (
          [STEPS, STEPS])
    np.testing.assert_allclose(
        np.array(layer.feedback_kernel()),
        np.array(single.get_layer(layer_name).feedback_kernel()),
        rtol=0, atol=ATOL, err_msg=layer_name)


def test_batch_manhattan_signs_the_all_reduced_gradient(strategy):
    # liao2016 §3 / docs/algorithms.md §3: Batch Manhattan takes the sign of the
  # *minibatch* gradient. One weight w, per-example loss x * w, global batch x =
  # (3, -1): replica 0 sees gradient +3/2, replica 1 sees -1/2 (signs differ),
  # the all-reduced gradient is +1. Signing it moves w by -η each step;
  # averaging per-replica signs, (+1 - 1) / 2 = 0, would not move it at all.
  lr, momentum, w0 = 0.1, 0.5, 0.5
  x = np.array([[3.0], [-1.0]], np.float32)
  y = np.ones((2, 1), np.float32)

  def linear_loss(y_true, y_pred):
    return tf.reduce_sum(y_true * y_pred, axis=-1)

  def build():
    model = keras.Sequential([
        keras.Input((1,)),
        tfbio.layers.Dense(1, use_bias=False, feedback="bp", seed=1,
                           kernel_initializer=keras.initializers.Constant(w0),
                           name="w")], name="bm")
    model.compile(optimizer=tfbio.optimizers.BatchManhattan(
        lr, momentum=momentum, setting=1), loss=linear_loss)
    return model

  single = build()
  with strategy.scope():
    mirrored = build()

  # The per-replica gradients of the global batch really differ in sign.
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices((x, y)).batch(2))
  kernel = mirrored.get_layer("w").kernel

  @tf.function
  def replica_grads(batch):
    def fn(xb, yb):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(linear_loss(yb, mirrored(xb))) / 2.0
      return tape.gradient(loss, kernel.value)
    return strategy.run(fn, args=batch)

  grads = [float(np.squeeze(g.numpy())) for g in
           strategy.experimental_local_results(
               replica_grads(next(iter(dataset))))]
  assert sorted(grads) == [-0.5, 1.5], grads
  assert np.mean(np.sign(grads)) == 0.0 and np.sign(np.sum(grads)) == 1.0

  for model in (single, mirrored):
    model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
  # τ1 = -sign(1) = -1, τ2 = -1 + 0.5 τ1 = -1.5: w = 0.5 - 0.1 - 0.15.
  expected = w0 - lr * 1.0 - lr * 1.5
  np.testing.assert_allclose(single.get_layer("w").kernel.numpy(),
                             [[expected]], rtol=0, atol=1e-6)
  for value in _replica_values(kernel):
    np.testing.assert_allclose(value, [[expected]], rtol=0, atol=1e-6)
  for value in _replica_values(mirrored.optimizer.traces[0]):
    np.testing.assert_allclose(value, [[-1.5]], rtol=0, atol=1e-6)
  _assert_close(_variables(single), _variables(mirrored), "after training")
