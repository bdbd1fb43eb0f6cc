"""A registry of model builders in the style of timm's.

Every builder is a small function decorated with :func:`register_model`::

    @register_model(source="liao2016 Table 1, MNIST column",
                    input_shape=(28, 28, 1), num_classes=10)
    def liao2016_mnist(num_classes=10, input_shape=(28, 28, 1), *,
                       feedback="bp", last_layer=None, overrides=None, ...):
      plan = FeedbackPlan(feedback, last_layer, overrides)
      ...
      return plan.finish(keras.Model(inputs, outputs, name=...))

and users build models by name::

    model = tfbio.models.create_model("resnet18", num_classes=100,
                                      feedback="ss", last_layer="bp")

The per-layer feedback spec is a :class:`FeedbackPlan`: ``overrides`` (a
``{layer name or regex: algorithm}`` map, matched exactly as
``tfbio.convert`` matches it) wins over ``last_layer`` (the algorithm of the
classifier(s) only), which wins over ``feedback`` (every other layer).
"""

import dataclasses
import difflib
import re
from typing import Callable, Optional, Tuple

from tfbio import feedback as feedback_lib
from tfbio.convert import resolve_overrides


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the registry knows about a builder.

  Attributes:
    name: registry name (the builder's function name).
    builder: the function.
    source: the paper table/section it reproduces.
    input_shape: default ``(height, width, channels)`` (or ``(features,)``).
    num_classes: default number of classes.
    small_input_shape: a smaller input the architecture accepts (tests,
      smoke runs); None if only ``input_shape`` works.
    reference_params: trainable parameters of the ``bp`` model at the default
      shape and classes, as the reference implementation counts them (None
      where there is no reference).
    reference_kwargs: builder options under which ``reference_params``
      holds (e.g. ``{"batchnorm": False}`` for torchvision's AlexNet).
    task: ``"classification"`` or ``"detection"``.
  """
  name: str
  builder: Callable
  source: str
  input_shape: Tuple[int, ...]
  num_classes: int
  small_input_shape: Optional[Tuple[int, ...]] = None
  reference_params: Optional[int] = None
  reference_kwargs: Optional[dict] = None
  task: str = "classification"


_REGISTRY = {}


def register_model(fn=None, *, source, input_shape, num_classes,
                   small_input_shape=None, reference_params=None,
                   reference_kwargs=None, task="classification"):
  """Decorator registering a builder under its function name.

  Raises:
    ValueError: the name is already registered.
  """

  def decorate(builder):
    name = builder.__name__
    if name in _REGISTRY:
      raise ValueError(f"Model {name!r} is already registered.")
    _REGISTRY[name] = ModelInfo(
        name=name, builder=builder, source=source,
        input_shape=tuple(input_shape), num_classes=num_classes,
        small_input_shape=(None if small_input_shape is None
                           else tuple(small_input_shape)),
        reference_params=reference_params,
        reference_kwargs=dict(reference_kwargs or {}), task=task)
    return builder

  return decorate if fn is None else decorate(fn)


def list_models(pattern=None):
  """Sorted registered names; ``pattern`` filters with ``fnmatch`` syntax."""
  names = sorted(_REGISTRY)
  if pattern is not None:
    import fnmatch  # pylint: disable=g-import-not-at-top
    names = [n for n in names if fnmatch.fnmatch(n, pattern)]
  return names


def model_info(name):
  """The :class:`ModelInfo` of ``name``; ValueError with close matches."""
  if name not in _REGISTRY:
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3,
                                      cutoff=0.5)
    hint = (f" Did you mean {', '.join(repr(c) for c in close)}?" if close
            else f" Known models: {', '.join(sorted(_REGISTRY))}.")
    raise ValueError(f"Unknown model {name!r}.{hint}")
  return _REGISTRY[name]


def create_model(name, num_classes=None, input_shape=None, feedback="bp",
                 last_layer=None, overrides=None, **kwargs):
  """Builds a registered model.

  Args:
    name: a name from :func:`list_models`.
    num_classes: classes of the classifier; None: the model's default.
    input_shape: ``(height, width, channels)``; None: the model's default.
    feedback: algorithm of every feedback layer (anything
      ``tfbio.feedback.get`` accepts).
    last_layer: algorithm of the classifier layer(s) only (None: same as
      ``feedback``); ``feedback="ss", last_layer="bp"`` is xiao2018's
      "SS + last layer BP".
    overrides: ``{layer name or regex: algorithm}``, as in ``tfbio.convert``;
      wins over ``last_layer`` and ``feedback``.
    **kwargs: the builder's own options (e.g. ``batchnorm``, ``untied``).

  Returns:
    A functional ``keras.Model`` that outputs logits.

  Raises:
    ValueError: unknown name (close matches listed), unknown option,
      algorithm or override.
  """
  info = model_info(name)
  return info.builder(
      num_classes=info.num_classes if num_classes is None else num_classes,
      input_shape=info.input_shape if input_shape is None else input_shape,
      feedback=feedback, last_layer=last_layer, overrides=overrides,
      **kwargs)


class FeedbackPlan:
  """The feedback algorithm of each layer of a model being built.

  ``plan(name)`` gives a hidden layer's algorithm and
  ``plan(name, classifier=True)`` a classifier's: the first ``overrides`` key
  that equals ``name`` or fully matches it as a regex, else ``last_layer``
  for a classifier, else ``feedback``. :meth:`finish` checks that every
  override matched some layer and records on the model (plain Python
  attributes, not saved) ``tfbio_feedback_plan`` (layer name → algorithm)
  and ``tfbio_classifier_layers`` (the names built with ``classifier=True``).
  """

  def __init__(self, feedback="bp", last_layer=None, overrides=None):
    self.feedback = feedback_lib.get(feedback)
    self.last_layer = (self.feedback if last_layer is None
                       else feedback_lib.get(last_layer))
    self._overrides = resolve_overrides(overrides)
    self._used = set()
    self.assigned = {}
    self.classifiers = []

  def __call__(self, name, classifier=False):
    if classifier:
      self.classifiers.append(name)
    for key, pattern, algo in self._overrides:
      if key == name or pattern.fullmatch(name):
        self._used.add(key)
        self.assigned[name] = algo
        return algo
    algo = self.last_layer if classifier else self.feedback
    self.assigned[name] = algo
    return algo

  def finish(self, model):
    """Checks the overrides were all used; returns ``model``."""
    unused = [k for k, _, _ in self._overrides if k not in self._used]
    if unused:
      raise ValueError(f"overrides keys matched no feedback layer of "
                       f"{model.name!r}: {unused}; its feedback layers are "
                       f"{sorted(self.assigned)}")
    model.tfbio_feedback_plan = {k: v.name for k, v in self.assigned.items()}
    model.tfbio_classifier_layers = list(self.classifiers)
    return model


def layer_names_matching(model, regex):
  """Names of the model's layers that fully match ``regex`` (docs, tests)."""
  pattern = re.compile(regex)
  return [l.name for l in model.layers if pattern.fullmatch(l.name)]
