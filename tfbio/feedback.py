"""Feedback algorithms: the rule that defines a layer's feedback kernel ``B``.

Every algorithm of docs/algorithms.md §1 is an object in a registry::

    tfbio.feedback.names()                       # all known names
    algo = tfbio.feedback.get("frsf_p", flip_prob=0.25)
    layer = tfbio.layers.Dense(10, feedback=algo)   # or feedback="ss"

An algorithm object holds only hyper-parameters; it is shared freely between
layers. Its per-layer state (``M``, ``S_p``, ``B``) is created by
:meth:`FeedbackAlgorithm.build` as Keras variables *on the layer*, so it is
saved, restored, checkpointed and mirrored with the layer's weights.

Per-step random algorithms (``brsf``, ``brsf_p``) draw ``M`` (and ``S_p``) from
a stateless RNG keyed by the layer's seed and the layer's training-step counter
(a saved variable advanced once per training call): every replica of a
distributed step draws the same ``B``, a resumed run draws what the original
would have drawn, and different steps draw differently.
"""

import ast
import collections

import keras
import tensorflow as tf

from tfbio.ops import feedback_kernels as fk
from tfbio.ops import kolen_pollack as kp_ops
from tfbio.utils import checks
from tfbio.utils.seeds import derived_seed

# Purposes keep the stateless streams of one layer apart.
PURPOSE_MAGNITUDE = 1
PURPOSE_KERNEL_MASK = 3
PURPOSE_FEEDBACK_MASK = 4
PURPOSE_INITIALIZER = 5

FeedbackContext = collections.namedtuple(
    "FeedbackContext", ["kind", "fan_in", "fan_out", "seed", "init_std"],
    defaults=(None,))
FeedbackContext.__doc__ = """What an algorithm needs to know about its layer.

Attributes:
  kind: ``"dense"`` or ``"conv"`` (locally-connected layers count as conv).
  fan_in: ``n_in`` (dense) or ``kh*kw*c_in`` (conv).
  fan_out: ``n_out`` (dense) or ``kh*kw*c_out`` (conv).
  seed: the layer's integer seed.
  init_std: the standard deviation of the kernel's initializer
    (:func:`tfbio.ops.feedback_kernels.initializer_std`), None if unknown.
"""

_REGISTRY = {}
_ALIASES = {"frfb": "fa"}


def register(cls):
  """Class decorator adding a :class:`FeedbackAlgorithm` to the registry."""
  _REGISTRY[cls.name] = cls
  return cls


class FeedbackAlgorithm:
  """Base class. Subclasses set ``name`` and implement :meth:`kernel`.

  Attributes:
    name: registry name.
    per_step: True if ``B`` is redrawn every training step.
    trainable_feedback: True if ``B`` is a trainable variable whose gradient
      is ``W``'s gradient (``urfb``).
    is_backprop: True if ``B = W`` (the layer then uses the plain op).
  """

  name = None
  per_step = False
  trainable_feedback = False
  is_backprop = False

  def build(self, layer, shape, dtype, ctx):  # pylint: disable=unused-argument
    """Creates per-layer state on ``layer``; returns a dict of variables."""
    return {}

  def kernel(self, w, state, ctx, step):
    """Returns ``B`` for forward kernel ``w`` (a tensor) at ``step``."""
    raise NotImplementedError

  def get_config(self):
    return {}

  def __eq__(self, other):
    return (type(self) is type(other)
            and self.get_config() == other.get_config())

  def __hash__(self):
    return hash((self.name, repr(sorted(self.get_config().items()))))

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
    return f"{type(self).__name__}({args})"


@register
class Backprop(FeedbackAlgorithm):
  """``B = W``: ordinary back-propagation."""

  name = "bp"
  is_backprop = True

  def kernel(self, w, state, ctx, step):
    return w


@register
class SignSymmetry(FeedbackAlgorithm):
  """``B = sign(W) * s``, ``s`` the layer's init scale (xiao2018 §3.1, fn. 2).

  Conv: ``s = sqrt(2 / (kh*kw*c_out))`` (He normal, fan-out); dense:
  ``s = 1 / sqrt(n_in)`` (the authors' released code; the extracted paper
  text reads "1/n_output", see docs/algorithms.md §1).

  Args:
    scale: ``"xiao2018"`` (default): ``s`` as above; ``"glorot"``:
      ``s = sqrt(2 / (fan_in + fan_out))``, the standard deviation of Glorot
      (Xavier) initialisation, for every layer type — biotorch's "uSF"
      (``sign(W)`` times its Xavier scaling factor; docs/algorithms.md §1.1);
      ``"initializer"``: ``s`` = the standard deviation of the layer's own
      kernel initializer (footnote 2 read literally, for any initializer:
      Glorot-initialised separable kernels get their Glorot spread, not the
      He formula's up to ~27x larger one).
  """

  name = "ss"
  SCALES = ("xiao2018", "glorot", "initializer")

  def __init__(self, scale="xiao2018"):
    self.scale = checks.one_of("scale", scale, self.SCALES)

  def build(self, layer, shape, dtype, ctx):
    if self.scale == "initializer" and ctx.init_std is None:
      raise ValueError(
          f"ss:scale=initializer needs a kernel initializer of known spread "
          f"(VarianceScaling/Glorot/He/LeCun, RandomNormal, TruncatedNormal, "
          f"RandomUniform); layer {layer.name!r} has "
          f"{type(getattr(layer, 'kernel_initializer', None)).__name__}")
    return {}

  def kernel(self, w, state, ctx, step):
    if self.scale == "initializer":
      s = ctx.init_std
    elif self.scale == "glorot":
      s = fk.glorot_std(ctx.fan_in, ctx.fan_out)
    else:
      s = fk.ss_scale(ctx.kind, ctx.fan_in, ctx.fan_out)
    return fk.sign_symmetric(w, s)

  def get_config(self):
    # The default is left out: "ss" serializes as before this option.
    return {} if self.scale == "xiao2018" else {"scale": self.scale}


@register
class UniformSignConcordant(FeedbackAlgorithm):
  """``B = sign(W)``, unscaled (liao2016 §2 setting 1, "uSF").

  Without batch norm or Batch Manhattan this explodes (liao2016 Table 2):
  that is the documented behaviour, not a bug.
  """

  name = "usf"

  def kernel(self, w, state, ctx, step):
    return fk.sign_symmetric(w, 1.0)


@register
class NormalizedSignConcordant(FeedbackAlgorithm):
  """``B = sign(W) / fan_in``, ``fan_in = kh*kw*c_in`` (liao2016 Exp. A, NuSF)."""

  name = "nusf"

  def kernel(self, w, state, ctx, step):
    return fk.sign_symmetric(w, 1.0 / ctx.fan_in)


def _check_flip_prob(name, flip_prob):
  if flip_prob is None:
    raise ValueError(
        f"Feedback algorithm '{name}' needs flip_prob, the probability that a "
        "feedback sign disagrees with the forward sign (liao2016 Table 3), "
        f"e.g. tfbio.feedback.get('{name}', flip_prob=0.25). "
        "Received: flip_prob=None")
  return checks.number("flip_prob", flip_prob, 0, 1, strings=True)


class _RandomMagnitude(FeedbackAlgorithm):
  """The ``magnitude`` option of the random-magnitude sign rules.

  ``"uniform"`` (default, liao2016): ``M ~ U[0, 1)``; ``"glorot"``:
  ``M ~ U[0, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``, the magnitudes
  of a Glorot-uniform draw (biotorch's brSF / frSF: ``|xavier_uniform| ∘
  sign(W)``; docs/algorithms.md §1.1). The stored or drawn ``M`` is always
  ``U[0, 1)``; the factor ``a`` is applied when ``B`` is formed.
  """

  MAGNITUDES = ("uniform", "glorot")

  def _set_magnitude(self, magnitude):
    self.magnitude = checks.one_of("magnitude", magnitude, self.MAGNITUDES)

  def _scaled(self, m, ctx):
    if self.magnitude == "glorot":
      return m * tf.constant(fk.glorot_limit(ctx.fan_in, ctx.fan_out), m.dtype)
    return m

  def get_config(self):
    # The default is left out: "brsf" / "frsf" serialize as before.
    return {} if self.magnitude == "uniform" else {"magnitude": self.magnitude}


@register
class BatchwiseRandomSign(_RandomMagnitude):
  """``B = M ∘ sign(W)``, ``M ~ U[0,1]`` redrawn every step (liao2016 §2 (2)).

  Args:
    magnitude: ``"uniform"`` (default) or ``"glorot"`` (biotorch's brSF).
  """

  name = "brsf"
  per_step = True

  def __init__(self, magnitude="uniform"):
    self._set_magnitude(magnitude)

  def kernel(self, w, state, ctx, step):
    m = fk.stateless_magnitude(tf.shape(w), ctx.seed, PURPOSE_MAGNITUDE, step,
                               dtype=w.dtype)
    return fk.random_magnitude_sign(w, self._scaled(m, ctx))


@register
class FixedRandomSign(_RandomMagnitude):
  """``B = M ∘ sign(W)``, ``M ~ U[0,1]`` drawn once (liao2016 §2 (3)).

  Args:
    magnitude: ``"uniform"`` (default) or ``"glorot"`` (biotorch's frSF).
  """

  name = "frsf"

  def __init__(self, magnitude="uniform"):
    self._set_magnitude(magnitude)

  def build(self, layer, shape, dtype, ctx):
    return {"feedback_magnitude": _state_weight(
        layer, "feedback_magnitude", shape, dtype,
        lambda shape, dtype=None: fk.stateless_magnitude(
            shape, ctx.seed, PURPOSE_MAGNITUDE, dtype=dtype or "float32"))}

  def kernel(self, w, state, ctx, step):
    return fk.random_magnitude_sign(
        w, self._scaled(tf.cast(state["feedback_magnitude"], w.dtype), ctx))


@register
class BatchwiseRandomSignFlip(FeedbackAlgorithm):
  """``B = M ∘ sign(W) ∘ S_p``, both redrawn every step (liao2016 §2 (4)).

  Args:
    flip_prob: probability ``p`` that a feedback sign *disagrees* with the
      forward sign (liao2016 Table 3: 1.0 = all flipped, 0.5 = random signs).
  """

  name = "brsf_p"
  per_step = True

  def __init__(self, flip_prob=None):
    self.flip_prob = _check_flip_prob(self.name, flip_prob)

  def kernel(self, w, state, ctx, step):
    m, s = fk.stateless_magnitude_and_flips(
        tf.shape(w), self.flip_prob, ctx.seed, PURPOSE_MAGNITUDE, step,
        dtype=w.dtype)
    return fk.random_magnitude_sign(w, m, s)

  def get_config(self):
    return {"flip_prob": self.flip_prob}


@register
class FixedRandomSignFlip(FeedbackAlgorithm):
  """``B = M ∘ sign(W) ∘ S_p``, ``M`` and ``S_p`` drawn once (liao2016 §2 (5)).

  Args:
    flip_prob: probability that a feedback sign disagrees with the forward one.
  """

  name = "frsf_p"

  def __init__(self, flip_prob=None):
    self.flip_prob = _check_flip_prob(self.name, flip_prob)

  def build(self, layer, shape, dtype, ctx):
    p = self.flip_prob

    def draw(index):
      return lambda shape, dtype=None: fk.stateless_magnitude_and_flips(
          shape, p, ctx.seed, PURPOSE_MAGNITUDE,
          dtype=dtype or "float32")[index]

    return {
        "feedback_magnitude": _state_weight(
            layer, "feedback_magnitude", shape, dtype, draw(0)),
        "feedback_flips": _state_weight(
            layer, "feedback_flips", shape, dtype, draw(1)),
    }

  def kernel(self, w, state, ctx, step):
    return fk.random_magnitude_sign(
        w, tf.cast(state["feedback_magnitude"], w.dtype),
        tf.cast(state["feedback_flips"], w.dtype))

  def get_config(self):
    return {"flip_prob": self.flip_prob}


class _StoredFeedback(FeedbackAlgorithm):
  """``B`` stored in a variable, drawn once from an initializer."""

  def _initializer(self, layer, ctx):
    raise NotImplementedError

  def build(self, layer, shape, dtype, ctx):
    return {"feedback_kernel": _state_weight(
        layer, "feedback_kernel", shape, dtype, self._initializer(layer, ctx),
        trainable=self.trainable_feedback)}

  def kernel(self, w, state, ctx, step):
    return tf.cast(state["feedback_kernel"], w.dtype)


@register
class RandomFeedback(_StoredFeedback):
  """``B ~ N(0, std^2)`` drawn once (liao2016 §2 (6), "RndF").

  Args:
    std: standard deviation (liao2016: 0.05).
  """

  name = "rndf"

  def __init__(self, std=0.05):
    self.std = checks.number("std", std, 0, low_open=True, strings=True)

  def _initializer(self, layer, ctx):
    return keras.initializers.RandomNormal(
        0.0, self.std, seed=derived_seed(ctx.seed, PURPOSE_INITIALIZER))

  def get_config(self):
    return {"std": self.std}


@register
class FeedbackAlignment(_StoredFeedback):
  """Fixed random ``B`` from W's own initializer (lillicrap2016; xiao2018 §3.1).

  ``B`` is drawn once, independently of ``W``, from the same distribution and
  scale as ``W``: by default the layer's ``kernel_initializer`` re-seeded.
  (xiao2018's layers use He normal fan-out for conv, ``N(0, s^2)``, and
  ``U(-s, s)`` with ``s = 1/sqrt(n_in)`` for dense; the xiao2018 models in
  ``tfbio.models`` set those kernel initializers, so their ``B`` follows.)
  amit2019 calls this FRFB (alias ``frfb``).

  Args:
    initializer: optional Keras initializer (identifier, config or object)
      for ``B`` instead of the layer's kernel initializer.
  """

  name = "fa"

  def __init__(self, initializer=None):
    if initializer is not None:
      try:
        initializer = keras.initializers.get(initializer)
      except (ValueError, TypeError) as e:
        raise ValueError(f"Unknown initializer for '{self.name}': "
                         f"initializer={initializer!r} ({e})") from None
    self.initializer = initializer

  def _initializer(self, layer, ctx):
    base = self.initializer if self.initializer is not None else (
        layer.kernel_initializer)
    config = keras.initializers.serialize(base)
    if isinstance(config, dict) and "seed" in config.get("config", {}):
      config = {**config, "config": {
          **config["config"],
          "seed": derived_seed(ctx.seed, PURPOSE_INITIALIZER)}}
    return layer.adapt_initializer(keras.initializers.deserialize(config))

  def get_config(self):
    return {"initializer": (None if self.initializer is None else
                            keras.initializers.serialize(self.initializer))}


@register
class UpdatedRandomFeedback(FeedbackAlignment):
  """Random ``B`` (drawn like ``fa``) updated with W's increment (amit2019 §3.1).

  ``B`` is a trainable variable whose gradient is set to exactly ``dE/dW``,
  so any optimizer moves ``B`` and ``W`` by the same increment ("URFB";
  with weight decay on both this is Kolen–Pollack).

  Args:
    initializer: as for ``fa``.
  """

  name = "urfb"
  trainable_feedback = True


@register
class KolenPollack(UpdatedRandomFeedback):
  """Kolen–Pollack: ``B`` moved by W's increment and decayed like ``W``.

  Akrout et al. 2019, "Deep learning without weight transport" (NeurIPS,
  §3; after Kolen & Pollack 1994): ``B`` is drawn like ``fa``, is trainable,
  receives exactly W's gradient (``dE/dB := dE/dW``, as ``urfb``), and ``W``
  and ``B`` decay with the same ``λ``::

      ΔW = -η (∇W + λ W)        ΔB = -η (∇W + λ B)

  so ``W - B`` shrinks as ``(1 - ηλ)^t`` under plain SGD and ``B`` aligns
  with ``W``. URFB (amit2019) is the ``λ = 0`` case.

  Contract (where the decay comes from; ``W`` and ``B`` always get the same):

  * ``weight_decay`` (``λ``, this rule's own): the layer gets the loss term
    ``λ/2 (‖W‖² + ‖B‖²)`` (``tfbio.ops.kolen_pollack_decay``, attached to
    ``B``'s variable as its regularizer, so it is in ``layer.losses`` /
    ``model.losses``): the gradients become ``∇W + λW`` and ``∇W + λB``.
    ``model.fit`` and tfbio's trainer add ``model.losses`` (scaled for the
    replicas); a custom loop must add them too.
  * the layer's ``kernel_regularizer`` is applied to ``B`` as well, so an L2
    kernel regularizer decays both.
  * decay that acts on every trainable variable — tfbio's trainer's
    coupled ``optimizer.weight_decay`` (it adds ``wd * v`` to the gradient
    of every trained variable, ``B`` included) or a Keras optimizer's
    ``weight_decay`` — reaches ``B`` exactly as ``W``: nothing is added by
    this rule, and ``B`` is not decayed twice. With such a decay,
    ``weight_decay=0`` (the default) is Kolen–Pollack with the optimizer's
    ``λ``; setting both decays ``W`` and ``B`` by the sum.

  Args:
    initializer: as for ``fa``.
    weight_decay: ``λ >= 0`` of the rule's own decay term (default 0).
  """

  name = "kp"

  def __init__(self, initializer=None, weight_decay=0.0):
    super().__init__(initializer)
    self.weight_decay = checks.number("weight_decay", weight_decay, 0,
                                       strings=True)

  def build(self, layer, shape, dtype, ctx):
    state = super().build(layer, shape, dtype, ctx)
    feedback_kernel, kernel = state["feedback_kernel"], layer.kernel
    kernel_regularizer = getattr(kernel, "regularizer", None)
    decay = self.weight_decay
    if kernel_regularizer is not None or decay:

      def regularizer(b):
        loss = 0.0 if kernel_regularizer is None else kernel_regularizer(b)
        if decay:
          loss = loss + kp_ops.kolen_pollack_decay(kernel, b, decay)
        return loss

      feedback_kernel.regularizer = regularizer
    return state

  def get_config(self):
    return {**super().get_config(), "weight_decay": self.weight_decay}


def _state_weight(layer, name, shape, dtype, initializer, trainable=False):
  return layer.add_weight(name=name, shape=shape, dtype=dtype,
                          initializer=initializer, trainable=trainable)


def names():
  """All registered algorithm names, aliases included, sorted."""
  return sorted(list(_REGISTRY) + list(_ALIASES))


def _literal(text):
  """``"0.3"`` → 0.3, ``"None"`` → None; other text as it is."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def get(identifier, **params):
  """Returns a :class:`FeedbackAlgorithm`.

  Args:
    identifier: a registered name (``"ss"``), an alias (``"frfb"``), a name
      with parameters ``"brsf_p:flip_prob=0.3"`` (``key=value`` pairs after
      a colon, comma separated: the form a command line can give,
      ``--config.feedback=brsf_p:flip_prob=0.3``), a dict
      ``{"name": ..., **params}`` as written by :func:`serialize`, or an
      algorithm object (returned as is; ``params`` must then be empty).
    **params: hyper-parameters of the algorithm (``flip_prob``, ``std``, ...).

  Raises:
    ValueError: unknown name, unknown or invalid parameter.
  """
  if isinstance(identifier, FeedbackAlgorithm):
    if params:
      raise ValueError(f"Parameters {sorted(params)} given with an algorithm "
                       f"object {identifier!r}; set them on the object.")
    return identifier
  if isinstance(identifier, dict):
    params = {**{k: v for k, v in identifier.items() if k != "name"}, **params}
    identifier = identifier.get("name")
  if not isinstance(identifier, str):
    raise ValueError(f"Feedback must be a name, a dict or a FeedbackAlgorithm. "
                     f"Received: feedback={identifier!r}")
  if ":" in identifier:
    identifier, _, text = identifier.partition(":")
    for item in filter(None, (i.strip() for i in text.split(","))):
      name, sep, value = item.partition("=")
      if not sep or not name.strip():
        raise ValueError(f"Feedback parameters must be key=value. Received: "
                         f"{item!r} in feedback={identifier}:{text}")
      params.setdefault(name.strip(), _literal(value.strip()))
  key = identifier.strip().lower()
  key = _ALIASES.get(key, key)
  if key not in _REGISTRY:
    raise ValueError(f"Unknown feedback algorithm: {identifier!r}. Known: "
                     f"{', '.join(names())}")
  cls = _REGISTRY[key]
  try:
    return cls(**params)
  except TypeError:
    raise ValueError(
        f"Invalid parameters for feedback algorithm '{key}': {params!r}"
    ) from None


def serialize(algorithm):
  """``{"name": ..., **params}``, readable by :func:`get`."""
  algorithm = get(algorithm)
  return {"name": algorithm.name, **algorithm.get_config()}
