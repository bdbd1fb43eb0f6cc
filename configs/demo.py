r"""The main offline job: BP vs sign-symmetry vs feedback alignment, small scale.

xiao2018's comparison (§3.1: BP, SS, SS + last-layer BP, FA, FA + last-layer
BP) on liao2016's MNIST network (Table 1), on data that needs no internet:
Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` when it is
installed (``/usr/share/datasets/fashion-mnist/``), else scikit-learn's
bundled 8x8 digits resized to 28x28. ``make demo`` runs

    tfbio-sweep --config=configs/demo.py:train_examples=20000 \
        --axes='algo=bp|ss|ss_lastbp|fa|fa_lastbp,seed=0|1|2' \
        --verdict=xiao2018 --parallel=2 --workdir=runs/demo

and prints its ``results.md``: test error per algorithm over the 3 seeds
(mean ± std, n), ``curves.png`` (test error per epoch: mean, min–max band,
each seed) and a verdict on xiao2018's claims
(``tfbio.experiments.claims.xiao2018_verdict``); one cell alone:

    tfbio-train --config=configs/demo.py:algo=ss --workdir=/tmp/demo_ss

Arguments: ``algo`` bp (default) | ss | ss_lastbp | fa | fa_lastbp;
``data`` auto (default: Fashion-MNIST if present, else digits) | digits |
fashion; ``epochs`` (default 8 on digits, 3 on Fashion-MNIST); ``seed``
(default 0); ``lr_mult`` (default 1: the recipe's rate);
``train_examples`` (default 0: all; ``make demo`` takes the first 20,000,
which only Fashion-MNIST has); ``smoke`` 0 | 1 (a seconds-long run on 64 digits):

    tfbio-train --config=configs/demo.py:smoke=1,algo=fa --workdir=/tmp/s

Recipe (chosen for a 2-core CPU, not from a paper): SGD, momentum 0.9, lr
0.02, batch 32 (digits) / 100 (Fashion-MNIST), constant rate, He /
``U(±1/sqrt(n_in))`` initialisation as in xiao2018 (the scales ``ss`` and
``fa`` assume). Digits: about 10 s per algorithm; Fashion-MNIST: about a
minute per algorithm.
"""

from tfbio import data as data_lib
from tfbio.train import config as config_lib
from tfbio.train import config_args as common

ALGOS = {"bp": ("bp", None), "ss": ("ss", None), "ss_lastbp": ("ss", "bp"),
         "fa": ("fa", None), "fa_lastbp": ("fa", "bp")}


def get_config(arg=None):
  args = common.parse_arg(arg, algo="bp", data="auto", epochs=0, seed=0,
                          lr_mult=1.0, train_examples=0, smoke=False,
                          choices={"algo": tuple(ALGOS),
                                   "data": ("auto", "digits", "fashion")})
  data = args["data"]
  if data == "auto":
    data = "fashion" if data_lib.fashion_mnist_idx_present() else "digits"
  c = config_lib.base_config()
  c.seed = args["seed"]
  c.model.name = "liao2016_mnist"
  c.feedback, last = ALGOS[args["algo"]]
  c.last_layer = last
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.9
  if data == "fashion":
    c.data.name = "fashion_mnist_idx"
    c.batch_size = 100
    c.epochs = args["epochs"] or 3
    c.optimizer.learning_rate = 0.02
  else:
    c.data.name = "digits"
    c.data.image_size = 28
    c.batch_size = 32
    c.epochs = args["epochs"] or 8
    # 0.05 sent FA + last BP to chance within 8 epochs on every seed.
    c.optimizer.learning_rate = 0.02
  c.optimizer.lr_mult = args["lr_mult"]
  if args["train_examples"]:  # The first N training images.
    c.data.max_train_examples = args["train_examples"]
  c.checkpoint_every_steps = 500
  c.log_every_steps = 200
  if args["smoke"]:
    common.apply_smoke(c, image_size=28)
  return c
