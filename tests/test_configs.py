"""Tests of the experiment configs (``configs/*.py``): no training.

Every config must give, for each of its variants, a config that
``tfbio.train.config.validate`` accepts; the recipe values the papers state
are pinned; bad arguments raise a one-line ``ValueError``.
"""

import glob
import importlib.util
import os

import pytest

from tfbio import feedback as feedback_lib
from tfbio import models
from tfbio.models import amit2019
from tfbio.train import config as config_lib
from tfbio.train import config_args

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")


def _load(name):
  """configs/ is not a package: load configs/NAME.py by its path."""
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


XIAO = _load("xiao2018_imagenet")
LIAO = _load("liao2016")
AMIT = _load("amit2019_cifar")
BARTUNOV = _load("bartunov2018")
COMMON = config_args
EXPERIMENTS = {"xiao2018_imagenet": XIAO, "liao2016": LIAO,
               "amit2019_cifar": AMIT, "bartunov2018": BARTUNOV}


@pytest.fixture(autouse=True)
def _fresh_keras_state():
  """Replaces conftest's per-test ``keras.utils.clear_session()``.

  Its ``gc.collect()`` costs ~0.3 s a test (the heap holds all of
  TensorFlow), and only the smoke test builds models, which need unique
  layer names, not a fresh session.
  """
  yield


# -- every variant validates --------------------------------------------------

_VARIANTS = (
    [("xiao2018_imagenet", f"model={m},algo={a}")
     for m in XIAO.MODELS for a in XIAO.ALGOS]
    + [("liao2016", f"algo={a}") for a in LIAO.ALGOS]
    + [("liao2016", f"model={m},algo=usf_bn_bm")
       for m in LIAO.MODELS if m != "timit"]
    + [("liao2016", "model=timit,dataset=mnist,algo=rndf_bn_bm"),
       ("liao2016", "model=cifar,dataset=cifar100,algo=brsf_p50_bn_bm"),
       ("liao2016", "model=others,dataset=stl10,algo=frsf_bn_bm"),
       ("liao2016", "algo=usf_bn_bm,bm_setting=3,lr_mult=0.01"),
       ("liao2016", "algo=rndf,control=bottom"),
       ("liao2016", "algo=sgd,control=top,lr_mult=100")]
    + [("amit2019_cifar", f"model={m},algo={a}")
       for m in AMIT.MODELS for a in AMIT.ALGOS]
    + [("amit2019_cifar", "model=simpnet,algo=urfb,density=0.5,untied=1"),
       ("amit2019_cifar", "model=deepernet,algo=frfb,dataset=cifar100"),
       ("amit2019_cifar", "model=deepnet_s,algo=urfb,stage=untied,init=/x")]
    + [("bartunov2018", f"model={m}") for m in BARTUNOV.MODELS]
    + [("bartunov2018", "model=cifar_fc,augment=1"),
       ("bartunov2018", "model=cifar_lc,augment=1,conv=1")]
    + [(name, None) for name in EXPERIMENTS]
)


@pytest.mark.parametrize("name,arg", _VARIANTS)
def test_variant_validates_and_round_trips_through_json(name, arg):
  config = EXPERIMENTS[name].get_config(arg)
  config_lib.validate(config)
  again = config_lib.from_json(config_lib.to_json(config))
  config_lib.validate(again)
  assert config_lib.to_json(again) == config_lib.to_json(config)


_ALL_CONFIGS = sorted(
    os.path.basename(p)[:-3] for p in glob.glob(os.path.join(CONFIG_DIR,
                                                             "*.py"))
    if os.path.basename(p) != "common.py")


def test_the_four_seed_families_are_here():
  assert set(EXPERIMENTS) <= set(_ALL_CONFIGS)


@pytest.mark.parametrize("name", _ALL_CONFIGS)
def test_every_config_file_has_a_documented_smoke_variant(name):
  """Also covers config files added later."""
  module = _load(name)
  assert "tfbio-train --config=configs/" in module.__doc__
  config = module.get_config("smoke")
  config_lib.validate(config)
  # Offline smoke data: digits, or synthetic shapes (detection) that
  # tools/make_shapes_coco.py writes.
  assert config.data.name in ("digits", "coco")
  if config.data.name == "coco":
    assert "tools/make_shapes_coco.py" in module.__doc__
  with pytest.raises(ValueError, match="Unknown config argument"):
    module.get_config("no_such_key=1")


# -- smoke variants -----------------------------------------------------------

_SMOKES = (
    [("xiao2018_imagenet", f"smoke,model={m},algo=ss_lastbp")
     for m in XIAO.MODELS]
    + [("liao2016", f"smoke=1,model={m},algo=frsf_p25_bn_bm")
       for m in LIAO.MODELS]
    + [("amit2019_cifar", f"smoke,model={m},algo=urfb,density=0.5")
       for m in AMIT.MODELS]
    + [("amit2019_cifar", "smoke,model=deepnet_s,algo=frfb,stage=untied,"
        "init=/tmp/stage1")]
    + [("bartunov2018", f"smoke,model={m}") for m in BARTUNOV.MODELS]
)


@pytest.mark.parametrize("name,arg", _SMOKES)
def test_smoke_is_small_offline_and_the_model_accepts_its_input(name, arg):
  config = EXPERIMENTS[name].get_config(arg)
  config_lib.validate(config)
  assert config.data.name == "digits"
  assert config.data.preprocess_train == "none"
  assert config.data.max_train_examples <= 64
  assert config.data.max_eval_examples <= 64
  assert config.epochs <= 2 and config.steps_per_epoch <= 4
  assert config.batch_size <= 32
  assert config.checkpoint_every_steps <= config.steps_per_epoch
  size = config.data.image_size
  # digits are 8x8x1; the trainer resizes to image_size and passes classes.
  shape = (size, size, 1) if size else (8, 8, 1)
  model = models.create_model(
      config.model.name, num_classes=10, input_shape=shape,
      feedback=config_lib.plain(config.feedback), last_layer=config.last_layer,
      overrides=config_lib.plain(config.overrides) or None,
      **config_lib.plain(config.model.kwargs))
  assert model.output_shape == (None, 10)


def test_smoke_keeps_the_algorithm_and_recipe():
  config = LIAO.get_config("smoke,model=cifar,algo=usf_bn_bm,lr_mult=10")
  assert config.model.name == "liao2016_cifar"
  assert config.feedback == "usf" and config.model.kwargs.batchnorm
  assert config.optimizer.name == "batch_manhattan"
  assert config.optimizer.lr_mult == 10.0
  assert config.data.image_size == 32


# -- liao2016 -----------------------------------------------------------------


def test_liao2016_recipe():
  config = LIAO.get_config("model=cifar,algo=sgd")
  assert config.model.name == "liao2016_cifar"
  assert config.data.name == "cifar10" and config.data.image_size == 32
  assert config.data.preprocess_train == "none"
  assert config.batch_size == 100 and config.epochs == 65
  assert config.optimizer.name == "sgd"
  assert config.optimizer.momentum == 0.9
  assert config.optimizer.learning_rate == pytest.approx(5e-4)
  assert config.schedule.name == "piecewise"
  assert tuple(config.schedule.boundaries_epochs) == (50, 60)
  assert tuple(config.schedule.multipliers) == pytest.approx((1, 0.1, 0.01))
  assert config.loss.name == "softmax"
  assert config.feedback == "bp" and config.last_layer is None
  assert config.freeze == ""


@pytest.mark.parametrize("model,dataset,size", [
    ("mnist", "mnist", 28), ("cifar", "cifar10", 32),
    ("svhn", "svhn_cropped", 32), ("others", "caltech101", 119)])
def test_liao2016_default_dataset_and_input_size(model, dataset, size):
  config = LIAO.get_config(f"model={model}")
  assert config.model.name == f"liao2016_{model}"
  assert config.data.name == dataset and config.data.image_size == size
  assert models.model_info(config.model.name).input_shape[0] == size


def test_liao2016_timit_needs_a_dataset():
  with pytest.raises(ValueError, match="model=timit needs dataset=NAME"):
    LIAO.get_config("model=timit")
  config = LIAO.get_config("model=timit,dataset=my_timit")
  assert config.data.name == "my_timit" and config.data.image_size is None


@pytest.mark.parametrize("algo,feedback,bn,bm", [
    ("sgd", "bp", False, False), ("bp", "bp", False, False),
    ("bm", "bp", False, True), ("bn", "bp", True, False),
    ("bn_bm", "bp", True, True), ("usf", "usf", False, False),
    ("nusf", "nusf", False, False), ("usf_bm", "usf", False, True),
    ("usf_bn", "usf", True, False), ("usf_bn_bm", "usf", True, True),
    ("brsf_bn_bm", "brsf", True, True), ("frsf_bn_bm", "frsf", True, True),
    ("rndf", "rndf", False, False), ("rndf_bn", "rndf", True, False),
    ("rndf_bm", "rndf", False, True), ("rndf_bn_bm", "rndf", True, True)])
def test_liao2016_conditions(algo, feedback, bn, bm):
  config = LIAO.get_config(f"algo={algo}")
  assert config.feedback == feedback
  assert config.model.kwargs.batchnorm is bn
  assert config.optimizer.name == ("batch_manhattan" if bm else "sgd")
  assert config.optimizer.setting == 1
  assert config.optimizer.momentum == 0.9


@pytest.mark.parametrize("family", ["brsf", "frsf"])
@pytest.mark.parametrize("percent", [25, 50, 75, 100])
def test_liao2016_exp_b_flip_probability_is_table3_percentage(family,
                                                              percent):
  config = LIAO.get_config(f"algo={family}_p{percent}_bn_bm")
  assert config_lib.plain(config.feedback) == {"name": f"{family}_p",
                                     "flip_prob": percent / 100}
  algo = feedback_lib.get(config_lib.plain(config.feedback))
  assert algo.name == f"{family}_p"
  assert algo.flip_prob == pytest.approx(percent / 100)
  assert config.model.kwargs.batchnorm
  assert config.optimizer.name == "batch_manhattan"


@pytest.mark.parametrize("mult", [100, 10, 1, 0.1, 0.01])
def test_liao2016_lr_mult(mult):
  config = LIAO.get_config(f"algo=usf_bn_bm,lr_mult={mult}")
  assert config.optimizer.lr_mult == pytest.approx(mult)
  assert config.optimizer.learning_rate == pytest.approx(5e-4)


@pytest.mark.parametrize("control,freeze", [
    ("none", ""), ("bottom", "@classifier"), ("top", "@hidden")])
def test_liao2016_exp_c2_controls(control, freeze):
  config = LIAO.get_config(f"algo=rndf_bn_bm,control={control}")
  assert config.freeze == freeze


def test_liao2016_bm_setting():
  config = LIAO.get_config("algo=usf_bn_bm,bm_setting=2")
  assert config.optimizer.setting == 2
  with pytest.raises(ValueError, match="bm_setting.*does not use Batch"):
    LIAO.get_config("algo=usf_bn,bm_setting=2")


# -- xiao2018 -----------------------------------------------------------------


@pytest.mark.parametrize("algo,lr", [
    ("bp", 0.1), ("ss", 0.05), ("ss_lastbp", 0.05), ("fa", 0.05),
    ("fa_lastbp", 0.05)])
def test_xiao2018_resnet18_learning_rates(algo, lr):
  config = XIAO.get_config(f"model=resnet18,algo={algo}")
  assert config.model.name == "resnet18"
  assert config.model.kwargs.stem == "imagenet"
  assert config.optimizer.learning_rate == pytest.approx(lr)
  assert config.optimizer.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize("algo", XIAO.ALGOS)
def test_xiao2018_alexnet_recipe(algo):
  config = XIAO.get_config(f"model=alexnet,algo={algo}")
  assert config.model.name == "alexnet" and config.model.kwargs.batchnorm
  assert config.optimizer.learning_rate == pytest.approx(0.01)
  assert config.optimizer.weight_decay == pytest.approx(5e-4)


@pytest.mark.parametrize("algo,feedback,last", [
    ("bp", "bp", None), ("ss", "ss", None), ("ss_lastbp", "ss", "bp"),
    ("fa", "fa", None), ("fa_lastbp", "fa", "bp")])
def test_xiao2018_feedback_and_shared_recipe(algo, feedback, last):
  config = XIAO.get_config(f"algo={algo}")
  assert config.feedback == feedback and config.last_layer == last
  assert config.batch_size == 256 and config.epochs == 50
  assert config.optimizer.name == "sgd" and config.optimizer.momentum == 0.9
  assert config.schedule.name == "step"
  assert config.schedule.every_epochs == 10
  assert config.schedule.factor == 10.0
  assert config.data.name == "imagenet2012"
  assert config.data.eval_split == "validation"
  assert (config.data.preprocess_train,
          config.data.preprocess_eval) == ("imagenet_train", "imagenet_eval")
  assert config.data.image_size == 224


# -- amit2019 -----------------------------------------------------------------


@pytest.mark.parametrize("algo,feedback,loss", [
    ("bp", "bp", "softmax"), ("bp_hinge", "bp", "hinge"),
    ("urfb", "urfb", "hinge"), ("frfb", "frfb", "hinge")])
def test_amit2019_recipe(algo, feedback, loss):
  config = AMIT.get_config(f"algo={algo}")
  assert config.model.name == "simpnet"
  assert config.feedback == feedback and config.last_layer is None
  assert config.loss.name == loss
  assert config.optimizer.name == "sgd"
  assert config.optimizer.learning_rate == pytest.approx(0.1)
  assert config.optimizer.momentum == 0.0
  assert config.optimizer.weight_decay == 0.0
  assert config.schedule.name == "constant"
  assert config.batch_size == 500 and config.epochs == 1000
  assert config.data.name == "cifar10"
  assert config.data.preprocess_train == "none"


def test_amit2019_density_untied_dataset():
  config = AMIT.get_config("algo=urfb,density=0.5,untied=1,dataset=cifar100")
  assert config.model.kwargs.density == 0.5
  assert config.model.kwargs.untied is True
  assert config.data.name == "cifar100"


def test_amit2019_deepnet_s_two_stages():
  tied = AMIT.get_config("model=deepnet_s,algo=urfb")
  assert tied.epochs == 100 and tied.model.kwargs.untied is False
  assert tied.init.path is None and tied.freeze == ""
  untied = AMIT.get_config("model=deepnet_s,algo=urfb,stage=untied,"
                           "init=/runs/s1")
  assert tuple(untied.model.kwargs.untied) == tuple(
      amit2019.conv_layer_names("deepnet_s")[1:])
  assert untied.init.path == "/runs/s1"
  assert untied.init.layers == "conv1" and untied.freeze == "conv1"


@pytest.mark.parametrize("arg,match", [
    ("model=deepnet_s,stage=untied", "needs init=PATH"),
    ("model=simpnet,stage=tied", "only for model=deepnet_s"),
    ("model=deepnet_s,untied=1", "stage=untied"),
    ("init=/x", "only with stage=untied"),
    ("density=0", r"must be in \(0, 1\]"),
    ("density=1.5", r"must be in \(0, 1\]"),
    ("dataset=mnist", "Allowed: cifar10, cifar100")])
def test_amit2019_bad_args(arg, match):
  with pytest.raises(ValueError, match=match):
    AMIT.get_config(arg)


# -- bartunov2018 -------------------------------------------------------------


@pytest.mark.parametrize("model,dataset,epochs", [
    ("mnist_fc", "mnist", 100), ("cifar_fc", "cifar10", 500),
    ("mnist_lc", "mnist", 100), ("cifar_lc", "cifar10", 500),
    ("imagenet_lc", "imagenet2012", 18)])
def test_bartunov2018_recipe(model, dataset, epochs):
  config = BARTUNOV.get_config(f"model={model}")
  assert config.model.name == f"bartunov2018_{model}"
  assert config.feedback == "bp"
  assert config.data.name == dataset and config.epochs == epochs
  assert config.optimizer.name == "adam"
  # Inside Table 4's search domain for the model's Adam.
  assert 1e-5 <= config.optimizer.learning_rate <= 3e-4
  assert config.optimizer.beta_1 == 0.9
  assert config.optimizer.beta_2 in (0.99, 0.999)
  assert config.optimizer.epsilon in (1e-4, 1e-6, 1e-8)
  assert config.data.preprocess_train == "none"


def test_bartunov2018_augment_and_conv():
  config = BARTUNOV.get_config("model=cifar_lc,augment=1,conv=1")
  assert config.data.preprocess_train == "cifar_augment"
  assert config.data.preprocess_eval == "none"
  assert config.model.kwargs.conv is True
  with pytest.raises(ValueError, match="augment.*CIFAR models only"):
    BARTUNOV.get_config("model=mnist_lc,augment=1")
  with pytest.raises(ValueError, match=r"conv.*\*_lc models"):
    BARTUNOV.get_config("model=cifar_fc,conv=1")


# -- argument errors ----------------------------------------------------------


@pytest.mark.parametrize("name,arg,match", [
    ("liao2016", "modle=cifar", "Unknown config argument 'modle' in "
     "'modle=cifar'. Known: algo,"),
    ("liao2016", "algo=usf_bm_bn", "Bad value for config argument 'algo' in "
     "'algo=usf_bm_bn'"),
    ("liao2016", "lr_mult=3", "'lr_mult' in 'lr_mult=3'. Allowed: 100, 10, "
     "1, 0.1, 0.01"),
    ("liao2016", "lr_mult=big", "'lr_mult' must be a number"),
    ("liao2016", "control=middle", "'control' in 'control=middle'"),
    ("liao2016", "smoke=maybe", "'smoke' must be 0 or 1"),
    ("liao2016", "algo=sgd,algo=bm", "'algo' given twice"),
    ("liao2016", "dataset=", "'dataset' needs a value"),
    ("xiao2018_imagenet", "model=vgg16", "'model' in 'model=vgg16'"),
    ("xiao2018_imagenet", "algo=ss_lastfa", "'algo' in 'algo=ss_lastfa'"),
    ("xiao2018_imagenet", "smoke,steps=3", "Unknown config argument 'steps'"),
    ("amit2019_cifar", "algo=fa", "'algo' in 'algo=fa'"),
    ("amit2019_cifar", "untied=2", "'untied' must be 0 or 1"),
    ("bartunov2018", "model=imagenet_fc", "'model' in 'model=imagenet_fc'"),
    ("bartunov2018", "algo=fa", "'algo' in 'algo=fa'"),
])
def test_bad_arguments_raise_one_line_value_error(name, arg, match):
  with pytest.raises(ValueError, match=match) as info:
    EXPERIMENTS[name].get_config(arg)
  assert "\n" not in str(info.value)


# -- common.parse_arg ---------------------------------------------------------


def test_parse_arg_types_bare_words_and_defaults():
  args = COMMON.parse_arg(" model=cifar , smoke,lr=0.5,n=3 ", model="mnist",
                          smoke=False, lr=1.0, n=1, path=None)
  assert args == {"model": "cifar", "smoke": True, "lr": 0.5, "n": 3,
                  "path": None}
  assert COMMON.parse_arg(None, a=1) == {"a": 1}
  assert COMMON.parse_arg("", a=1) == {"a": 1}
  assert COMMON.parse_arg("smoke=false", smoke=True) == {"smoke": False}
  assert COMMON.parse_arg("x=1e2", x=1.0, choices={"x": (100.0,)}) == {
      "x": 100.0}
