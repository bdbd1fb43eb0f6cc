"""The training config schema: defaults, validation, and JSON round trip.

Every experiment config (``configs/*.py``) starts from :func:`base_config`
and overrides what its paper states. Fields (all learning-rate and batch
values are **global**, i.e. for the whole synchronous batch over all replicas
and workers, as the papers state them)::

    seed               int; weights, data order, dropout, feedback draws
    model.name         a name of tfbio.models.list_models()
    model.kwargs       builder options (batchnorm, untied, stem, density, ...)
    model.input_shape  None: the dataset's shape
    feedback           algorithm of every feedback layer (name or dict)
    last_layer         None or the classifier's algorithm ("bp": "X + last BP")
    overrides          {layer name or regex: algorithm}
    freeze             regex of layer names kept frozen (liao2016 Exp. C2);
                       "" for none; "@classifier" = the classifier layer(s),
                       "@hidden" = every layer except the classifier(s)
    init.path          None, a ``.keras`` file or a workdir of an earlier run
                       (its ``model.keras``): weights copied by layer name
                       into the new model before training (warm start:
                       amit2019 deepnet_s's frozen first layer, RetinaNet's
                       ImageNet backbone)
    init.layers        regex of the layer names copied (default all that
                       exist in both with the same weight shapes)
    data.name          tfbio.data name (digits, fashion_mnist_idx, folder:..., or
                       a tensorflow-datasets name)
    data.data_dir      None or a directory
    data.train_split / data.eval_split
    data.preprocess_train / data.preprocess_eval   tfbio.data preprocess names
    data.image_size    None or an int (resize / crop size)
    data.shuffle_buffer
    data.max_train_examples / data.max_eval_examples   None or an int (smoke)
    detection.max_boxes / detection.flip   detection models only: boxes per
                       image kept, random horizontal flips in training
    batch_size         global batch size
    epochs             epochs to train
    steps_per_epoch    None: train examples // batch_size
    loss.name          "softmax" (cross-entropy on logits) or "hinge"
                       (amit2019's multi-class hinge)
    loss.mu            hinge balancing factor (None: 1/(C-1))
    optimizer.name     "sgd", "adam" or "batch_manhattan"
    optimizer.learning_rate   base (global) learning rate
    optimizer.lr_mult  multiplier of the whole schedule (liao2016's
                       x{100, 10, 1, 0.1, 0.01})
    optimizer.momentum / optimizer.nesterov / optimizer.beta_1 / beta_2 /
    optimizer.epsilon
    optimizer.weight_decay    L2 added to the gradient (PyTorch SGD's
                              coupled form; BatchManhattan's own `d w` term)
    optimizer.setting  BatchManhattan setting 0-3
    optimizer.clipnorm  0 (off) or clip the global gradient norm to this
                       (SGD and Adam; Keras' ``global_clipnorm``)
    schedule.name      "constant", "piecewise" (boundaries in epochs) or
                       "step" (divide by `factor` every `every_epochs`)
    schedule.boundaries_epochs / schedule.multipliers (piecewise: the
                       multiplier of the base rate from each boundary on,
                       len(multipliers) == len(boundaries) + 1)
    schedule.every_epochs / schedule.factor (step)
    schedule.warmup_steps   0 or linear warm-up of any schedule over this
                       many optimizer steps (Detectron's RetinaNet recipe)
    checkpoint_every_steps    also checkpointed at every epoch end
    alignment          log tfbio.analysis.network_metrics every epoch
    log_every_steps    absl log line cadence inside an epoch
    debug_kill_after_step   tests only: SIGKILL a fresh run after that step
    tp.enabled         train by target propagation (tfbio.train.tp_trainer:
                       Keras fit of a tfbio.tp.TargetPropModel around the
                       registry model; the forward optimizer is the one
                       above, normally Adam)
    tp.variant         "dtp" or "sdtp" (bartunov2018 §2.1.1)
    tp.schedule        "parallel" or "alternating" (one epoch each)
    tp.inverse_training  "denoising" or "noise_preserving"
    tp.noise_std       σ >= 0 of the noise that trains the inverses
    tp.step_size       α >= 0 of DTP's penultimate target
    tp.inverse_learning_rate / tp.inverse_beta_2 / tp.inverse_epsilon
                       the inverses' Adam (β1 fixed to 0.9, constant rate)
    dfa.enabled        train by direct feedback alignment (Nøkland 2016;
                       tfbio.train.dfa_trainer: Keras fit of a
                       tfbio.dfa.DFAModel around the registry model, a chain
                       of kernel layers; softmax loss)
    dfa.feedback_scale None (1/sqrt(n_outputs)) or the half-width s > 0 of
                       each hidden layer's fixed B_l ~ U[-s, s]
    dfa.feedback_density  in (0, 1]: fixed random sparse B_l below 1
    dfa.block_outputs  None (chain: per layer; residual net: "residual"),
                       "residual", "kernel_inputs" (the input of every
                       kernel layer but the first ends a block: biotorch)
                       or comma-separated layer names (DFAModel)
    dfa.feedback_structure  "dense" (B_l of n_L x size of h_l) or "kernel"
                       (B_l shaped like the layer reading h_l: biotorch)
    dfa.bp_angle       log the angle of each hidden update to its true
                       gradient (one more backward pass per step)
    mixed_precision    None (float32), "mixed_float16" (float32 variables,
                       float16 compute, dynamic loss scaling) or
                       "mixed_bfloat16" (bfloat16 compute, no scaling):
                       the Keras global dtype policy of the run
"""

import json

import ml_collections

LOSSES = ("softmax", "hinge")
OPTIMIZERS = ("sgd", "adam", "batch_manhattan")
SCHEDULES = ("constant", "piecewise", "step")
TP_VARIANTS = ("dtp", "sdtp")
TP_SCHEDULES = ("parallel", "alternating")
TP_INVERSE_TRAININGS = ("denoising", "noise_preserving")
DFA_STRUCTURES = ("dense", "kernel")
MIXED_PRECISION = ("mixed_float16", "mixed_bfloat16")


def base_config():
  """The defaults every experiment config starts from."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = ml_collections.ConfigDict()
  c.model.name = "liao2016_mnist"
  c.model.kwargs = ml_collections.ConfigDict()
  c.model.input_shape = ml_collections.FieldReference(None, field_type=tuple)
  c.feedback = "bp"
  c.last_layer = ml_collections.FieldReference(None, field_type=str)
  c.overrides = ml_collections.ConfigDict()
  c.freeze = ""
  c.init = ml_collections.ConfigDict()
  c.init.path = ml_collections.FieldReference(None, field_type=str)
  c.init.layers = ".*"

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits"
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.preprocess_train = "none"
  c.data.preprocess_eval = "none"
  c.data.image_size = ml_collections.FieldReference(None, field_type=int)
  c.data.shuffle_buffer = 10000
  c.data.max_train_examples = ml_collections.FieldReference(None,
                                                            field_type=int)
  c.data.max_eval_examples = ml_collections.FieldReference(None,
                                                           field_type=int)

  c.detection = ml_collections.ConfigDict()
  c.detection.max_boxes = 100
  c.detection.flip = True

  c.batch_size = 100
  c.epochs = 10
  c.steps_per_epoch = ml_collections.FieldReference(None, field_type=int)

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "softmax"
  c.loss.mu = ml_collections.FieldReference(None, field_type=float)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.01
  c.optimizer.lr_mult = 1.0
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.beta_1 = 0.9
  c.optimizer.beta_2 = 0.999
  c.optimizer.epsilon = 1e-7
  c.optimizer.weight_decay = 0.0
  c.optimizer.setting = 1
  c.optimizer.clipnorm = 0.0

  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = "constant"
  c.schedule.boundaries_epochs = ()
  c.schedule.multipliers = (1.0,)
  c.schedule.every_epochs = 10
  c.schedule.factor = 10.0
  c.schedule.warmup_steps = 0

  c.checkpoint_every_steps = 200
  c.alignment = True
  c.log_every_steps = 50
  # Fault injection for the resume tests: SIGKILL a fresh (not resumed) run
  # right after this global step, so that the same command then resumes.
  c.debug_kill_after_step = ml_collections.FieldReference(None,
                                                          field_type=int)

  c.tp = ml_collections.ConfigDict()
  c.tp.enabled = False
  c.tp.variant = "dtp"
  c.tp.schedule = "parallel"
  c.tp.inverse_training = "denoising"
  c.tp.noise_std = 0.1
  c.tp.step_size = 0.1
  c.tp.inverse_learning_rate = 1e-4
  c.tp.inverse_beta_2 = 0.999
  c.tp.inverse_epsilon = 1e-8

  c.dfa = ml_collections.ConfigDict()
  c.dfa.enabled = False
  c.dfa.feedback_scale = ml_collections.FieldReference(None,
                                                       field_type=float)
  c.dfa.feedback_density = 1.0
  c.dfa.block_outputs = ml_collections.FieldReference(None, field_type=str)
  c.dfa.feedback_structure = "dense"
  c.dfa.bp_angle = False

  c.mixed_precision = ml_collections.FieldReference(None, field_type=str)
  return c


def validate(config):
  """Checks names and ranges; ValueError (one line, quoting the value).

  Checks what can be checked without reading data: the model, feedback
  algorithms, loss, optimizer, schedule and sizes.
  """
  from tfbio import feedback as feedback_lib  # pylint: disable=g-import-not-at-top
  from tfbio import models  # pylint: disable=g-import-not-at-top
  from tfbio.utils import checks  # pylint: disable=g-import-not-at-top

  models.model_info(config.model.name)  # ValueError with close matches.
  feedback_lib.get(plain(config.feedback))
  if config.last_layer is not None:
    feedback_lib.get(plain(config.last_layer))
  for key, algo in plain(config.overrides).items():
    feedback_lib.get(algo)
  checks.one_of("loss.name", config.loss.name, LOSSES)
  checks.one_of("optimizer.name", config.optimizer.name, OPTIMIZERS)
  checks.one_of("schedule.name", config.schedule.name, SCHEDULES)
  if config.get("mixed_precision") is not None:
    checks.one_of("mixed_precision", config.mixed_precision, MIXED_PRECISION)
  if config.schedule.name == "piecewise" and (
      len(config.schedule.multipliers)
      != len(config.schedule.boundaries_epochs) + 1):
    raise ValueError(
        "schedule.multipliers needs one more entry than "
        "schedule.boundaries_epochs. Received: "
        f"boundaries_epochs={tuple(config.schedule.boundaries_epochs)}, "
        f"multipliers={tuple(config.schedule.multipliers)}")
  for key in ("batch_size", "epochs", "checkpoint_every_steps",
              "log_every_steps"):
    checks.positive_int(key, config[key])
  if config.steps_per_epoch is not None:
    checks.positive_int("steps_per_epoch", config.steps_per_epoch)
  for key in ("learning_rate", "lr_mult"):
    checks.number(f"optimizer.{key}", config.optimizer[key], 0, low_open=True)
  for key in ("weight_decay", "clipnorm"):
    checks.number(f"optimizer.{key}", config.optimizer.get(key, 0), 0)
  checks.non_negative_int("schedule.warmup_steps",
                          config.schedule.get("warmup_steps", 0))
  if "tp" in config:
    _validate_tp(config.tp)
  if "dfa" in config:
    _validate_dfa(config.dfa)
    if config.dfa.enabled and config.get("tp", {}).get("enabled"):
      raise ValueError("dfa.enabled and tp.enabled are both set: choose one "
                       "training rule")
  return config


def _validate_dfa(dfa):
  """One-line ValueErrors for the ``dfa`` fields (see the module docstring)."""
  from tfbio.utils import checks  # pylint: disable=g-import-not-at-top

  if dfa.feedback_scale is not None:
    checks.number("dfa.feedback_scale", dfa.feedback_scale, 0, low_open=True)
  checks.density("dfa.feedback_density", dfa.feedback_density)
  if "feedback_structure" in dfa:
    checks.one_of("dfa.feedback_structure", dfa.feedback_structure,
                  DFA_STRUCTURES)


def dfa_block_outputs(dfa):
  """``dfa.block_outputs`` as DFAModel takes it: None, ``"residual"``,
  ``"kernel_inputs"`` or a list of layer names (from ``"a,b,c"``)."""
  value = dfa.get("block_outputs")
  if value is None or value in ("residual", "kernel_inputs"):
    return value
  return [v.strip() for v in value.split(",") if v.strip()]


def _validate_tp(tp):
  """One-line ValueErrors for the ``tp`` fields (see the module docstring)."""
  from tfbio.utils import checks  # pylint: disable=g-import-not-at-top

  for key, choices in (("variant", TP_VARIANTS), ("schedule", TP_SCHEDULES),
                       ("inverse_training", TP_INVERSE_TRAININGS)):
    checks.one_of(f"tp.{key}", tp[key], choices)
  checks.number("tp.noise_std", tp.noise_std, 0)
  checks.number("tp.step_size", tp.step_size, 0)
  checks.number("tp.inverse_learning_rate", tp.inverse_learning_rate, 0,
                low_open=True)
  checks.number("tp.inverse_beta_2", tp.inverse_beta_2, 0, 1, high_open=True)
  checks.number("tp.inverse_epsilon", tp.inverse_epsilon, 0, low_open=True)


def plain(value):
  """A ``ConfigDict`` as a plain dict (other values as they are)."""
  if isinstance(value, ml_collections.ConfigDict):
    return value.to_dict()
  return value


def to_json(config):
  """JSON text of a config (written to ``WORKDIR/config.json``)."""
  return json.dumps(config.to_dict(), indent=1, sort_keys=True, default=list)


def from_json(text):
  """The config written by :func:`to_json` (base defaults for new fields)."""
  config = base_config()
  loaded = json.loads(text)

  def merge(target, values, prefix=""):
    for key, value in values.items():
      if isinstance(value, dict) and key in target and isinstance(
          target[key], ml_collections.ConfigDict) and key not in (
              "kwargs", "overrides"):
        merge(target[key], value, f"{prefix}{key}.")
      else:
        with target.ignore_type():
          target[key] = (ml_collections.ConfigDict(value)
                         if isinstance(value, dict) else
                         tuple(value) if isinstance(value, list) else value)

  merge(config, loaded)
  return config
