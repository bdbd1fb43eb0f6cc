r"""amit2019 CIFAR: updated (URFB) vs fixed (FRFB) random feedback, hinge loss.

Amit (2019), "Deep learning with asymmetric connections and Hebbian
updates", §4 (simpnet, deepnet, deepernet; Figures 4-7) and §4.1 (untied
layers, deepnet_s; Figure 9).

    tfbio-train --config=configs/amit2019_cifar.py:model=simpnet,algo=urfb \
        --workdir=/tmp/run
    tfbio-train --config=configs/amit2019_cifar.py:model=deepernet,algo=frfb,density=0.5,dataset=cifar100 \
        --workdir=/tmp/run
    # deepnet_s, two stages (§4.1):
    tfbio-train --config=configs/amit2019_cifar.py:model=deepnet_s,algo=urfb,stage=tied \
        --workdir=/tmp/s1
    tfbio-train --config=configs/amit2019_cifar.py:model=deepnet_s,algo=urfb,stage=untied,init=/tmp/s1 \
        --workdir=/tmp/s2
    tfbio-train --config=configs/amit2019_cifar.py:smoke=1 --workdir=/tmp/run

Arguments (``key=value``, comma separated):

    model    simpnet (default) | deepnet | deepernet | deepnet_s
    algo     bp (default; softmax cross-entropy) | bp_hinge ("BP-H") | urfb
             | frfb; every layer, the output included, uses it
    density  1.0 (default) | 0.5 ("50%": fixed random masks on W and,
             independently, on B; any value in (0, 1] is accepted)
    untied   0 (default) | 1: every conv layer locally connected (§4.1);
             not with deepnet_s, whose untied run is stage=untied
    dataset  cifar10 (default) | cifar100
    stage    deepnet_s only: tied (default; stage 1) | untied (stage 2:
             conv1 copied from the stage-1 run and frozen, conv2-conv6
             untied and trained from scratch with fc1 and output)
    init     stage=untied only (required): the stage-1 workdir (its
             ``model.keras``) or a ``.keras`` file
    smoke    0 | 1

Recipe (§4): "simple SGD with a fixed time step of 0.1 ... trained for 1,000
epochs with batch-size of 500" (momentum 0, no weight decay, constant
rate); the multi-class hinge loss of §3.2 with the default balancing factor
μ = 1/(C-1) (its value is lost in the extraction) for every algorithm but
"bp" ("All experiments with random feedback are performed with the hinge
loss"); no normalisation layers, "We do not perform any pre-processing of
the input data, nor ... data augmentation" (preprocess "none").

Epochs: simpnet 1000 (stated in §4). deepnet and deepernet: not stated (the
axes of Figures 6-7 are lost in the extraction): 1000, the only count the
section gives. deepnet_s stage 1: 100 ("we ran the network for 100 epochs
with the regular convolutional layers"); stage 2: not stated: 100, like
stage 1.

Smoke: the same network on 64 ``digits`` images resized to 32x32, batch 16,
one epoch of 2 steps; the stage=untied smoke needs ``init=`` a stage=tied
smoke's workdir (it is the warm start that is exercised).
"""


from tfbio.train import config as config_lib
from tfbio.train import config_args as common


MODELS = ("simpnet", "deepnet", "deepernet", "deepnet_s")
ALGOS = ("bp", "bp_hinge", "urfb", "frfb")
DATASETS = ("cifar10", "cifar100")
STAGES = ("tied", "untied")
EPOCHS = {"simpnet": 1000, "deepnet": 1000, "deepernet": 1000,
          "deepnet_s": 100}
# deepnet_s stage 2: every conv but the frozen conv1 untied
# (tfbio.models.amit2019.conv_layer_names("deepnet_s")[1:]).
DEEPNET_S_UNTIED = ("conv2", "conv3", "conv4", "conv5", "conv6")
DEEPNET_S_FROZEN = "conv1"


def get_config(arg=None):
  """The config of one amit2019 CIFAR run; see the module docstring."""
  args = common.parse_arg(
      arg, model="simpnet", algo="bp", density=1.0, untied=False,
      dataset="cifar10", stage=None, init=None, smoke=False,
      choices={"model": MODELS, "algo": ALGOS, "dataset": DATASETS,
               "stage": STAGES})
  model = args["model"]
  if not 0.0 < args["density"] <= 1.0:
    raise common.bad_arg("density", args["density"], "must be in (0, 1]")
  stage = args["stage"]
  if model == "deepnet_s":
    stage = stage or "tied"
    if args["untied"]:
      raise common.bad_arg("untied", args["untied"],
                           "deepnet_s is untied by stage=untied")
  elif stage is not None:
    raise common.bad_arg("stage", stage, "only for model=deepnet_s")
  if stage == "untied" and not args["init"]:
    raise ValueError("stage=untied needs init=PATH, the stage=tied run's "
                     "workdir (amit2019 §4.1: conv1 is kept from it, frozen)")
  if args["init"] and stage != "untied":
    raise common.bad_arg("init", args["init"], "only with stage=untied")
  c = config_lib.base_config()

  # Model and feedback.
  c.model.name = model
  c.model.kwargs.density = args["density"]
  c.model.kwargs.untied = (DEEPNET_S_UNTIED if stage == "untied"
                           else bool(args["untied"]))
  feedback = "bp" if args["algo"].startswith("bp") else args["algo"]
  common.set_feedback(c, feedback)
  if stage == "untied":
    c.init.path = args["init"]
    c.init.layers = DEEPNET_S_FROZEN
    c.freeze = DEEPNET_S_FROZEN

  # Data: no pre-processing, no augmentation.
  c.data.name = args["dataset"]
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.preprocess_train = "none"
  c.data.preprocess_eval = "none"

  # Optimisation (§4): plain SGD, fixed step 0.1, batch 500.
  c.batch_size = 500
  c.epochs = EPOCHS[model]
  c.loss.name = "softmax" if args["algo"] == "bp" else "hinge"
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.0
  c.optimizer.weight_decay = 0.0
  c.schedule.name = "constant"

  c.checkpoint_every_steps = 500

  if args["smoke"]:
    common.apply_smoke(c, image_size=32)
  return c
