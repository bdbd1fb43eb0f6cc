"""Locally-connected (untied) 2-D layer with a feedback kernel."""

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.ops import locally_connected as lc_ops
from tfbio.utils import checks

IMPLEMENTATIONS = ("auto", "dense", "sparse", "offsets")


@keras.saving.register_keras_serializable(package="tfbio")
class LocallyConnected2D(BaseFeedbackLayer):
  """A convolution's connectivity with a separate filter at every position.

  amit2019 §4.1 ("untied" layers) and bartunov2018 §2.2 (docs/algorithms.md §2);
  Keras 3 no longer ships this layer. Output position ``(i, j)`` sees the same
  input window as a ``Conv2D`` with the same
  ``kernel_size``/``strides``/``padding``, but through its own filter and bias.
  Every feedback algorithm, the sparse-connectivity masks and sign-fixed weights
  work as in ``tfbio.layers.Dense``/``Conv2D``.

  Kernel shape ``(out_h*out_w, kh*kw*c_in, filters)`` (positions row-major,
  taps in ``(kh, kw, c_in)`` order); bias shape ``(out_h, out_w, filters)``.
  ``tfbio.analysis.untied_filters`` reshapes the kernel to
  ``(out_h, out_w, kh, kw, c_in, filters)``.

  Implementations (same outputs and gradients):

  * ``"dense"``: patch extraction + a per-position batched matmul;
    its extra memory is ``batch * P * kh*kw*c_in`` activations.
  * ``"sparse"``: the connectivity matrix as a ``tf.SparseTensor``
    (amit2019's form): much slower, but its memory does not grow with the
    patches; not XLA-compilable (the layer then reports
    ``supports_jit=False``).
  * ``"offsets"``: accumulates over the ``kh*kw`` kernel offsets (the
    input pixels an offset reads times that offset's per-position weights)
    with a backward that recomputes them one offset at a time; it never
    forms the patches, so its memory is that of the weights, activations
    and their gradients plus a few activation-sized temporaries
    (``bench/locally_connected.py``: allocator peak 1.56x / 1.65x the step
    minimum at shapes a / b, against 2.5x / 2.3x for ``"dense"``), at
    1.1x-1.7x the dense form's time.
  * ``"auto"`` (default): ``"dense"``, the faster form at every shape of
    ``bench/locally_connected.py``, unless its patch memory for the batch
    (the static batch size when known, else one example) exceeds
    ``max_dense_bytes``; then ``"offsets"`` (with a log line), which at
    those shapes is 20-80x faster than ``"sparse"`` and needs less memory.

  Example:

  >>> layer = tfbio.layers.LocallyConnected2D(8, 3, padding="same",
  ...                                         feedback="urfb")
  >>> layer(tf.ones((2, 6, 6, 3))).shape
  TensorShape([2, 6, 6, 8])

  Args:
    filters: output channels.
    kernel_size, strides: int or pair.
    padding: ``"valid"`` or ``"same"``.
    data_format: only ``"channels_last"`` (or None).
    implementation: ``"auto"``, ``"dense"``, ``"sparse"`` or ``"offsets"``.
    max_dense_bytes: memory bound of the dense form's patches (default 2 GiB).
    activation, use_bias, initializers, regularizers, constraints, feedback,
    density, feedback_density, sign_fixed, seed: as ``tfbio.layers.Conv2D``.
  """

  kernel_kind = "conv"

  def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
               data_format=None, activation=None, use_bias=True,
               kernel_initializer="glorot_uniform", bias_initializer="zeros",
               kernel_regularizer=None, bias_regularizer=None,
               activity_regularizer=None, kernel_constraint=None,
               bias_constraint=None, implementation="auto",
               max_dense_bytes=2**31, feedback="bp", density=1.0,
               feedback_density=1.0, sign_fixed=False, seed=None, **kwargs):
    super().__init__(
        activation=activation, use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
        feedback=feedback, density=density,
        feedback_density=feedback_density, sign_fixed=sign_fixed, seed=seed,
        **kwargs)
    filters = checks.positive_int("filters", filters)
    if data_format not in (None, "channels_last"):
      raise ValueError(f"LocallyConnected2D supports only "
                       f"data_format='channels_last'. Received: "
                       f"data_format={data_format!r}")
    self.filters = filters
    self.kernel_size = checks.int_tuple("kernel_size", kernel_size, 2)
    self.strides = checks.int_tuple("strides", strides, 2)
    self.padding = checks.padding("padding", padding)
    self.data_format = "channels_last"
    self.implementation = checks.one_of("implementation", implementation,
                                        IMPLEMENTATIONS)
    self.max_dense_bytes = checks.positive_int("max_dense_bytes",
                                               max_dense_bytes)
    self.input_spec = keras.layers.InputSpec(ndim=4)
    self._resolved = None
    self._sparse = None

  def build(self, input_shape):
    _, in_h, in_w, c_in = input_shape
    if in_h is None or in_w is None or c_in is None:
      raise ValueError(f"LocallyConnected2D needs a static input height, width "
                       f"and channels. Received: input_shape={input_shape}")
    self.out_h, self.out_w, _, _ = lc_ops.lc_geometry(
        in_h, in_w, self.kernel_size, self.strides, self.padding)
    kh, kw = self.kernel_size
    positions, taps = self.out_h * self.out_w, kh * kw * c_in
    self._taps = taps
    self._resolved = self._choose_implementation(input_shape[0], positions,
                                                 taps)
    if self._resolved == "sparse":
      self._sparse = lc_ops.sparse_connectivity(
          in_h, in_w, c_in, self.kernel_size, self.strides, self.padding,
          self.filters)
      self.supports_jit = False
    self._build_weights((positions, taps, self.filters), fan_in=taps,
                        fan_out=kh * kw * self.filters,
                        bias_shape=(self.out_h, self.out_w, self.filters))
    self.input_spec = keras.layers.InputSpec(
        ndim=4, axes={1: in_h, 2: in_w, 3: c_in})

  def adapt_initializer(self, initializer):
    """Gives ``VarianceScaling`` initializers (Glorot, He, LeCun, ...) the
    per-position fans of a convolution.

    Keras reads a ``(P, K, filters)`` kernel as a conv kernel with receptive
    field ``P`` (fan_in ``P*K``), which would shrink the weights by
    ``sqrt(P)``; the draw is rescaled to fan_in ``kh*kw*c_in`` and fan_out
    ``kh*kw*filters``, the fans of the tied convolution.
    """
    if not isinstance(initializer, keras.initializers.VarianceScaling):
      return initializer
    kh, kw = self.kernel_size
    positions, taps = self.out_h * self.out_w, self._taps
    keras_fans = (taps * positions, self.filters * positions)
    conv_fans = (taps, kh * kw * self.filters)
    def fan(fans):
      return {"fan_in": fans[0], "fan_out": fans[1],
              "fan_avg": (fans[0] + fans[1]) / 2.0}[initializer.mode]
    factor = float(np.sqrt(fan(keras_fans) / fan(conv_fans)))
    return lambda shape, dtype=None: initializer(shape, dtype=dtype) * factor

  def _choose_implementation(self, batch, positions, taps):
    """Applies the documented ``"auto"`` rule and the dense memory bound."""
    itemsize = np.dtype(self.compute_dtype).itemsize
    patch_bytes = (batch or 1) * positions * taps * itemsize
    too_big = patch_bytes > self.max_dense_bytes
    if self.implementation == "dense" and too_big:
      raise ValueError(
          f"LocallyConnected2D {self.name!r}: the dense form needs "
          f"{patch_bytes / 2**30:.2f} GiB of patches (batch {batch or 1}, "
          f"{positions} positions x {taps} taps), over max_dense_bytes="
          f"{self.max_dense_bytes}; use implementation='offsets' or "
          "implementation='sparse', or raise max_dense_bytes.")
    if self.implementation == "auto":
      if too_big:
        logging.info("LocallyConnected2D %s: dense patches would need %.2f GiB"
                     " (> max_dense_bytes); using the offsets form.",
                     self.name, patch_bytes / 2**30)
        return "offsets"
      return "dense"
    return self.implementation

  @property
  def resolved_implementation(self):
    """``"dense"``, ``"sparse"`` or ``"offsets"``: the form chosen at build
    time."""
    return self._resolved

  def call(self, inputs, training=None):
    w, b = self._kernels(training=training)
    x = tf.convert_to_tensor(inputs)
    batch = tf.shape(x)[0]
    receives = self.feedback.trainable_feedback
    if self._resolved == "offsets":
      return self._finish(lc_ops.feedback_lc_offsets(
          x, w, b, self.kernel_size, self.strides, self.padding, receives))
    if self._resolved == "dense":
      patches = lc_ops.extract_patches(x, self.kernel_size, self.strides,
                                       self.padding)
      y = lc_ops.feedback_lc_patches(patches, w, b, receives)  # (P, O, B)
      y = tf.transpose(y, [2, 0, 1])
    else:
      indices, value_index, dense_shape = self._sparse
      y = lc_ops.feedback_lc_sparse(
          tf.reshape(x, [batch, -1]), w, b, indices, value_index,
          dense_shape, receives)
    y = tf.reshape(y, [batch, self.out_h, self.out_w, self.filters])
    return self._finish(y)

  def compute_output_shape(self, input_shape):
    out_h, out_w, _, _ = lc_ops.lc_geometry(
        input_shape[1], input_shape[2], self.kernel_size, self.strides,
        self.padding)
    return (input_shape[0], out_h, out_w, self.filters)

  def get_config(self):
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "kernel_size": self.kernel_size,
        "strides": self.strides,
        "padding": self.padding,
        "data_format": self.data_format,
        "implementation": self.implementation,
        "max_dense_bytes": self.max_dense_bytes,
    })
    return config
