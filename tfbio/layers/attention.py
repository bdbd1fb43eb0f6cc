"""``keras.layers.MultiHeadAttention`` with feedback in its projections."""

import keras

from tfbio.layers.einsum_dense import EinsumDense
from tfbio.layers.feedback_mixin import check_feedback_args
from tfbio.layers.feedback_mixin import check_no_lora_or_quantization
from tfbio.layers.feedback_mixin import feedback_config
from tfbio.utils.seeds import derived_seed

# Keras' attribute of each projection → seed purpose of its feedback state.
# (The purposes mix the attention layer's feedback seed; they are not the
# feedback.py purposes, which mix each projection's own seed.)
PROJECTIONS = (("_query_dense", 8), ("_key_dense", 9), ("_value_dense", 10),
               ("_gate_dense", 11), ("_output_dense", 12))


@keras.saving.register_keras_serializable(package="tfbio")
class MultiHeadAttention(keras.layers.MultiHeadAttention):
  """Keras multi-head attention whose four projections are feedback layers.

  The query, key, value and output projections (and the gate projection
  when ``use_gate=True``) are ``tfbio.layers.EinsumDense`` layers with the
  feedback algorithm ``feedback``: their forward pass and weight gradients
  are exact, and the gradient each sends back to its input uses its ``B``.
  The attention product ``softmax(Q K^T / sqrt(d)) V`` itself (masking,
  dropout, flash attention) is Keras' and is differentiated exactly: it has
  no weights, so there is no ``W`` to replace. Hence the gradient w.r.t.
  ``query``/``key``/``value`` equals Keras' with ``B`` substituted in all
  four projections; the q/k/v weight gradients are exact given the signal
  the output projection's ``B`` sends back.

  Each projection has its own feedback seed, derived from
  ``feedback_seed``; kind ``"dense"`` and Keras' einsum fans (``fan_in =
  d_model``, ``fan_out = num_heads*key_dim`` for the query projection, see
  ``tfbio.layers.EinsumDense``). The projections, with their feedback state,
  are :attr:`feedback_layers`; their variable names are Keras'
  (``query/kernel``, ...) plus the feedback state (``query/feedback_kernel``
  for ``fa``, ...).

  Example:

  >>> mha = tfbio.layers.MultiHeadAttention(2, 8, feedback="ss")
  >>> mha(tf.ones((1, 5, 16)), tf.ones((1, 5, 16))).shape
  TensorShape([1, 5, 16])

  Args:
    num_heads, key_dim, value_dim, dropout, use_bias, output_shape,
    attention_axes, ..., seed: as ``keras.layers.MultiHeadAttention``
      (``seed`` is Keras' dropout seed).
    feedback: feedback algorithm of every projection.
    density, feedback_density, sign_fixed: as
      ``tfbio.layers.BaseFeedbackLayer``, for every projection.
    feedback_seed: the seed of the projections' feedback randomness (drawn
      and stored when None).
  """

  def __init__(self, *args, feedback="bp", density=1.0, feedback_density=1.0,
               sign_fixed=False, feedback_seed=None, **kwargs):
    check_no_lora_or_quantization(type(self).__name__, kwargs)
    values = check_feedback_args(feedback, density, feedback_density,
                                 sign_fixed, feedback_seed,
                                 seed_name="feedback_seed")
    super().__init__(*args, **kwargs)
    (self.feedback, self.density, self.feedback_density, self.sign_fixed,
     self.feedback_seed) = values

  def build(self, query_shape, value_shape, key_shape=None):
    super().build(query_shape, value_shape, key_shape)
    for attr, purpose in PROJECTIONS:
      old = getattr(self, attr, None)
      if old is None:
        continue
      config = {**old.get_config(), "feedback": self.feedback,
                "density": self.density,
                "feedback_density": self.feedback_density,
                "sign_fixed": self.sign_fixed,
                "seed": derived_seed(self.feedback_seed, purpose)}
      new = EinsumDense.from_config(config)
      new.build_from_config(old.get_build_config())
      # Keras' initial values, so that the layer starts as Keras' would.
      new.kernel.assign(old.kernel)
      if old.bias is not None:
        new.bias.assign(old.bias)
      new.reset_sign_reference()
      self._tracker.replace_tracked_value("layers", old, new)
      setattr(self, attr, new)

  @property
  def feedback_layers(self):
    """``{name: tfbio.layers.EinsumDense}`` of the projections (built)."""
    return {layer.name: layer for layer in (
        getattr(self, attr, None) for attr, _ in PROJECTIONS)
            if layer is not None}

  def get_config(self):
    config = super().get_config()
    config.update(feedback_config(self, seed_key="feedback_seed"))
    return config
