r"""biotorch's Fashion-MNIST / MNIST benchmark recipe, for a side-by-side table.

biotorch (Sanfiz & Akrout 2021, "Benchmarking the Accuracy and Robustness of
Feedback Alignment Algorithms", its ``Benchmarks.md``, "MNIST &
Fashion-MNIST"): LeNet MNIST (``le_net_mnist``; tfbio.models.le_net), SGD
momentum 0.9, weight decay 1e-3, batch 64, images resized to 32x32,
100 epochs, the rate ÷10 at epochs 50 and 75; "the training set is split
into a 60k training and 10k validation partitions. The model with best
validation accuracy is then benchmarked with the same validation set" — the
10k test images. This config trains on the 60,000 training images and
evaluates on the 10,000 test images after every epoch; biotorch's figure is
the best of those (``best_eval_error``), the final one is reported beside
it. Published Fashion-MNIST errors (%): BP 9.2, FA 13.06, uSF 9.69,
brSF 10.02, frSF 9.61, DFA 12.81 (MNIST: 0.91, 1.7, 0.94, 0.91, 0.97,
1.61).

    tfbio-train --config=configs/biotorch.py:algo=usf,seed=0 --workdir=/tmp/bt
    tfbio-train --config=configs/biotorch.py:smoke=1,algo=brsf --workdir=/tmp/run

Arguments (``key=value``, comma separated):

    algo     bp (default) | fa | usf | brsf | frsf | dfa (biotorch's modes)
    seed     0 (default)
    lr       0 (default: the rule's rate, ``LEARNING_RATES``) or a rate
    data     fashion (default: the Debian package's IDX files) | mnist
             (``mnist_idx``: IDX files in data_dir) | digits (offline 8x8)
    epochs   100 (default); the decays stay at 50 % and 75 % of them
    train    0 (default: all 60,000) or the first N training images
    select   0 (default) | 1: the learning-rate selection protocol: train on
             the first 55,000 training images, evaluate on the last 5,000
             (``train[:55000]`` / ``train[55000:]``), never on the test set
    smoke    0 | 1

Each biotorch mode is mapped to the tfbio rule that forms the same ``B``
(read from biotorch 0.0.16's ``layers/fa_constructor``, every mode with its
benchmark option ``init: "xavier"``: Glorot-uniform kernels, zero biases —
the le_net_mnist default; docs/algorithms.md §1.1):

    bp     bp
    fa     fa                       B ~ Glorot uniform, drawn once
    usf    ss:scale=glorot          B = sign(W) sqrt(2 / (fan_in + fan_out))
    brsf   brsf:magnitude=glorot    B = |U(-a, a)| sign(W), redrawn per step,
                                    a = sqrt(6 / (fan_in + fan_out))
    frsf   frsf:magnitude=glorot    the same magnitudes drawn once
    dfa    dfa.enabled, block_outputs=kernel_inputs,
           feedback_structure=kernel (tfbio.dfa.DFAModel): the output error
           e reaches the input of every kernel layer but the first through
           a fixed B shaped like that layer's kernel with 10 output units
           (Glorot uniform): e B^T for fc1 / fc2, the convolution's input
           gradient for B at e repeated over its output positions for
           conv2 / conv3; from there to the previous layer's weights by
           back-propagation through pooling and ReLU; fc2 gets its true
           gradient (biotorch's layers/dfa, docs/algorithms.md §9)

(biotorch's "uSF" is not liao2016's unscaled ``usf``, which diverges under
this recipe.) Normalisation: ``(x - 0.2859) / 0.3530`` (Fashion-MNIST;
MNIST 0.1307 / 0.3081), biotorch's loader constants. Weight decay is
PyTorch SGD's coupled L2 on every variable (biases included), as biotorch's
``torch.optim.SGD(weight_decay=1e-3)``.

Learning rates: biotorch does not publish its MNIST / Fashion-MNIST rates
(its repository has configs for CIFAR-10 only, where LeNet uses 0.1 for BP
and the sign rules, 1e-3 for FA, 1e-4 for DFA). ``LEARNING_RATES`` are the
rates chosen on a held-out validation split (the last 5,000 of the 60,000
training images; docs/results/biotorch/README.md gives the selection runs),
not on the test images.
"""

from tfbio.train import config as config_lib
from tfbio.train import config_args as common

# biotorch mode -> tfbio feedback spec (docs/algorithms.md §1.1).
FEEDBACK = {
    "bp": "bp",
    "fa": "fa",
    "usf": "ss:scale=glorot",
    "brsf": "brsf:magnitude=glorot",
    "frsf": "frsf:magnitude=glorot",
    "dfa": "bp",  # The network's layers; DFAModel replaces the backward.
}
ALGOS = tuple(FEEDBACK)
# Chosen on validation (docs/results/biotorch/README.md: the lowest
# best-epoch error on train[55000:] after 20 epochs, 2026-12-04; grid
# 0.1 / 0.01 / 0.001, extended past an edge for fa and dfa).
LEARNING_RATES = {"bp": 0.01, "fa": 0.001, "usf": 0.01, "brsf": 0.01,
                  "frsf": 0.01, "dfa": 0.0001}
DATA = {
    "fashion": ("fashion_mnist_idx", "fashion_mnist_normalize"),
    "mnist": ("mnist_idx", "mnist_normalize"),
    "digits": ("digits", "none"),
}


def get_config(arg=None):
  """The config of one run; see the module docstring."""
  args = common.parse_arg(arg, algo="bp", seed=0, lr=0.0, data="fashion",
                          epochs=100, train=0, select=False, smoke=False,
                          choices={"algo": ALGOS, "data": tuple(DATA)})
  if args["lr"] < 0:
    raise common.bad_arg("lr", args["lr"], "must be >= 0")
  if args["epochs"] < 1:
    raise common.bad_arg("epochs", args["epochs"], "must be >= 1")
  if args["train"] < 0 or args["seed"] < 0:
    key = "train" if args["train"] < 0 else "seed"
    raise common.bad_arg(key, args[key], "must be >= 0")
  c = config_lib.base_config()
  c.seed = args["seed"]
  c.model.name = "le_net_mnist"
  common.set_feedback(c, FEEDBACK[args["algo"]])
  if args["algo"] == "dfa":
    c.dfa.enabled = True
    c.dfa.block_outputs = "kernel_inputs"
    c.dfa.feedback_structure = "kernel"

  c.data.name, preprocess = DATA[args["data"]]
  c.data.image_size = 32
  c.data.train_split = "train[:55000]" if args["select"] else "train"
  c.data.eval_split = "train[55000:]" if args["select"] else "test"
  c.data.preprocess_train = preprocess
  c.data.preprocess_eval = preprocess
  c.data.max_train_examples = args["train"] or None
  c.data.shuffle_buffer = 60000

  c.batch_size = 64
  c.epochs = args["epochs"]
  c.loss.name = "softmax"
  o = c.optimizer
  o.name = "sgd"
  o.learning_rate = args["lr"] or LEARNING_RATES[args["algo"]]
  o.momentum = 0.9
  o.weight_decay = 1e-3
  c.schedule.name = "piecewise"
  c.schedule.boundaries_epochs = (args["epochs"] // 2,
                                  (3 * args["epochs"]) // 4)
  c.schedule.multipliers = (1.0, 0.1, 0.01)
  if c.schedule.boundaries_epochs[0] < 1:
    c.schedule.name = "constant"
    c.schedule.boundaries_epochs = ()
    c.schedule.multipliers = (1.0,)
  c.checkpoint_every_steps = 2000
  c.log_every_steps = 500
  c.alignment = False

  if args["smoke"]:
    common.apply_smoke(c, image_size=32)
  return c
