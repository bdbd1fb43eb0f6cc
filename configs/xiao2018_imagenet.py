r"""xiao2018 ImageNet: ResNet-18 and AlexNet with BP, sign-symmetry, FA.

Xiao, Chen, Liao, Poggio (2018), "Biologically-plausible learning algorithms
can scale to large datasets", §3.1 "Training details" and Table 1.

    tfbio-train --config=configs/xiao2018_imagenet.py:model=resnet18,algo=ss \
        --workdir=/tmp/run
    tfbio-train --config=configs/xiao2018_imagenet.py:smoke=1 --workdir=/tmp/run

Arguments (``key=value``, comma separated):

    model   resnet18 (default; torchvision layout, ImageNet stem) | alexnet
            (torchvision layout with BN after every conv and FC layer, as
            "slightly modified" in §3.1)
    algo    bp (default) | ss | ss_lastbp | fa | fa_lastbp; ``*_lastbp``
            is "X for the conv layers and BP for the last, fully-connected
            layer" (Table 1 "SS + last layer BP")
    smoke   0 | 1

Recipe (§3.1): batch 256, 50 epochs, learning rate ÷10 every 10 epochs
(schedule "step"), SGD momentum 0.9. ResNet-18: BP lr 0.1, every other
algorithm lr 0.05 ("selected as the best from (0.1, 0.05, 0.01, 0.001,
0.0001)", footnote 3); weight decay 1e-4 for all ("momentum and weight
decay remain unchanged"). AlexNet, every algorithm: lr 0.01, weight decay
5e-4. Weight decay is added to the gradient (PyTorch SGD's coupled form;
the paper uses torchvision's AlexNet). Data: ``imagenet2012`` from
tensorflow-datasets, ``imagenet_train`` (random-resized crop + flip) /
``imagenet_eval`` (resize + center crop) at 224, evaluated on the
"validation" split (Table 1's "1-crop validation" error).

Smoke: the same network (the paper's ResNet-18 / AlexNet, not a stand-in),
at 64x64 (AlexNet's smallest listed input; ResNet-18 takes it too), on 64
``digits`` images, batch 16, one epoch of 2 steps.
"""


from tfbio.train import config as config_lib
from tfbio.train import config_args as common


MODELS = ("resnet18", "alexnet")
ALGOS = ("bp", "ss", "ss_lastbp", "fa", "fa_lastbp")
SMOKE_IMAGE_SIZE = 64


def get_config(arg=None):
  """The config of one Table 1 run; see the module docstring."""
  args = common.parse_arg(arg, model="resnet18", algo="bp", smoke=False,
                          choices={"model": MODELS, "algo": ALGOS})
  c = config_lib.base_config()

  # Model and feedback.
  if args["model"] == "resnet18":
    c.model.name = "resnet18"
    c.model.kwargs.stem = "imagenet"
  else:
    c.model.name = "alexnet"
    c.model.kwargs.batchnorm = True
  feedback, _, last = args["algo"].partition("_")
  common.set_feedback(c, feedback, last_layer="bp" if last else None)

  # Data.
  c.data.name = "imagenet2012"
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.preprocess_train = "imagenet_train"
  c.data.preprocess_eval = "imagenet_eval"
  c.data.image_size = 224

  # Optimisation.
  c.batch_size = 256
  c.epochs = 50
  c.loss.name = "softmax"
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.9
  if args["model"] == "resnet18":
    c.optimizer.learning_rate = 0.1 if feedback == "bp" else 0.05
    c.optimizer.weight_decay = 1e-4
  else:
    c.optimizer.learning_rate = 0.01
    c.optimizer.weight_decay = 5e-4
  c.schedule.name = "step"
  c.schedule.every_epochs = 10
  c.schedule.factor = 10.0

  c.checkpoint_every_steps = 1000
  c.log_every_steps = 100

  if args["smoke"]:
    common.apply_smoke(c, image_size=SMOKE_IMAGE_SIZE)
  return c
