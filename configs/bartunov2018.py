r"""bartunov2018: BP baselines and DTP / SDTP runs of its FC and LC nets.

Bartunov, Santoro, Richards, Marris, Hinton, Lillicrap (2018), "Assessing
the scalability of biologically-motivated deep learning algorithms and
architectures", §3 (3.1 MNIST, 3.2 CIFAR-10, 3.3 ImageNet; the
"Backpropagation", "DTP" and "SDTP" rows of Tables 1-3) and appendix
Table 4. ``algo=bp`` (default) trains with ``tfbio.train.Trainer``;
``algo=dtp|sdtp`` sets ``tp.enabled`` and trains by target propagation
(``tfbio.train.tp_trainer``, docs/algorithms.md §6).

    tfbio-train --config=configs/bartunov2018.py:model=cifar_lc,augment=1 \
        --workdir=/tmp/run
    tfbio-train --config=configs/bartunov2018.py:smoke=1 --workdir=/tmp/run
    tfbio-train --config=configs/bartunov2018.py:smoke=1,algo=sdtp \
        --workdir=/tmp/run
    tfbio-sweep --config=configs/bartunov2018.py:algo=dtp --random=60 \
        --workdir=/tmp/search

Arguments (``key=value``, comma separated):

    model    mnist_fc (default; 7 x 240 tanh) | cifar_fc (3 x 1024) |
             mnist_lc | cifar_lc | imagenet_lc (registry names
             ``bartunov2018_<model>``)
    augment  0 (default) | 1: CIFAR only, "random crops and left-right
             flips" (preprocess ``cifar_augment``; Table 2 "Augmented data")
    conv     0 (default) | 1: *_lc only, the "convolutional analog of the
             LC network" (§3.2: 31.23 % / 34.37 % train / test error)
    algo     bp (default) | dtp | sdtp (target propagation, denoising
             inverses, docs/algorithms.md §6)
    schedule parallel (default) | alternating: dtp/sdtp only, both losses
             every step, or one epoch each ("alternating" in §3.1)
    smoke    0 | 1

Recipe: Adam (§3). The paper gives no chosen BP hyper-parameters: Table 4
lists one random-search domain for "the model Adam optimizer" (learning rate
in [1e-5, 3e-4], β1 = 0.9, β2 in {0.99, 0.999}, ε in {1e-4, 1e-6, 1e-8};
"For backprop we optimized only the model Adam optimizer parameters", best
of 60 random draws). We take learning rate 1e-4 (inside that domain; the
usual Adam default 1e-3 lies outside it), β1 0.9, β2 0.999, ε 1e-8,
constant. Softmax cross-entropy ("followed by an output softmax layer").
Data: mnist (28x28), cifar10 (32x32), imagenet2012 "resized to 224 × 224"
(plain resize, no crop, evaluated on "validation"). The paper holds out
10,000 training images for model selection; the trainer evaluates on the
standard test split (ImageNet: validation) instead.

Epochs: ImageNet 18 ("Models were trained for 5 days, resulting in 18
passes over training set"); CIFAR 500 (the longest epoch axes of Figure 2);
MNIST: not recoverable (Figure 4's axes are lost in the extraction): 100.
Batch size: not stated anywhere: 100.

Target propagation: forward Adam = the BP recipe above, inverse Adam lr
1e-4, β1 0.9, β2 0.999, ε 1e-8, noise σ 0.1, DTP step α 0.1 (the centres
of Table 4's domains; the paper reports no chosen values). ``SEARCH_SPACE``
is Table 4 in config-field terms, for ``tfbio-sweep --random=N`` (the paper
draws 60 configurations, selected on 5 epochs' validation accuracy). What
the extraction of Table 4 gives: the learning rates of both Adams in
[1e-5, 3e-4], β1 "Fixed to 0.9", β2 in {0.99, 0.999}, ε in {1e-4, 1e-6,
1e-8}, α in [0.01, 0.2], σ in [0.01, 0.3]. It does not say how values are
drawn inside the intervals: we draw learning rates log-uniformly (they span
1.5 decades) and α, σ uniformly. For BP only the model Adam's entries apply
("For backprop we optimized only the model Adam optimizer parameters"); α
is unused by SDTP (drawing it is harmless).

Smoke: the same network on 64 ``digits`` images resized to 28 (MNIST nets),
32 (CIFAR nets) or 64 (imagenet_lc), batch 16, one epoch of 2 steps.
"""


from tfbio.train import config as config_lib
from tfbio.train import config_args as common


ALGOS = ("bp", "dtp", "sdtp")
TP_SCHEDULES = ("parallel", "alternating")

# bartunov2018 Table 4, {config field: (kind, low, high) or (kind, choices)};
# kind "log_uniform" / "uniform" on [low, high] or "choice". See the module
# docstring for what the extraction recovers.
SEARCH_SPACE = {
    "optimizer.learning_rate": ("log_uniform", 1e-5, 3e-4),
    "optimizer.beta_2": ("choice", (0.99, 0.999)),
    "optimizer.epsilon": ("choice", (1e-4, 1e-6, 1e-8)),
    "tp.inverse_learning_rate": ("log_uniform", 1e-5, 3e-4),
    "tp.inverse_beta_2": ("choice", (0.99, 0.999)),
    "tp.inverse_epsilon": ("choice", (1e-4, 1e-6, 1e-8)),
    "tp.step_size": ("uniform", 0.01, 0.2),
    "tp.noise_std": ("uniform", 0.01, 0.3),
}

# model: (dataset, image size, epochs, smoke image size).
MODELS = {
    "mnist_fc": ("mnist", 28, 100, 28),
    "cifar_fc": ("cifar10", 32, 500, 32),
    "mnist_lc": ("mnist", 28, 100, 28),
    "cifar_lc": ("cifar10", 32, 500, 32),
    "imagenet_lc": ("imagenet2012", 224, 18, 64),
}


def get_config(arg=None):
  """The config of one bartunov2018 run; see the module docstring."""
  args = common.parse_arg(arg, model="mnist_fc", augment=False, conv=False,
                          algo="bp", schedule="parallel", smoke=False,
                          choices={"model": tuple(MODELS), "algo": ALGOS,
                                   "schedule": TP_SCHEDULES})
  model = args["model"]
  dataset, image_size, epochs, smoke_size = MODELS[model]
  if args["augment"] and dataset != "cifar10":
    raise common.bad_arg("augment", args["augment"],
                         "augmentation is for the CIFAR models only")
  if args["conv"] and not model.endswith("_lc"):
    raise common.bad_arg("conv", args["conv"],
                         "the convolutional analog is for the *_lc models")
  if args["schedule"] != "parallel" and args["algo"] == "bp":
    raise common.bad_arg("schedule", args["schedule"],
                         "the schedule is for algo=dtp|sdtp")
  c = config_lib.base_config()

  # Model: backprop everywhere (TP uses the forward computation only).
  c.model.name = f"bartunov2018_{model}"
  if model.endswith("_lc"):
    c.model.kwargs.conv = bool(args["conv"])
  common.set_feedback(c, "bp")

  # Data.
  c.data.name = dataset
  c.data.train_split = "train"
  c.data.eval_split = "validation" if dataset == "imagenet2012" else "test"
  c.data.preprocess_train = "cifar_augment" if args["augment"] else "none"
  c.data.preprocess_eval = "none"
  c.data.image_size = image_size

  # Optimisation: Adam inside Table 4's search domain.
  c.batch_size = 100
  c.epochs = epochs
  c.loss.name = "softmax"
  common.set_adam(c, 1e-4)

  # Target propagation: base_config's tp defaults (denoising inverses,
  # sigma 0.1, alpha 0.1, inverse Adam 1e-4 / 0.999 / 1e-8: inside Table 4).
  if args["algo"] != "bp":
    c.tp.enabled = True
    c.tp.variant = args["algo"]
    c.tp.schedule = args["schedule"]

  c.checkpoint_every_steps = 1000 if dataset == "imagenet2012" else 500

  if args["smoke"]:
    common.apply_smoke(c, image_size=smoke_size)
  return c
