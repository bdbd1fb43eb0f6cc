r"""Direct feedback alignment against BP and FA on fully connected networks.

Nøkland (2016), "Direct Feedback Alignment Provides Learning in Deep Neural
Networks" (NeurIPS): each hidden layer's error is the output error sent
through its own fixed random matrix, ``δ_l = (e B_l) ⊙ f'(a_l)``
(docs/algorithms.md §9; ``tfbio.dfa``). ``algo=dfa`` sets ``dfa.enabled``
(``tfbio.train.dfa_trainer``); ``bp`` and ``fa`` train the same network with
``tfbio.train.Trainer`` (``fa``: feedback alignment layer by layer, the
classifier included).

    tfbio-train --config=configs/dfa.py:algo=dfa --workdir=/tmp/dfa
    tfbio-train --config=configs/dfa.py:smoke=1,algo=dfa --workdir=/tmp/run
    tfbio-sweep --config=configs/dfa.py:data=digits \
        --axes='algo=bp|fa|dfa' --workdir=/tmp/dfa_sweep

Arguments (``key=value``, comma separated):

    model    mnist_fc (default: bartunov2018's 7 x 240 tanh) | cifar_fc
             (3 x 1024 tanh); registry names ``bartunov2018_<model>``
    algo     bp | fa | dfa (default)
    data     fashion (default: Fashion-MNIST, the Debian package's IDX files)
             | mnist (tensorflow-datasets) | digits (scikit-learn's 8x8,
             offline, resized to 28)
    scale    0 (default: 1/sqrt(n_outputs)) or the half-width s of
             B_l ~ U[-s, s]
    density  1.0 (default) | a fraction in (0, 1): sparse B_l
    smoke    0 | 1

Recipe (our choice; Nøkland trains with plain SGD, its per-network rates
are not recovered here): Adam lr 1e-4, β 0.9 / 0.999, batch 100, 100
epochs, constant rate, softmax cross-entropy (bartunov2018's FC recipe, so
that DFA sits beside the configs/bartunov2018.py BP / DTP / SDTP rows).
``dfa.bp_angle`` logs each hidden layer's angle to the true gradient.
"""

from tfbio.train import config as config_lib
from tfbio.train import config_args as common

ALGOS = ("bp", "fa", "dfa")
MODELS = {"mnist_fc": 28, "cifar_fc": 32}
DATA = {"fashion": "fashion_mnist_idx", "mnist": "mnist", "digits": "digits"}


def get_config(arg=None):
  """The config of one run; see the module docstring."""
  args = common.parse_arg(arg, model="mnist_fc", algo="dfa", data="fashion",
                          scale=0.0, density=1.0, smoke=False,
                          choices={"model": tuple(MODELS), "algo": ALGOS,
                                   "data": tuple(DATA)})
  if args["scale"] < 0:
    raise common.bad_arg("scale", args["scale"], "must be >= 0")
  if not 0 < args["density"] <= 1:
    raise common.bad_arg("density", args["density"], "must be in (0, 1]")
  if args["algo"] != "dfa" and (args["scale"] or args["density"] != 1.0):
    raise common.bad_arg("algo", args["algo"],
                         "scale and density are for algo=dfa")
  c = config_lib.base_config()

  # Model: the forward network; DFA replaces its whole backward pass.
  c.model.name = f"bartunov2018_{args['model']}"
  common.set_feedback(c, "fa" if args["algo"] == "fa" else "bp")
  if args["algo"] == "dfa":
    c.dfa.enabled = True
    c.dfa.feedback_scale = args["scale"] or None
    c.dfa.feedback_density = args["density"]

  # Data.
  c.data.name = DATA[args["data"]]
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.preprocess_train = "none"
  c.data.preprocess_eval = "none"
  c.data.image_size = MODELS[args["model"]]

  # Optimisation.
  c.batch_size = 100
  c.epochs = 100
  c.loss.name = "softmax"
  common.set_adam(c, 1e-4)
  c.checkpoint_every_steps = 500

  if args["smoke"]:
    common.apply_smoke(c, image_size=MODELS[args["model"]])
  return c
