"""The reproduction's cells: one training setting each, run once per seed.

A :class:`Cell` names a paper config (``configs/NAME.py:ARGS``), a label, its
epochs and CPU-sized overrides; :func:`build_cells` returns the table of
every cell the claims (:mod:`tfbio.experiments.claims`) use, and
:func:`job` turns ``(cell, seed, lr_mult)`` into a
:class:`tfbio.experiments.jobs.Job` under :class:`Options`.

Scale (the same for every claim unless its section says otherwise): the
first ``train_examples`` Fashion-MNIST training images and the first
``eval_examples`` test images, batch 100, a few epochs (per claim),
constant learning rate, no augmentation.
"""

import dataclasses
import os

from tfbio import data as data_lib
from tfbio.experiments import jobs as jobs_lib

CHANCE_ERROR = 90.0  # 10 classes.


def run_error(row):
  """A run's final test error (%); a diverged run counts as chance."""
  if row["status"] == "diverged":
    return CHANCE_ERROR
  return float(row["final_eval_error"])


@dataclasses.dataclass(frozen=True)
class Options:
  """What the reproduction's flags set.

  Attributes:
    out: output directory (report, plots, ``runs.csv``, ``runs/``).
    data: ``"fashion"`` or ``"digits"``.
    train_examples / eval_examples: Fashion-MNIST images used (first N).
    epoch_scale: multiplies every claim's epochs (at least 1 epoch).
    jobs: worker processes (one TensorFlow thread each).
    budget_minutes: no new run starts after this many minutes.
    repo: the repository root (``configs/`` is relative to it).
  """
  out: str = "docs/results"
  data: str = "fashion"
  train_examples: int = 10000
  eval_examples: int = 5000
  epoch_scale: float = 1.0
  jobs: int = 2
  budget_minutes: float = 60.0
  repo: str = "."


@dataclasses.dataclass(frozen=True)
class Cell:
  """A training setting.

  Attributes:
    config: ``configs/NAME.py:ARGS``.
    label: short name in tables and plots.
    epochs: epochs at ``epoch_scale=1``.
    overrides: ``((dotted config key, value), ...)`` on top of the config
      and the common data overrides.
    image_size: side the network takes (None: the data's own, 28).
    lr_mults: candidate ``optimizer.lr_mult`` values: seed 0 runs each, the
      best (lowest final test error) is used for the other seeds.
    lr_of: a cell id whose selected ``lr_mult`` this cell uses.
    cost: relative cost of one epoch (scheduling: longest runs first).
  """
  config: str
  label: str
  epochs: int
  overrides: tuple = ()
  image_size: int = None
  lr_mults: tuple = ()
  lr_of: str = None
  cost: float = 1.0


# Common to every run: alignment metrics per epoch, sparse logs, no decay.
COMMON = (("alignment", True), ("checkpoint_every_steps", 1000),
          ("log_every_steps", 1000), ("schedule.name", "constant"))

# xiao2018 §3.1: BP / SS / SS+last-BP / FA / FA+last-BP (configs/demo.py's
# recipe: SGD momentum 0.9, lr 0.02, batch 100), on liao2016's MNIST CNN
# (Table 1, no BN) and on a small ResNet-18 (CIFAR stem, width 16, BN).
XIAO_ALGOS = ("bp", "ss", "ss_lastbp", "fa", "fa_lastbp")
XIAO_LABELS = {"bp": "BP", "ss": "SS", "ss_lastbp": "SS + last BP",
               "fa": "FA", "fa_lastbp": "FA + last BP"}
XIAO_NETS = {"cnn": ("liao2016 MNIST CNN", ()),
             "resnet": ("ResNet-18 (width 16)",
                        (("model.name", "resnet18_cifar"),
                         ("model.kwargs.width", 16)))}

# liao2016 Exp. A / C1 (Tables 2, 4) on the MNIST column's network, the
# paper's recipe (batch 100, SGD/BM momentum 0.9, base lr 5e-4 x lr_mult)
# with the best of lr_mult {1, 10, 100}.
LIAO_A = ("sgd", "usf", "usf_bn", "usf_bn_bm", "brsf_bn_bm", "frsf_bn_bm",
          "rndf", "rndf_bn", "rndf_bn_bm")
LIAO_LABELS = {"sgd": "SGD", "usf": "uSF", "usf_bn": "uSF+BN",
               "usf_bn_bm": "uSF+BN+BM", "brsf_bn_bm": "brSF+BN+BM",
               "frsf_bn_bm": "frSF+BN+BM", "rndf": "RndF",
               "rndf_bn": "RndF+BN", "rndf_bn_bm": "RndF+BN+BM"}
LIAO_EPOCHS = 4
FLIPS = (25, 50, 75, 100)

# amit2019 §4: simpnet / deepnet / deepernet, BP (softmax), BP-H (hinge),
# URFB, FRFB (hinge), 100 % and 50 % connectivity, untied simpnet; plain SGD
# lr 0.1 as the paper, batch 100 (paper: 500; fewer examples here); images
# resized to 16x16 (deepernet at 32x32 alone would take ~50 worker-minutes
# of the hour on 2 cores).
AMIT_NETS = ("simpnet", "deepnet", "deepernet")
AMIT_SIZE = 16
AMIT_COST = {"simpnet": 1.0, "deepnet": 1.0, "deepernet": 3.5}
AMIT_EPOCHS = 5
AMIT_ALGOS = (("bp", 1.0), ("bp_hinge", 1.0), ("urfb", 1.0), ("frfb", 1.0),
              ("urfb", 0.5), ("frfb", 0.5))


def build_cells():
  """``{cell id: Cell}`` of every cell of the reproduction."""
  cells = {}
  for net, (_, extra) in XIAO_NETS.items():
    for algo in XIAO_ALGOS:
      cells[f"xiao-{net}-{algo}"] = Cell(
          config=f"configs/demo.py:data=fashion,algo={algo}",
          label=XIAO_LABELS[algo], epochs=6 if net == "cnn" else 2,
          overrides=extra, cost=1.0 if net == "cnn" else 6.0)
  liao = "configs/liao2016.py:model=mnist"
  for algo in LIAO_A:
    cells[f"liao-{algo}"] = Cell(
        config=f"{liao},algo={algo}", label=LIAO_LABELS[algo],
        epochs=LIAO_EPOCHS, lr_mults=(1.0, 10.0, 100.0))
  # Exp. B (Table 3): sign-flip probability, batchwise (brSF) and fixed
  # (frSF) random magnitudes, with BN + BM; lr of the family's p = 0 cell.
  for mode in ("brsf", "frsf"):
    for p in FLIPS:
      cells[f"liao-{mode}_p{p}_bn_bm"] = Cell(
          config=f"{liao},algo={mode}_p{p}_bn_bm",
          label=f"{mode} p={p / 100:g}", epochs=LIAO_EPOCHS,
          lr_of=f"liao-{mode}_bn_bm")
  # Exp. C2 (Table 4, "Bottom"): last layer random and frozen.
  for algo in ("sgd", "usf_bn_bm", "rndf_bn_bm"):
    cells[f"liao-{algo}-bottom"] = Cell(
        config=f"{liao},algo={algo},control=bottom",
        label=f"{LIAO_LABELS[algo]} (bottom)", epochs=LIAO_EPOCHS,
        lr_of=f"liao-{algo}")
  amit_data = (("batch_size", 100),)
  for net in AMIT_NETS:
    for algo, density in AMIT_ALGOS:
      suffix = "" if density == 1.0 else "-d50"
      cells[f"amit-{net}-{algo}{suffix}"] = Cell(
          config=(f"configs/amit2019_cifar.py:model={net},algo={algo},"
                  f"density={density}"),
          label=(f"{algo.upper().replace('_HINGE', '-H')}"
                 f"{' 50%' if suffix else ''}"),
          epochs=AMIT_EPOCHS, overrides=amit_data, cost=AMIT_COST[net],
          image_size=AMIT_SIZE)
  cells["amit-simpnet-urfb-untied"] = Cell(
      config="configs/amit2019_cifar.py:model=simpnet,algo=urfb,untied=1",
      label="URFB untied", epochs=AMIT_EPOCHS, overrides=amit_data, cost=2.0,
      image_size=AMIT_SIZE)
  # bartunov2018 §3.1: BP / DTP / SDTP on the 7 x 240 tanh FC network.
  for algo in ("bp", "dtp", "sdtp"):
    cells[f"bartunov-{algo}"] = Cell(
        config=f"configs/bartunov2018.py:model=mnist_fc,algo={algo}",
        label=algo.upper(), epochs=5, cost=0.5)
  return cells


def data_overrides(options, image_size):
  """Data overrides of a run under ``options`` (``data``: fashion|digits).

  Fashion-MNIST: the IDX files if present, else tensorflow-datasets'
  ``fashion_mnist``; the first ``train_examples`` / ``eval_examples``
  images; ``image_size`` None keeps 28x28. Digits (scikit-learn's 8x8
  images, 1,437 train / 360 test): resized to ``image_size`` or 28.
  """
  out = [("data.train_split", "train"), ("data.eval_split", "test"),
         ("data.preprocess_train", "none"), ("data.preprocess_eval", "none")]
  if options.data == "digits":
    return out + [("data.name", "digits"),
                  ("data.image_size", image_size or 28)]
  name = ("fashion_mnist_idx" if data_lib.fashion_mnist_idx_present()
          else "fashion_mnist")
  out += [("data.name", name),
          ("data.max_train_examples", options.train_examples),
          ("data.max_eval_examples", options.eval_examples)]
  if image_size:
    out.append(("data.image_size", image_size))
  return out


def epochs(cell, options):
  return max(1, int(round(cell.epochs * options.epoch_scale)))


def scale_tag(options):
  """The runs directory of a data scale, so that no run of another scale is
  reused: ``digits``, ``fashion-10000-5000``, ``...-x0.2`` (epoch scale)."""
  tag = (options.data if options.data == "digits" else
         f"{options.data}-{options.train_examples}-{options.eval_examples}")
  if options.epoch_scale == 1.0:
    return tag
  return f"{tag}-x{options.epoch_scale:g}"


def job(cells, cell_id, seed, lr_mult, options):
  """The :class:`~tfbio.experiments.jobs.Job` of one run of a cell."""
  cell = cells[cell_id]
  lr_dir = "default" if lr_mult is None else f"lr{lr_mult:g}"
  workdir = os.path.join(os.path.abspath(options.out), "runs",
                         scale_tag(options), cell_id, lr_dir, f"seed{seed}")
  overrides = (list(COMMON) + data_overrides(options, cell.image_size)
               + list(cell.overrides))
  overrides += [("epochs", epochs(cell, options)), ("seed", seed)]
  if lr_mult is not None:
    overrides.append(("optimizer.lr_mult", lr_mult))
  return jobs_lib.Job(
      name=f"{cell_id} lr_mult={lr_mult} seed {seed}",
      config=os.path.join(options.repo, cell.config), workdir=workdir,
      overrides=tuple(overrides), cost=cell.cost * epochs(cell, options),
      info=(("cell", cell_id), ("seed", seed), ("lr_mult", lr_mult)))
