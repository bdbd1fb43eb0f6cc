r"""liao2016: asymmetric backprop (sign-concordant, random) with BN and BM.

Liao, Leibo, Poggio (2016), "How important is weight symmetry in
backpropagation?", §2 (feedback settings 1-6), §3 (BN, Batch Manhattan), §5
"Training Details", Tables 1-4.

    tfbio-train --config=configs/liao2016.py:model=cifar,algo=usf_bn_bm \
        --workdir=/tmp/run
    tfbio-train --config=configs/liao2016.py:model=mnist,algo=rndf_bn_bm,control=bottom,lr_mult=10 \
        --workdir=/tmp/run
    tfbio-train --config=configs/liao2016.py:smoke=1 --workdir=/tmp/run

Arguments (``key=value``, comma separated):

    model     mnist (default) | cifar | svhn | others | timit: the Table 1
              columns (registry names ``liao2016_<model>``)
    dataset   a tfbio.data name; default per model: mnist -> mnist, cifar ->
              cifar10 (cifar100 for CIFAR100), svhn -> svhn_cropped, others
              -> caltech101 (any of the 11 "all others" datasets loadable,
              e.g. stl10, oxford_flowers102, or folder:PATH); timit has no
              default (TIMIT-80 is not in tensorflow-datasets): pass one
    algo      a condition of Tables 2-4 (default sgd):
              sgd (= bp), bm, bn, bn_bm, usf, nusf, usf_bm, usf_bn,
              usf_bn_bm, brsf_bn_bm, frsf_bn_bm, rndf, rndf_bn, rndf_bm,
              rndf_bn_bm (Exp. A, C1) and Exp. B's brsf_pP_bn_bm /
              frsf_pP_bn_bm, P in 25, 50, 75, 100
    lr_mult   100 | 10 | 1 (default) | 0.1 | 0.01: "All models were run 5
              times ... with base learning rate multiplied by 100, 10, 1,
              0.1, 0.01"; the paper reports the best of the five
    control   none (default) | bottom | top: Exp. C2 (Table 4). bottom: the
              last layer keeps its random init, frozen (freeze
              "@classifier"); top: every layer but the last frozen at init
              (freeze "@hidden")
    bm_setting  1 (default) | 2 | 3: Batch Manhattan setting (§3; the
              "miscellaneous experiment" compares BM1-3); only with bm
    smoke     0 | 1

Condition names: ``X`` is the feedback of every layer (sgd: backprop; usf,
nusf, brsf, frsf, rndf as docs/algorithms.md §1, rndf with σ = 0.05),
``_bn`` adds liao2016's affine-free batch norm after every hidden layer
(``model.kwargs.batchnorm``), ``_bm`` swaps SGD for Batch Manhattan setting 1
(§3: "By default, we used setting 1 for BM throughout the Experiments A, B,
C1 and C2").

Exp. B flips: Table 3's percentages are "the probability of having different
signs ... from the feedforward ones" (100 % = every sign flipped, 50 % = random
signs). tfbio's ``flip_prob`` is that same probability (docs/algorithms.md §1:
"the probability that a feedback sign *disagrees*"), so ``brsf_p25_bn_bm`` is
``{"name": "brsf_p", "flip_prob": 0.25}``, no conversion. (The text of Exp. B
speaks of "the probability p of concordance"; the table caption and liao2016
§2's definition of ``S_p`` decide; docs/algorithms.md §1.) Exp. B is run with BN
and BM, like its "Same Sign (brSF+BN+BM)" column.

Recipe (§5 "Training Details"): batch 100, SGD momentum 0.9, 65 epochs,
base learning rate 5e-4 for epochs 1-50, 5e-5 for 51-60, 5e-6 for 61-65
(schedule "piecewise", boundaries (50, 60), multipliers (1, 0.1, 0.01)),
times ``lr_mult``; softmax cross-entropy; no augmentation ("No data
augmentation ... is used in any of the experiments"); images resized to the
network's input ("All images are resized to fit the network if necessary":
``data.image_size`` = 28 / 32 / 32 / 119). Weight decay: the paper's SGD and
BM formulas have a decay term ``d`` but never give its value; we use 0.

Smoke: the same network on 64 ``digits`` images resized to the network's
small input (28, 32, 32, 48; timit takes the 8x8 images flattened), batch
16, one epoch of 2 steps.
"""

import re

from tfbio.train import config as config_lib
from tfbio.train import config_args as common


# model: (default dataset, input size, smoke input size); None: flattened.
MODELS = {
    "mnist": ("mnist", 28, 28),
    "cifar": ("cifar10", 32, 32),
    "svhn": ("svhn_cropped", 32, 32),
    "others": ("caltech101", 119, 48),
    "timit": (None, None, None),
}
# Tables 2 and 4 (Exp. A, C1, C2).
CONDITIONS = (
    "sgd", "bp", "bm", "bn", "bn_bm", "usf", "nusf", "usf_bm", "usf_bn",
    "usf_bn_bm", "brsf_bn_bm", "frsf_bn_bm", "rndf", "rndf_bn", "rndf_bm",
    "rndf_bn_bm")
# Table 3 (Exp. B): percent of feedback signs that differ from W's.
FLIP_PERCENTS = (25, 50, 75, 100)
EXP_B_CONDITIONS = tuple(f"{algo}_p{p}_bn_bm" for algo in ("brsf", "frsf")
                         for p in FLIP_PERCENTS)
ALGOS = CONDITIONS + EXP_B_CONDITIONS
LR_MULTS = (100.0, 10.0, 1.0, 0.1, 0.01)
CONTROLS = {"none": "", "bottom": "@classifier", "top": "@hidden"}

_CONDITION = re.compile(r"(?P<algo>[a-z]+)(?:_p(?P<p>\d+))?"
                        r"(?P<bn>_bn)?(?P<bm>_bm)?")


def condition(algo):
  """``(feedback, batchnorm, batch_manhattan)`` of a condition name.

  Example:
    >>> condition("frsf_p25_bn_bm")
    ({'name': 'frsf_p', 'flip_prob': 0.25}, True, True)
  """
  if algo not in ALGOS:
    raise ValueError(f"Unknown liao2016 condition {algo!r}. Known: "
                     f"{', '.join(ALGOS)}")
  if algo in ("bn", "bm", "bn_bm"):  # SGD with BN and/or BM.
    algo = "sgd_" + algo
  m = _CONDITION.fullmatch(algo)
  name = "bp" if m["algo"] in ("sgd", "bp") else m["algo"]
  feedback = name
  if m["p"] is not None:
    feedback = {"name": f"{name}_p", "flip_prob": int(m["p"]) / 100.0}
  return feedback, m["bn"] is not None, m["bm"] is not None


def get_config(arg=None):
  """The config of one liao2016 {model, dataset, condition, lr} run."""
  args = common.parse_arg(
      arg, model="mnist", dataset=None, algo="sgd", lr_mult=1.0,
      control="none", bm_setting=1, smoke=False,
      choices={"model": tuple(MODELS), "algo": ALGOS, "lr_mult": LR_MULTS,
               "control": tuple(CONTROLS), "bm_setting": (1, 2, 3)})
  default_dataset, image_size, smoke_size = MODELS[args["model"]]
  dataset = args["dataset"] or default_dataset
  if dataset is None and not args["smoke"]:
    raise ValueError(f"model={args['model']} needs dataset=NAME: it has no "
                     "default dataset (TIMIT-80 is not in tensorflow-datasets)")
  feedback, batchnorm, batch_manhattan = condition(args["algo"])
  if args["bm_setting"] != 1 and not batch_manhattan:
    raise common.bad_arg("bm_setting", args["bm_setting"],
                         f"algo={args['algo']} does not use Batch Manhattan")
  c = config_lib.base_config()

  # Model and feedback.
  c.model.name = f"liao2016_{args['model']}"
  c.model.kwargs.batchnorm = batchnorm
  common.set_feedback(c, feedback)
  c.freeze = CONTROLS[args["control"]]

  # Data: no augmentation, images resized to the network's input.
  c.data.name = dataset or "digits"
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.preprocess_train = "none"
  c.data.preprocess_eval = "none"
  c.data.image_size = image_size

  # Optimisation (§5 "Training Details").
  c.batch_size = 100
  c.epochs = 65
  c.loss.name = "softmax"
  c.optimizer.name = "batch_manhattan" if batch_manhattan else "sgd"
  c.optimizer.setting = args["bm_setting"]
  c.optimizer.learning_rate = 5e-4
  c.optimizer.lr_mult = args["lr_mult"]
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 0.0
  c.schedule.name = "piecewise"
  c.schedule.boundaries_epochs = (50, 60)
  c.schedule.multipliers = (1.0, 0.1, 0.01)

  c.checkpoint_every_steps = 500

  if args["smoke"]:
    common.apply_smoke(c, image_size=smoke_size)
  return c
