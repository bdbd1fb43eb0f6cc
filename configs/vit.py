r"""A small Vision Transformer trained with BP, SS, FA, DFA and Kolen–Pollack.

``vit_tiny`` (tfbio.models: 4×4 patches, 4 pre-LayerNorm blocks of
MultiHeadAttention + MLP, dim 64; docs/algorithms.md §4) on Fashion-MNIST:
sign-symmetry (xiao2018), feedback alignment (lillicrap2016) and
Kolen–Pollack (akrout2019) in every weight layer — the patch embedding, the
query/key/value/output projections of every attention layer, the MLPs and
the head — against back-propagation. The attention product, LayerNorm and
the embeddings stay exact (docs/algorithms.md §2.5).

    tfbio-sweep --config=configs/vit.py \
        --axes='algo=bp|ss|fa|kp,seed=0|1|2' --parallel=2 --workdir=runs/vit
    tfbio-sweep --config=configs/vit.py:epochs=5 \
        --axes='algo=dfa,seed=0|1|2' --parallel=1 --workdir=runs/vit_dfa
    tfbio-train --config=configs/vit.py:smoke=1,algo=kp --workdir=/tmp/run

Arguments (``key=value``, comma separated):

    algo      bp (default) | ss | fa | kp (weight decay 1e-4 on W and B alike)
              | dfa (block-wise direct feedback alignment, Launay et al.
              2020: tfbio.dfa.DFAModel, one B_k per residual addition)
    seed      0 (default): weights, data order, feedback draws
    data      fashion (default: the Debian package's IDX files) | digits
    train     10000 (default): the first N training images (0: all 60,000)
    epochs    10 (default)
    smoke     0 | 1

Recipe (ours; no paper trains this network): Adam lr 1e-3, β 0.9 / 0.999,
batch 128, the rate ÷10 after 80 % of the epochs, coupled
weight decay 1e-4 (applied to every trained variable: for ``kp`` it decays
``W`` and ``B`` alike, which is Kolen–Pollack), softmax cross-entropy.
``dfa`` (``dfa.enabled``, ``tfbio.train.dfa_trainer``; docs/algorithms.md
§9): block-wise DFA (Launay et al. 2020, "Direct Feedback Alignment Scales to
Modern Deep Learning Tasks and Architectures"): every residual addition
(``block{i}_add1``, ``block{i}_add2``) ends a block whose output receives
``e B_k`` (``e`` = the error at the head's logits), back-propagated inside the
block only; the patch embedding trains inside the first block, the final
LayerNorm and the head with their true gradient. Same recipe, trained by
Keras ``fit`` (the same coupled weight decay on every variable; the data
order differs from the custom loop's).
"""

from tfbio.train import config as config_lib
from tfbio.train import config_args as common

ALGOS = ("bp", "ss", "fa", "kp", "dfa")


def get_config(arg=None):
  """The config of one run; see the module docstring."""
  args = common.parse_arg(arg, algo="bp", seed=0, data="fashion",
                          train=10000, epochs=10, smoke=False,
                          choices={"algo": ALGOS,
                                   "data": ("fashion", "digits")})
  for key in ("train", "epochs", "seed"):
    if args[key] < 0 or (key == "epochs" and args[key] < 1):
      raise common.bad_arg(key, args[key], "out of range")
  c = config_lib.base_config()
  c.seed = args["seed"]
  c.model.name = "vit_tiny"
  common.set_feedback(c, "bp" if args["algo"] == "dfa" else args["algo"])
  c.dfa.enabled = args["algo"] == "dfa"

  c.data.name = "fashion_mnist_idx" if args["data"] == "fashion" else "digits"
  c.data.image_size = 28
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.preprocess_train = "none"
  c.data.preprocess_eval = "none"
  c.data.max_train_examples = args["train"] or None

  c.batch_size = 128
  c.epochs = args["epochs"]
  c.loss.name = "softmax"
  common.set_adam(c, 1e-3)
  c.optimizer.weight_decay = 1e-4
  decay_at = max(1, int(round(0.8 * args["epochs"])))
  if decay_at < args["epochs"]:
    c.schedule.name = "piecewise"
    c.schedule.boundaries_epochs = (decay_at,)
    c.schedule.multipliers = (1.0, 0.1)
  c.checkpoint_every_steps = 500
  c.log_every_steps = 100

  if args["smoke"]:
    common.apply_smoke(c, image_size=28)
  return c
