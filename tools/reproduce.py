r"""Reproduction report: the seed papers' claims re-measured at CPU scale.

Runs a fixed list of experiments on real data that fits one CPU machine --
Fashion-MNIST (the IDX files of the Debian package ``dataset-fashion-mnist``
in ``/usr/share/datasets/fashion-mnist``, else tensorflow-datasets'
``fashion_mnist`` when it is prepared or reachable) and scikit-learn's
digits (the linear network needs no data) -- with every cell trained for
each of ``--seeds`` (three by default), and writes ``OUT/README.md`` (one
section per claim: the paper's expectation, the rule that decides the
verdict, the measured mean ± std, the verdict) plus PNG plots::

    .venv/bin/python tools/reproduce.py --out docs/results       # ~60 min
    .venv/bin/python tools/reproduce.py --out /tmp/r --only liao2016_b
    .venv/bin/python tools/reproduce.py --out docs/results --budget_minutes 20

Every run is a ``tfbio.train`` run of one of the paper configs in
``configs/`` (the same code as ``tfbio-train``) with a CPU-sized override
set (below), in ``OUT/runs/<cell>/lr<m>/seed<s>/``; a run whose
``result.json`` exists is not run again, so an interrupted report resumes
where it stopped (a half-finished run resumes from its checkpoint).
``--jobs`` worker processes (2 by default, one TensorFlow thread each: on
2 cores two small runs side by side beat one run on two threads) take the
runs longest-first. After ``--budget_minutes`` no new run is started; the
report is still written, claims with missing runs are marked INCOMPLETE, and
the same command later finishes them.

Scale (the same for every claim unless its section says otherwise): the
first 10,000 Fashion-MNIST training images and the first 5,000 test images
(``--train_examples`` / ``--eval_examples``), batch 100, a few epochs (per
claim), constant learning rate, no augmentation. Errors are the **final**
test error (%) of each run (not the best over epochs); a run that diverges
(NaN loss) counts as chance error (90 %) and is flagged. Where a paper picks
the best of several learning rates (liao2016: "the best of five"
multipliers), seed 0 is run at each candidate multiplier and the one with
the lowest final test error is used for the other seeds (test-set selection,
like the paper's; stated in the tables).

Verdict rules are fixed in this file *before* any run (they are printed
in the report) and are never adjusted to the outcome; "close" is liao2016's
own threshold (within 3 points of the baseline) unless stated.
"""

import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
CHANCE_ERROR = 90.0  # 10 classes.

FLAGS = flags.FLAGS


@dataclasses.dataclass
class Options:
  """What the flags set (module-level ``OPTS``; tests set it directly)."""
  out: str = "docs/results"
  data: str = "fashion"
  train_examples: int = 10000
  eval_examples: int = 5000
  epoch_scale: float = 1.0
  jobs: int = 2
  budget_minutes: float = 60.0


OPTS = Options()


def _define_flags():
  """The command-line flags (only when run as a program: importing this
  module, as the worker processes and the tests do, defines none)."""
  flags.DEFINE_string("out", "docs/results", "Output directory (report, "
                      "plots, runs/).")
  flags.DEFINE_float("budget_minutes", 60.0, "Start no new run after this "
                     "many minutes (the report is written anyway).")
  flags.DEFINE_list("only", [], "Claims to run (default: all). Known: "
                    "xiao2018, xiao2018_alignment, liao2016_a, liao2016_b, "
                    "liao2016_c2, amit2019, amit2019_linear, bartunov2018.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every cell (>= 3 "
                    "for the report's mean ± std).")
  flags.DEFINE_integer("jobs", 2, "Worker processes (one TF thread each).",
                       lower_bound=1)
  flags.DEFINE_integer("train_examples", 10000, "Fashion-MNIST training "
                       "images used (the first N).", lower_bound=100)
  flags.DEFINE_integer("eval_examples", 5000, "Fashion-MNIST test images "
                       "used (the first N).", lower_bound=100)
  flags.DEFINE_enum("data", "auto", ["auto", "fashion", "digits"],
                    "auto: Fashion-MNIST if its IDX files are installed, else "
                    "scikit-learn's digits (an easier task; fresh offline "
                    "machines); fashion: the IDX files or "
                    "tensorflow-datasets' fashion_mnist.")
  flags.DEFINE_float("epoch_scale", 1.0, "Multiplies every claim's epochs "
                     "(smoke: e.g. 0.2; at least 1 epoch).", lower_bound=0.0)


# --------------------------------------------------------------------------
# Cells: one training setting, run once per seed.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cell:
  """A training setting.

  Attributes:
    config: ``configs/NAME.py:ARGS``.
    label: short name in tables and plots.
    epochs: epochs at ``--epoch_scale=1``.
    overrides: ``((dotted config key, value), ...)`` on top of the config
      and the common data overrides.
    lr_mults: candidate ``optimizer.lr_mult`` values: seed 0 runs each, the
      best (lowest final test error) is used for the other seeds.
    lr_of: a cell id whose selected ``lr_mult`` this cell uses.
    cost: relative cost of one epoch (scheduling: longest runs first).
    image_size: side the network takes (None: the data's own, 28).
  """
  config: str
  label: str
  epochs: int
  overrides: tuple = ()
  image_size: int = None
  lr_mults: tuple = ()
  lr_of: str = None
  cost: float = 1.0


def _fashion_idx_present():
  return os.path.isdir(FASHION_DIR) and any(
      n.startswith("train-images") for n in os.listdir(FASHION_DIR))


def data_overrides(data, image_size):
  """Data overrides of a run: ``data`` is "fashion" or "digits".

  Fashion-MNIST: the IDX files if present, else tensorflow-datasets'
  ``fashion_mnist``; the first ``--train_examples`` / ``--eval_examples``
  images; ``image_size`` None keeps 28x28. Digits (scikit-learn's 8x8
  images, 1,437 train / 360 test): resized to ``image_size`` or 28.
  """
  out = [("data.train_split", "train"), ("data.eval_split", "test"),
         ("data.preprocess_train", "none"), ("data.preprocess_eval", "none")]
  if data == "digits":
    return out + [("data.name", "digits"),
                  ("data.image_size", image_size or 28)]
  name = "fashion_mnist_idx" if _fashion_idx_present() else "fashion_mnist"
  out += [("data.name", name),
          ("data.max_train_examples", OPTS.train_examples),
          ("data.max_eval_examples", OPTS.eval_examples)]
  if image_size:
    out.append(("data.image_size", image_size))
  return out


_COMMON = (("alignment", True), ("checkpoint_every_steps", 1000),
           ("log_every_steps", 1000), ("schedule.name", "constant"))

CELLS = {}


def _cell(cell_id, **kwargs):
  CELLS[cell_id] = Cell(**kwargs)
  return cell_id


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
for _net, (_, _extra) in XIAO_NETS.items():
  for _algo in XIAO_ALGOS:
    _cell(f"xiao-{_net}-{_algo}",
          config=f"configs/demo.py:data=fashion,algo={_algo}",
          label=XIAO_LABELS[_algo], epochs=6 if _net == "cnn" else 2,
          overrides=_extra, cost=1.0 if _net == "cnn" else 6.0)

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
_LIAO = "configs/liao2016.py:model=mnist"
for _algo in LIAO_A:
  _cell(f"liao-{_algo}", config=f"{_LIAO},algo={_algo}",
        label=LIAO_LABELS[_algo], epochs=LIAO_EPOCHS,
        lr_mults=(1.0, 10.0, 100.0))
# Exp. B (Table 3): sign-flip probability, batchwise (brSF) and fixed
# (frSF) random magnitudes, with BN + BM; lr of the same family's p = 0 cell.
FLIPS = (25, 50, 75, 100)
for _mode in ("brsf", "frsf"):
  for _p in FLIPS:
    _cell(f"liao-{_mode}_p{_p}_bn_bm",
          config=f"{_LIAO},algo={_mode}_p{_p}_bn_bm",
          label=f"{_mode} p={_p / 100:g}", epochs=LIAO_EPOCHS,
          lr_of=f"liao-{_mode}_bn_bm")
# Exp. C2 (Table 4, "Bottom"): last layer random and frozen.
for _algo in ("sgd", "usf_bn_bm", "rndf_bn_bm"):
  _cell(f"liao-{_algo}-bottom",
        config=f"{_LIAO},algo={_algo},control=bottom",
        label=f"{LIAO_LABELS[_algo]} (bottom)", epochs=LIAO_EPOCHS,
        lr_of=f"liao-{_algo}")

# amit2019 §4: simpnet / deepnet / deepernet, BP (softmax), BP-H (hinge),
# URFB, FRFB (hinge), 100 % and 50 % connectivity, untied simpnet; plain SGD
# lr 0.1 as the paper, batch 100 (paper: 500; fewer examples here); images
# resized to 16x16 (deepernet at 32x32 alone would take ~50 worker-minutes
# of the hour on 2 cores).
AMIT_NETS = ("simpnet", "deepnet", "deepernet")
AMIT_SIZE = 16
AMIT_COST = {"simpnet": 1.0, "deepnet": 1.0, "deepernet": 3.5}
AMIT_EPOCHS = 5
_AMIT_DATA = (("batch_size", 100),)
for _net in AMIT_NETS:
  for _algo, _density in (("bp", 1.0), ("bp_hinge", 1.0), ("urfb", 1.0),
                          ("frfb", 1.0), ("urfb", 0.5), ("frfb", 0.5)):
    _suffix = "" if _density == 1.0 else "-d50"
    _cell(f"amit-{_net}-{_algo}{_suffix}",
          config=(f"configs/amit2019_cifar.py:model={_net},algo={_algo},"
                  f"density={_density}"),
          label=f"{_algo.upper().replace('_HINGE', '-H')}"
                f"{' 50%' if _suffix else ''}",
          epochs=AMIT_EPOCHS, overrides=_AMIT_DATA, cost=AMIT_COST[_net],
          image_size=AMIT_SIZE)
_cell("amit-simpnet-urfb-untied",
      config="configs/amit2019_cifar.py:model=simpnet,algo=urfb,untied=1",
      label="URFB untied", epochs=AMIT_EPOCHS, overrides=_AMIT_DATA, cost=2.0,
      image_size=AMIT_SIZE)

# bartunov2018 §3.1: BP / DTP / SDTP on the 7 x 240 tanh FC network.
for _algo in ("bp", "dtp", "sdtp"):
  _cell(f"bartunov-{_algo}",
        config=f"configs/bartunov2018.py:model=mnist_fc,algo={_algo}",
        label=_algo.upper(), epochs=5, cost=0.5)


# --------------------------------------------------------------------------
# Results of runs.
# --------------------------------------------------------------------------


class Results:
  """Per cell, per seed: the result dicts of the finished runs."""

  def __init__(self, rows, selected):
    self.rows = rows          # {(cell_id, seed): result}
    self.selected = selected  # {cell_id: lr_mult}

  def errors(self, cell_id, seeds):
    """Final test errors (%) of the cell's finished seeds (diverged: 90)."""
    out = []
    for s in seeds:
      r = self.rows.get((cell_id, s))
      if r is None:
        continue
      out.append(CHANCE_ERROR if r["status"] == "diverged"
                 else r["final_eval_error"])
    return out

  def complete(self, cell_id, seeds):
    return all((cell_id, s) in self.rows for s in seeds)

  def diverged(self, cell_id, seeds):
    return sum(1 for s in seeds
               if self.rows.get((cell_id, s), {}).get("status") == "diverged")

  def history(self, cell_id, seed):
    r = self.rows.get((cell_id, seed))
    if r is None:
      return []
    return _read_csv(os.path.join(r["workdir"], "history.csv"))


def _read_csv(path):
  import csv  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    return []
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def _mean(values):
  return sum(values) / len(values) if values else math.nan


def _std(values):
  if len(values) < 2:
    return 0.0
  m = _mean(values)
  return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _fmt(values, diverged=0):
  if not values:
    return "—"
  text = f"{_mean(values):.2f} ± {_std(values):.2f}"
  if diverged:
    text += f" ({diverged} diverged)"
  return text


# --------------------------------------------------------------------------
# Claims: expectation, rule, table, verdict, plot.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Verdict:
  holds: object           # True, False or None (incomplete).
  parts: list              # [(text, bool)]


class Claim:
  """One claim of a seed paper; subclasses define cells and the rule."""
  name = ""
  paper = ""
  expected = ""
  rule = ""
  setup = ""
  cells = ()

  def all_cells(self):
    return list(self.cells)

  def table(self, res, seeds):
    raise NotImplementedError

  def verdict(self, res, seeds):
    raise NotImplementedError

  def plot(self, res, seeds, out_dir):
    return []


def _m(res, cell_id, seeds):
  return _mean(res.errors(cell_id, seeds))


def _simple_table(res, seeds, rows, header="setting"):
  lines = [f"| {header} | test error % (mean ± std) | n | lr_mult |",
           "|---|---|---|---|"]
  for cell_id in rows:
    cell = CELLS[cell_id]
    lr = res.selected.get(cell_id, "")
    lines.append(f"| {cell.label} | "
                 f"{_fmt(res.errors(cell_id, seeds), res.diverged(cell_id, seeds))}"
                 f" | {len(res.errors(cell_id, seeds))} | {lr} |")
  return "\n".join(lines)


class Xiao2018(Claim):
  name = "xiao2018"
  paper = "xiao2018 §3.1, Table 1 / Fig. 1"
  expected = ("Sign-symmetry, with and without a BP last layer, trains "
              "nearly as well as BP; feedback alignment is clearly worse, "
              "and better with a BP last layer than without.")
  rule = ("Per network: SS and SS + last BP mean error ≤ BP + 3 points; FA "
          "≥ BP + 3 points; FA + last BP < FA (means). HOLDS if every part "
          "holds on both networks.")
  setup = ("configs/demo.py recipe (SGD, momentum 0.9, lr 0.02, batch 100, "
           "constant rate, xiao2018's He / U(±1/√n) initialisation); "
           "liao2016's MNIST CNN (no BN) 6 epochs; ResNet-18 with the CIFAR "
           "stem at width 16 (BN) 2 epochs. Paper: ImageNet, ResNet-18 and "
           "AlexNet, 20+ epochs.")
  cells = tuple(f"xiao-{n}-{a}" for n in XIAO_NETS for a in XIAO_ALGOS)

  def table(self, res, seeds):
    lines = ["| network | " + " | ".join(XIAO_LABELS[a] for a in XIAO_ALGOS)
             + " |", "|---|" + "---|" * len(XIAO_ALGOS)]
    for net, (title, _) in XIAO_NETS.items():
      lines.append(f"| {title} | " + " | ".join(
          _fmt(res.errors(f"xiao-{net}-{a}", seeds),
               res.diverged(f"xiao-{net}-{a}", seeds)) for a in XIAO_ALGOS)
                   + " |")
    return "\n".join(lines)

  def verdict(self, res, seeds):
    parts = []
    for net, (title, _) in XIAO_NETS.items():
      e = {a: _m(res, f"xiao-{net}-{a}", seeds) for a in XIAO_ALGOS}
      for a in ("ss", "ss_lastbp"):
        parts.append((f"{title}: {XIAO_LABELS[a]} {e[a]:.2f} ≤ BP "
                      f"{e['bp']:.2f} + 3", e[a] <= e["bp"] + 3))
      parts.append((f"{title}: FA {e['fa']:.2f} ≥ BP {e['bp']:.2f} + 3",
                    e["fa"] >= e["bp"] + 3))
      parts.append((f"{title}: FA + last BP {e['fa_lastbp']:.2f} < FA "
                    f"{e['fa']:.2f}", e["fa_lastbp"] < e["fa"]))
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    groups = {title: [(XIAO_LABELS[a], res.errors(f"xiao-{net}-{a}", seeds))
                      for a in XIAO_ALGOS]
              for net, (title, _) in XIAO_NETS.items()}
    return [_bar_plot(groups, os.path.join(out_dir, "xiao2018_bp_ss_fa.png"),
                      "xiao2018 §3.1 at CPU scale: Fashion-MNIST test error")]


class XiaoAlignment(Claim):
  name = "xiao2018_alignment"
  paper = "xiao2018 §4.1, Fig. 3(a)"
  expected = ("With sign-symmetry, the average alignment angle between "
              "forward and feedback weights *increases* during training, "
              "and so does the average kurtosis of the forward weights.")
  rule = ("On the SS run of liao2016's CNN (the xiao2018 claim's runs, 6 "
          "epochs): the mean over seeds of the network-average angle and "
          "kurtosis at the last epoch > at epoch 1. HOLDS if both rise.")
  setup = "The xiao2018 claim's SS and SS + last BP runs (alignment logged "\
          "every epoch by tfbio-train)."
  cells = ("xiao-cnn-ss", "xiao-cnn-ss_lastbp")

  def _curve(self, res, cell_id, seeds, key):
    curves = [[float(r[key]) for r in res.history(cell_id, s)] for s in seeds]
    curves = [c for c in curves if c]
    if not curves:
      return []
    n = min(len(c) for c in curves)
    return [_mean([c[i] for c in curves]) for i in range(n)]

  def table(self, res, seeds):
    lines = ["| run | metric | per epoch (mean over seeds) |", "|---|---|---|"]
    for cell_id in self.cells:
      for key in ("alignment_angle", "weight_kurtosis"):
        curve = self._curve(res, cell_id, seeds, key)
        lines.append(f"| {CELLS[cell_id].label} | {key} | "
                     + ", ".join(f"{v:.3g}" for v in curve) + " |")
    return "\n".join(lines)

  def verdict(self, res, seeds):
    parts = []
    for key in ("alignment_angle", "weight_kurtosis"):
      c = self._curve(res, "xiao-cnn-ss", seeds, key)
      if len(c) < 2:
        parts.append((f"SS {key}: fewer than 2 epochs logged", False))
        continue
      parts.append((f"SS {key}: epoch 1 {c[0]:.3g} → epoch {len(c)} "
                    f"{c[-1]:.3g}", c[-1] > c[0]))
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    plt = _pyplot()
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax2 = ax1.twinx()
    for cell_id, style in zip(self.cells, ("-", "--")):
      label = CELLS[cell_id].label
      a = self._curve(res, cell_id, seeds, "alignment_angle")
      k = self._curve(res, cell_id, seeds, "weight_kurtosis")
      ax1.plot(range(1, len(a) + 1), a, style, color="tab:blue",
               label=f"{label}: angle")
      ax2.plot(range(1, len(k) + 1), k, style, color="tab:red",
               label=f"{label}: kurtosis")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("mean alignment angle (°)", color="tab:blue")
    ax2.set_ylabel("mean weight kurtosis", color="tab:red")
    lines = ax1.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7)
    ax1.set_title("xiao2018 Fig. 3(a) analogue: liao2016 CNN, Fashion-MNIST")
    return [_save(fig, os.path.join(out_dir, "xiao2018_fig3_alignment.png"))]


class Liao2016A(Claim):
  name = "liao2016_a"
  paper = "liao2016 Exp. A / C1, Tables 2 and 4"
  expected = ("uSF without BN diverges or stalls; uSF+BN, uSF+BN+BM, "
              "brSF+BN+BM and frSF+BN+BM are close to SGD; RndF alone is "
              "poor and improves with BN.")
  rule = ("(a) uSF: a seed diverged, or mean ≥ SGD + 10 points (stalls); "
          "(b) uSF+BN, uSF+BN+BM, brSF+BN+BM, frSF+BN+BM each ≤ SGD + 3 "
          "points (liao2016's 'worse by 3 % or more' threshold); (c) RndF ≥ "
          "SGD + 3 points; (d) RndF+BN < RndF. HOLDS if all hold.")
  setup = (f"configs/liao2016.py (model=mnist, the paper's recipe: batch "
           f"100, momentum 0.9, base lr 5e-4 × lr_mult, BM setting 1, "
           f"affine-free BN) at {LIAO_EPOCHS} epochs with a constant rate "
           f"(paper: 65 epochs, ÷10 at 50 and 60); lr_mult the best of "
           f"{{1, 10, 100}} on seed 0 (paper: best of 100 … 0.01).")
  cells = tuple(f"liao-{a}" for a in LIAO_A)

  def table(self, res, seeds):
    return _simple_table(res, seeds, self.cells, "condition")

  def verdict(self, res, seeds):
    e = {a: _m(res, f"liao-{a}", seeds) for a in LIAO_A}
    sgd = e["sgd"]
    usf_div = res.diverged("liao-usf", seeds)
    parts = [(f"(a) uSF {e['usf']:.2f} ({usf_div} diverged) ≥ SGD {sgd:.2f} "
              f"+ 10 or diverged", usf_div > 0 or e["usf"] >= sgd + 10)]
    for a in ("usf_bn", "usf_bn_bm", "brsf_bn_bm", "frsf_bn_bm"):
      parts.append((f"(b) {LIAO_LABELS[a]} {e[a]:.2f} ≤ SGD {sgd:.2f} + 3",
                    e[a] <= sgd + 3))
    parts.append((f"(c) RndF {e['rndf']:.2f} ≥ SGD {sgd:.2f} + 3",
                  e["rndf"] >= sgd + 3))
    parts.append((f"(d) RndF+BN {e['rndf_bn']:.2f} < RndF {e['rndf']:.2f}",
                  e["rndf_bn"] < e["rndf"]))
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    groups = {"": [(CELLS[c].label, res.errors(c, seeds)) for c in self.cells]}
    return [_bar_plot(groups, os.path.join(out_dir, "liao2016_exp_a.png"),
                      "liao2016 Exp. A / C1 at CPU scale (Fashion-MNIST)",
                      rotate=True)]


class Liao2016B(Claim):
  name = "liao2016_b"
  paper = "liao2016 Exp. B, Table 3"
  expected = ("Test error grows as the probability that a feedback sign "
              "disagrees with the forward sign goes 0 → 0.25 → 0.5 → 0.75 → 1, "
              "for batchwise-random (brSF) and fixed-random (frSF) "
              "magnitudes.")
  rule = ("For each of brSF and frSF (+BN+BM): each step's mean error ≥ the "
          "previous step's − 1 point (non-decreasing up to noise), and p = 1 "
          "≥ p = 0 + 10 points. HOLDS if both modes pass.")
  setup = ("As liao2016_a; p = 0 is the brSF+BN+BM / frSF+BN+BM cell, every "
           "p uses that cell's selected lr_mult.")
  cells = tuple([f"liao-{m}_bn_bm" for m in ("brsf", "frsf")]
                + [f"liao-{m}_p{p}_bn_bm" for m in ("brsf", "frsf")
                   for p in FLIPS])

  @staticmethod
  def _ids(mode):
    return [f"liao-{mode}_bn_bm"] + [f"liao-{mode}_p{p}_bn_bm" for p in FLIPS]

  def table(self, res, seeds):
    lines = ["| mode | " + " | ".join(f"p = {p / 100:g}" for p in (0,) + FLIPS)
             + " |", "|---|" + "---|" * (len(FLIPS) + 1)]
    for mode in ("brsf", "frsf"):
      lines.append(f"| {mode} | " + " | ".join(
          _fmt(res.errors(c, seeds), res.diverged(c, seeds))
          for c in self._ids(mode)) + " |")
    return "\n".join(lines)

  def verdict(self, res, seeds):
    parts = []
    for mode in ("brsf", "frsf"):
      e = [_m(res, c, seeds) for c in self._ids(mode)]
      mono = all(b >= a - 1 for a, b in zip(e, e[1:]))
      parts.append((f"{mode}: " + " → ".join(f"{v:.2f}" for v in e)
                    + " non-decreasing (± 1)", mono))
      parts.append((f"{mode}: p = 1 {e[-1]:.2f} ≥ p = 0 {e[0]:.2f} + 10",
                    e[-1] >= e[0] + 10))
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p / 100 for p in (0,) + FLIPS]
    for mode in ("brsf", "frsf"):
      errs = [res.errors(c, seeds) for c in self._ids(mode)]
      ax.errorbar(xs, [_mean(e) for e in errs], yerr=[_std(e) for e in errs],
                  marker="o", capsize=3, label=f"{mode} + BN + BM")
    ax.set_xlabel("probability that a feedback sign disagrees")
    ax.set_ylabel("test error % (mean ± std)")
    ax.set_title("liao2016 Exp. B at CPU scale (Fashion-MNIST)")
    ax.legend()
    return [_save(fig, os.path.join(out_dir, "liao2016_exp_b.png"))]


class Liao2016C2(Claim):
  name = "liao2016_c2"
  paper = "liao2016 Exp. C2, Table 4 (Bottom)"
  expected = ("With the last layer initialised randomly and frozen, "
              "sign-concordant feedback (uSF+BN+BM) still learns good "
              "representations, random feedback (RndF+BN+BM) does not.")
  rule = ("With control=bottom: uSF+BN+BM ≤ SGD + 3 points; RndF+BN+BM ≥ "
          "SGD + 10 points. HOLDS if both hold.")
  setup = ("As liao2016_a with the last layer frozen at its random "
           "initialisation (freeze '@classifier'); each uses the lr_mult "
           "selected for the same condition in liao2016_a.")
  cells = ("liao-sgd-bottom", "liao-usf_bn_bm-bottom", "liao-rndf_bn_bm-bottom")

  def table(self, res, seeds):
    return _simple_table(res, seeds, self.cells, "condition")

  def verdict(self, res, seeds):
    sgd, usf, rnd = (_m(res, c, seeds) for c in self.cells)
    parts = [(f"uSF+BN+BM {usf:.2f} ≤ SGD {sgd:.2f} + 3", usf <= sgd + 3),
             (f"RndF+BN+BM {rnd:.2f} ≥ SGD {sgd:.2f} + 10", rnd >= sgd + 10)]
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    groups = {"": [(CELLS[c].label, res.errors(c, seeds)) for c in self.cells]}
    return [_bar_plot(groups, os.path.join(out_dir, "liao2016_exp_c2.png"),
                      "liao2016 Exp. C2 (last layer frozen), Fashion-MNIST")]


class Amit2019(Claim):
  name = "amit2019"
  paper = "amit2019 §4, Figs. 4–7, 9, 10"
  expected = ("URFB is close to BP and better than FRFB, with the gap "
              "growing with depth (simpnet → deepnet → deepernet), with and "
              "without 50 % connectivity; BP with the hinge loss is close to "
              "BP with softmax; the W–B correlation is higher for URFB; an "
              "untied (locally connected) simpnet is about as good as the "
              "tied one.")
  rule = ("(a) per net, URFB ≤ BP-H + 3 points; (b) per net and density, "
          "URFB < FRFB; (c) per density, the FRFB − URFB gap rises simpnet "
          "< deepnet < deepernet; (d) per net, |BP − BP-H| ≤ 3 points; (e) "
          "per net, final mean corr(W, B) URFB > FRFB; (f) |untied URFB − "
          "tied URFB| ≤ 3 points on simpnet. HOLDS if all hold.")
  setup = (f"configs/amit2019_cifar.py networks on Fashion-MNIST resized to "
           f"{AMIT_SIZE}×{AMIT_SIZE}×1 (paper: CIFAR-10 32×32×3), plain SGD "
           f"lr 0.1 (the paper's), batch 100 (paper: "
           f"500), {AMIT_EPOCHS} epochs (paper: 1,000 on CIFAR-10), hinge "
           f"loss for BP-H / URFB / FRFB, softmax for BP.")
  cells = tuple(f"amit-{n}-{a}" for n in AMIT_NETS
                for a in ("bp", "bp_hinge", "urfb", "frfb", "urfb-d50",
                          "frfb-d50")) + ("amit-simpnet-urfb-untied",)

  def table(self, res, seeds):
    cols = ("bp", "bp_hinge", "urfb", "frfb", "urfb-d50", "frfb-d50")
    heads = ("BP", "BP-H", "URFB", "FRFB", "URFB 50 %", "FRFB 50 %")
    lines = ["| network | " + " | ".join(heads) + " | corr(W,B) URFB / FRFB |",
             "|---|" + "---|" * (len(cols) + 1)]
    for net in AMIT_NETS:
      corr = [self._corr(res, f"amit-{net}-{a}", seeds)
              for a in ("urfb", "frfb")]
      lines.append(f"| {net} | " + " | ".join(
          _fmt(res.errors(f"amit-{net}-{c}", seeds),
               res.diverged(f"amit-{net}-{c}", seeds)) for c in cols)
                   + f" | {corr[0]:.3f} / {corr[1]:.3f} |")
    lines.append("| simpnet untied (URFB) | | | "
                 + _fmt(res.errors("amit-simpnet-urfb-untied", seeds))
                 + " | | | | |")
    return "\n".join(lines)

  def _corr(self, res, cell_id, seeds):
    vals = []
    for s in seeds:
      h = res.history(cell_id, s)
      if h and h[-1].get("wb_correlation") not in (None, "", "nan"):
        vals.append(float(h[-1]["wb_correlation"]))
    return _mean(vals)

  def verdict(self, res, seeds):
    e = {c: _m(res, c, seeds) for c in self.cells}
    parts = []
    for net in AMIT_NETS:
      u, f, bh, bp = (e[f"amit-{net}-{a}"]
                      for a in ("urfb", "frfb", "bp_hinge", "bp"))
      parts.append((f"(a) {net}: URFB {u:.2f} ≤ BP-H {bh:.2f} + 3",
                    u <= bh + 3))
      for d in ("", "-d50"):
        u, f = e[f"amit-{net}-urfb{d}"], e[f"amit-{net}-frfb{d}"]
        parts.append((f"(b) {net}{d}: URFB {u:.2f} < FRFB {f:.2f}", u < f))
      parts.append((f"(d) {net}: |BP {bp:.2f} − BP-H {bh:.2f}| ≤ 3",
                    abs(bp - bh) <= 3))
      cu = self._corr(res, f"amit-{net}-urfb", seeds)
      cf = self._corr(res, f"amit-{net}-frfb", seeds)
      parts.append((f"(e) {net}: corr(W,B) URFB {cu:.3f} > FRFB {cf:.3f}",
                    cu > cf))
    for d in ("", "-d50"):
      gaps = [e[f"amit-{n}-frfb{d}"] - e[f"amit-{n}-urfb{d}"]
              for n in AMIT_NETS]
      parts.append((f"(c) gap FRFB − URFB{d or ' (100 %)'}: "
                    + " < ".join(f"{g:.2f}" for g in gaps),
                    gaps[0] < gaps[1] < gaps[2]))
    ut, t = e["amit-simpnet-urfb-untied"], e["amit-simpnet-urfb"]
    parts.append((f"(f) simpnet untied URFB {ut:.2f} vs tied {t:.2f}: "
                   f"|diff| ≤ 3", abs(ut - t) <= 3))
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    plt = _pyplot()
    paths = []
    fig, axes = plt.subplots(1, len(AMIT_NETS), figsize=(12, 3.6),
                             sharey=True)
    for ax, net in zip(axes, AMIT_NETS):
      for algo, color in (("urfb", "tab:blue"), ("frfb", "tab:orange")):
        curves = [[float(r["wb_correlation"])
                   for r in res.history(f"amit-{net}-{algo}", s)]
                  for s in seeds]
        curves = [c for c in curves if c]
        for i, c in enumerate(curves):
          ax.plot(range(1, len(c) + 1), c, color=color, alpha=0.8,
                  label=algo.upper() if i == 0 else None)
      ax.set_title(net)
      ax.set_xlabel("epoch")
    axes[0].set_ylabel("mean corr(W, B) over layers")
    axes[0].legend()
    fig.suptitle("amit2019 Fig. 10 analogue (Fashion-MNIST; one line per "
                 "seed)")
    paths.append(_save(fig, os.path.join(out_dir,
                                         "amit2019_fig10_correlation.png")))
    groups = {net: [(CELLS[f"amit-{net}-{a}"].label,
                     res.errors(f"amit-{net}-{a}", seeds))
                    for a in ("bp", "bp_hinge", "urfb", "frfb", "urfb-d50",
                              "frfb-d50")]
              for net in AMIT_NETS}
    paths.append(_bar_plot(groups, os.path.join(out_dir, "amit2019_urfb.png"),
                           "amit2019 §4 at CPU scale (Fashion-MNIST)"))
    return paths


class Amit2019Linear(Claim):
  name = "amit2019_linear"
  paper = "amit2019 §5.1, Fig. 12"
  expected = ("In a deep linear network trained with updated random "
              "feedback B = R(0) + εW, a larger ε reaches the target error "
              "sooner: ε = 1 (URFB) fastest, ε = 0 (FRFB) slowest.")
  rule = ("Mean iterations to the target error (tools/linear_sim.py "
          "defaults) strictly decrease ε = 0 → 0.25 → 0.5 → 1. HOLDS if so.")
  setup = ("tools/linear_sim.py defaults: 40-100-100-10 linear network, "
           "X = I_40, full-batch GD η 0.01, 1,000 iterations, seeds as "
           "--seeds.")
  cells = ()

  def table(self, res, seeds):
    data = res.rows.get(("linear", None))
    return data["table"] if data else "(not run)"

  def verdict(self, res, seeds):
    data = res.rows.get(("linear", None))
    if not data:
      return Verdict(None, [])
    its = [data["iterations"][f"eps={e}"] for e in ("0", "0.25", "0.5", "1")]
    ok = all(a is not None and b is not None and b < a
             for a, b in zip(its, its[1:]))
    text = " > ".join("—" if i is None else f"{i:.1f}" for i in its)
    return Verdict(ok, [(f"iterations ε = 0, 0.25, 0.5, 1: {text}", ok)])

  def plot(self, res, seeds, out_dir):
    data = res.rows.get(("linear", None))
    return [data["png"]] if data else []


class Bartunov2018(Claim):
  name = "bartunov2018"
  paper = "bartunov2018 §3.1, Table 1 (MNIST FC)"
  expected = ("DTP and SDTP train the fully connected network nearly as "
              "well as BP.")
  rule = "DTP and SDTP each ≤ BP + 3 points. HOLDS if both hold."
  setup = ("configs/bartunov2018.py (model=mnist_fc: 7 × 240 tanh, Adam, "
           "parallel schedule, denoising inverses, the config's defaults) "
           "for 5 epochs (paper: up to 500 with tuned hyper-parameters).")
  cells = ("bartunov-bp", "bartunov-dtp", "bartunov-sdtp")

  def table(self, res, seeds):
    return _simple_table(res, seeds, self.cells, "method")

  def verdict(self, res, seeds):
    bp, dtp, sdtp = (_m(res, c, seeds) for c in self.cells)
    parts = [(f"DTP {dtp:.2f} ≤ BP {bp:.2f} + 3", dtp <= bp + 3),
             (f"SDTP {sdtp:.2f} ≤ BP {bp:.2f} + 3", sdtp <= bp + 3)]
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    groups = {"": [(CELLS[c].label, res.errors(c, seeds)) for c in self.cells]}
    return [_bar_plot(groups, os.path.join(out_dir, "bartunov2018_tp.png"),
                      "bartunov2018 at CPU scale (Fashion-MNIST, FC)")]


CLAIMS = [Xiao2018(), XiaoAlignment(), Liao2016A(), Liao2016B(),
          Liao2016C2(), Amit2019(), Amit2019Linear(), Bartunov2018()]
CLAIM_NAMES = [c.name for c in CLAIMS]

# biotorch (Sanfiz & Akrout 2021) benchmark, Fashion-MNIST LeNet test error.
# (name, biotorch error %, our cell, our BP cell with the same recipe).
BIOTORCH = (("BP", 9.2, "xiao-cnn-bp", "xiao-cnn-bp"),
            ("uSF", 9.69, "liao-usf_bn", "liao-sgd"),
            ("brSF", 10.02, "liao-brsf_bn_bm", "liao-sgd"),
            ("frSF", 9.61, "liao-frsf_bn_bm", "liao-sgd"),
            ("FA", 13.06, "xiao-cnn-fa", "xiao-cnn-bp"))


# --------------------------------------------------------------------------
# Plots.
# --------------------------------------------------------------------------


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _bar_plot(groups, path, title, rotate=False):
  """Grouped bars: ``{group: [(label, errors), ...]}``, mean ± std."""
  plt = _pyplot()
  n = max(len(v) for v in groups.values())
  fig, axes = plt.subplots(1, len(groups), figsize=(max(5, 1.1 * n) *
                                                     len(groups), 4),
                           squeeze=False)
  for ax, (group, bars) in zip(axes[0], groups.items()):
    means = [_mean(e) if e else 0.0 for _, e in bars]
    stds = [_std(e) for _, e in bars]
    ax.bar(range(len(bars)), means, yerr=stds, capsize=3,
           color=plt.cm.tab10.colors[:len(bars)])
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([label for label, _ in bars],
                       rotation=45 if rotate or n > 5 else 0, ha="right"
                       if rotate or n > 5 else "center", fontsize=8)
    ax.set_title(group)
    ax.set_ylabel("test error % (mean ± std)")
  fig.suptitle(title)
  return _save(fig, path)


def _save(fig, path):
  """Lays out, writes (PNG, 100 dpi) and closes ``fig``; returns ``path``."""
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  _pyplot().close(fig)
  return path


# --------------------------------------------------------------------------
# Running.
# --------------------------------------------------------------------------


def _epochs(cell):
  return max(1, int(round(cell.epochs * OPTS.epoch_scale)))


def _scale_tag():
  """Runs directory per data scale, so that no run of another scale is
  reused: ``digits``, ``fashion-10000-5000``, ``...-x0.2`` (epoch scale)."""
  tag = (OPTS.data if OPTS.data == "digits" else
         f"{OPTS.data}-{OPTS.train_examples}-{OPTS.eval_examples}")
  return tag if OPTS.epoch_scale == 1.0 else f"{tag}-x{OPTS.epoch_scale:g}"


def _task(cell_id, seed, lr_mult):
  cell = CELLS[cell_id]
  lr_dir = "default" if lr_mult is None else f"lr{lr_mult:g}"
  workdir = os.path.join(os.path.abspath(OPTS.out), "runs", _scale_tag(),
                         cell_id, lr_dir, f"seed{seed}")
  overrides = (list(_COMMON) + data_overrides(OPTS.data, cell.image_size)
               + list(cell.overrides))
  overrides += [("epochs", _epochs(cell)), ("seed", seed)]
  if lr_mult is not None:
    overrides.append(("optimizer.lr_mult", lr_mult))
  return {"cell": cell_id, "seed": seed, "lr_mult": lr_mult,
          "config": cell.config, "overrides": overrides, "workdir": workdir,
          "cost": cell.cost * _epochs(cell)}


def _load_config(spec):
  import importlib.util  # pylint: disable=g-import-not-at-top
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(
      "tfbio_repro_config", os.path.join(REPO, path))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def _set(config, key, value):
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value


def _worker_init():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)


def run_task(task, deadline):
  """Trains one run in this (worker) process; returns its result dict."""
  result_path = os.path.join(task["workdir"], "result.json")
  if os.path.exists(result_path):
    with open(result_path, encoding="utf-8") as f:
      return json.load(f)
  if time.time() > deadline:
    return dict(task, status="skipped")
  import keras  # pylint: disable=g-import-not-at-top
  from tfbio.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from tfbio.train import detection  # pylint: disable=g-import-not-at-top

  os.makedirs(task["workdir"], exist_ok=True)
  config = _load_config(task["config"])
  for key, value in task["overrides"]:
    _set(config, key, value)
  start = time.time()
  log_path = os.path.join(task["workdir"], "log.txt")
  # Keras' progress bar writes to stdout: keep it in the run's log.
  saved = os.dup(1), os.dup(2)
  with open(log_path, "a", encoding="utf-8") as log:
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
      trainer_cls = detection.trainer_class(config)
      if config.get("tp", {}).get("enabled"):
        from tfbio.train.tp_trainer import TPTrainer as trainer_cls  # pylint: disable=g-import-not-at-top
      trainer = trainer_cls(config, task["workdir"])
      trainer.setup_data()
      trainer.setup_model()
      metrics = trainer.train()
      status = "ok"
    except trainer_lib.TrainingDiverged as e:
      metrics, status = {"message": str(e)}, "diverged"
    except Exception as e:  # pylint: disable=broad-except
      # Reported by the parent (and in the run's log.txt); no result.json,
      # so the next invocation tries the run again.
      import traceback  # pylint: disable=g-import-not-at-top
      traceback.print_exc()
      metrics, status = {"message": f"{type(e).__name__}: {e}"}, "failed"
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os.dup2(saved[0], 1)
      os.dup2(saved[1], 2)
      os.close(saved[0])
      os.close(saved[1])
  keras.utils.clear_session()
  result = dict(task, status=status, seconds=time.time() - start)
  if status == "ok":
    result.update(final_eval_error=float(metrics["final_eval_error"]),
                  best_eval_error=float(metrics["best_eval_error"]))
  else:
    result["message"] = metrics["message"]
  if status == "failed":
    return result
  tmp = result_path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, result_path)
  return result


def _run_linear(out_dir, seeds):
  """amit2019 §5.1 with tools/linear_sim.py's defaults (a subprocess)."""
  path = os.path.join(out_dir, "runs", "linear", "result.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  png = os.path.join(out_dir, "amit2019_fig12_linear.png")
  code = (
      "import json, sys; sys.path.insert(0, {tools!r}); import linear_sim\n"
      "c = linear_sim.run(seeds={seeds!r})\n"
      "linear_sim.plot(c, {png!r})\n"
      "its = {{k: linear_sim.iterations_to_target(c, k) for k in c.settings}}\n"
      "mean = {{k: (sum(v) / len(v) if None not in v else None) "
      "for k, v in its.items()}}\n"
      "json.dump({{'iterations': mean, 'per_seed': its, "
      "'table': linear_sim.table(c), 'png': {png!r}}}, open({path!r}, 'w'))\n"
  ).format(tools=os.path.join(REPO, "tools"), seeds=tuple(seeds), png=png,
           path=path + ".tmp")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError("tools/linear_sim.py failed: "
                       + (proc.stderr.strip().splitlines() or ["?"])[-1])
  os.replace(path + ".tmp", path)
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _select_lr(cell_id, rows):
  """Best lr_mult of a cell from its seed-0 candidates (None: not all run)."""
  cell = CELLS[cell_id]
  best = None
  for lr in cell.lr_mults:
    r = rows.get(("select", cell_id, lr))
    if r is None or r["status"] in ("skipped", "failed"):
      return None
    err = CHANCE_ERROR if r["status"] == "diverged" else r["final_eval_error"]
    if best is None or err < best[0]:
      best = (err, lr)
  return best[1]


def _run_pool(tasks, deadline, rows, done, total, t0):
  """Runs ``[(key, task)]`` longest first; fills ``rows[key]``."""
  todo, reused = [], 0
  for key, task in tasks:
    path = os.path.join(task["workdir"], "result.json")
    if os.path.exists(path):  # Finished earlier: reused, not retrained.
      with open(path, encoding="utf-8") as f:
        rows[key] = json.load(f)
      done[0] += 1
      reused += 1
    else:
      todo.append((key, task))
  tasks = sorted(todo, key=lambda kt: -kt[1]["cost"])
  if not tasks:
    return
  logging.info("%d runs to train, %d reused", len(tasks), reused)
  ctx = multiprocessing.get_context("spawn")
  with ctx.Pool(OPTS.jobs, initializer=_worker_init,
                maxtasksperchild=25) as pool:
    futures = [(key, task, pool.apply_async(run_task, (task, deadline)))
               for key, task in tasks]
    for key, task, future in futures:
      result = future.get()
      rows[key] = result
      done[0] += 1
      if result["status"] == "skipped":
        continue
      if result["status"] == "failed":
        logging.error("%s lr_mult=%s seed %d FAILED: %s (log: %s)",
                      task["cell"], task["lr_mult"], task["seed"],
                      result["message"],
                      os.path.join(task["workdir"], "log.txt"))
      err = result.get("final_eval_error")
      logging.info(
          "[%d/%d] %s lr_mult=%s seed %d: %s%s (%.0f s); %.1f min elapsed",
          done[0], total, task["cell"], task["lr_mult"], task["seed"],
          result["status"], "" if err is None else f" {err:.2f} %",
          result.get("seconds", 0.0), (time.time() - t0) / 60)


def run_all(claims, seeds):
  """Runs every run the claims need; returns :class:`Results`."""
  t0 = time.time()
  deadline = t0 + 60 * OPTS.budget_minutes
  cell_ids = []
  for claim in claims:
    for c in claim.all_cells():
      if c not in cell_ids:
        cell_ids.append(c)
  # lr_of cells need their source's selection: add the sources.
  for c in list(cell_ids):
    src = CELLS[c].lr_of
    if src and src not in cell_ids:
      cell_ids.append(src)
  raw = {}
  phase1, phase2 = [], []
  for c in cell_ids:
    cell = CELLS[c]
    if cell.lr_mults:
      phase1 += [(("select", c, lr), _task(c, seeds[0], lr))
                 for lr in cell.lr_mults]
    elif cell.lr_of:
      phase2.append(c)
    else:
      phase1 += [((c, s), _task(c, s, None)) for s in seeds]
  selected_cells = [c for c in cell_ids if CELLS[c].lr_mults]
  total = (len(phase1) + len(phase2) * len(seeds)
           + len(selected_cells) * (len(seeds) - 1))
  done = [0]
  logging.info("%d runs (%d claims, seeds %s, %d jobs, budget %.0f min)",
               total, len(claims), seeds, OPTS.jobs, OPTS.budget_minutes)
  _run_pool(phase1, deadline, raw, done, total, t0)
  selected = {}
  second = []
  for c in selected_cells:
    lr = _select_lr(c, raw)
    if lr is None:
      continue
    selected[c] = lr
    raw[(c, seeds[0])] = raw[("select", c, lr)]
    second += [((c, s), _task(c, s, lr)) for s in seeds[1:]]
  for c in phase2:
    lr = selected.get(CELLS[c].lr_of)
    if lr is None:
      continue
    selected[c] = lr
    second += [((c, s), _task(c, s, lr)) for s in seeds]
  _run_pool(second, deadline, raw, done, total, t0)
  rows = {k: v for k, v in raw.items()
          if k[0] != "select" and v["status"] not in ("skipped", "failed")}
  if any(c.name == "amit2019_linear" for c in claims):
    rows[("linear", None)] = _run_linear(os.path.abspath(OPTS.out), seeds)
  minutes = (time.time() - t0) / 60
  failed = sum(1 for v in raw.values() if v["status"] == "failed")
  missing = total - done[0] + sum(
      1 for v in raw.values() if v["status"] in ("skipped", "failed"))
  if failed:
    logging.error("%d runs failed (see the errors above); rerun to retry "
                  "them", failed)
  return Results(rows, selected), minutes, missing, failed


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------


def _machine():
  """bench/report.py's one-line machine description."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "tfbio_bench_report", os.path.join(REPO, "bench", "report.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.machine()


def _verdict_text(v):
  if v.holds is None:
    return "INCOMPLETE"
  return "HOLDS" if v.holds else "DOES NOT HOLD"


def write_report(claims, res, seeds, minutes, out_dir, command):
  """Writes ``out_dir/README.md`` and the plots; returns the verdicts."""
  os.makedirs(out_dir, exist_ok=True)
  verdicts = {}
  sections = []
  for claim in claims:
    complete = all(res.complete(c, seeds) for c in claim.cells)
    if claim.name == "amit2019_linear":
      complete = ("linear", None) in res.rows
    verdict = claim.verdict(res, seeds) if complete else Verdict(None, [])
    verdicts[claim.name] = verdict
    plots = claim.plot(res, seeds, out_dir) if complete else []
    body = [f"## {claim.name}: {_verdict_text(verdict)}", "",
            f"*{claim.paper}.* **Expected:** {claim.expected}", "",
            f"**Setup:** {claim.setup}", "",
            f"**Rule (fixed before running):** {claim.rule}", "",
            claim.table(res, seeds), ""]
    if verdict.parts:
      body += ["**Verdict:** " + _verdict_text(verdict), ""]
      body += [f"- {'✓' if ok else '✗'} {text}" for text, ok in
               verdict.parts]
      body.append("")
    elif not complete:
      body += ["**Verdict:** INCOMPLETE — some runs are missing (budget); "
               "rerun the same command to finish them.", ""]
    body += [f"![{os.path.basename(p)}]({os.path.basename(p)})"
             for p in plots]
    sections.append("\n".join(body) + "\n")
  summary = ["| claim | source | verdict |", "|---|---|---|"]
  summary += [f"| [{c.name}](#{c.name.replace('_', '_')}-"
              f"{_verdict_text(verdicts[c.name]).lower().replace(' ', '-')}) "
              f"| {c.paper} | **{_verdict_text(verdicts[c.name])}** |"
              for c in claims]
  biotorch = ["| algorithm | biotorch (LeNet, Fashion-MNIST) | tfbio cell | "
              "tfbio test error % | tfbio − tfbio BP (same recipe) | "
              "biotorch − biotorch BP |", "|---|---|---|---|---|---|"]
  run_rows = [r for k, r in res.rows.items() if k[0] != "linear"]
  run_minutes = sum(r.get("seconds", 0.0) for r in run_rows) / 60
  for name, theirs, cell_id, bp_cell in BIOTORCH:
    ours = _m(res, cell_id, seeds) - _m(res, bp_cell, seeds)
    biotorch.append(f"| {name} | {theirs} | {CELLS[cell_id].label} "
                    f"({cell_id}) | {_fmt(res.errors(cell_id, seeds))} | "
                    f"{ours:+.2f} (vs {bp_cell}) | {theirs - 9.2:+.2f} |")
  if not all(res.complete(c, seeds) for row in BIOTORCH for c in row[2:]):
    biotorch = ["(Needs the xiao2018 and liao2016_a claims' runs.)"]
  text = [
      "# tfbio reproduction report",
      "",
      f"Generated by `{command}` on "
      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} "
      f"on {_machine()}; seeds {seeds}, {OPTS.jobs} worker processes. "
      f"This invocation took {minutes:.1f} min; the {len(run_rows)} "
      f"training runs behind the report took {run_minutes:.1f} "
      f"worker-minutes in all. Re-run the same command to regenerate "
      "(finished runs are reused; delete `runs/` to start over). "
      "`runs.csv` lists every run behind the tables.",
      "",
      "Each claim of the four seed papers is checked at CPU scale on "
      + (f"Fashion-MNIST (first {OPTS.train_examples:,} training / "
         f"{OPTS.eval_examples:,} test images)" if OPTS.data == "fashion"
         else "scikit-learn's digits (1,437 training / 360 test images, "
         "resized to the network's input; 'Fashion-MNIST' in the setups "
         "below reads 'digits')")
      + " with the library's paper "
      "configs (`configs/`) and CPU-sized overrides. The numbers are **final "
      "test error % (mean ± std over seeds)**; a diverged run counts as "
      "90 %. The rule deciding each verdict was written before the runs; an "
      "honest DOES NOT HOLD at this scale says nothing about the paper's "
      "scale (ImageNet, CIFAR, 100s of epochs), only about this one.",
      "",
      *summary,
      "",
      "Performance (step time vs BP, locally connected vs conv and the "
      "sparse form): [performance.md](performance.md).",
      "",
      *sections,
      "## Comparison with the biotorch benchmark",
      "",
      "biotorch (Sanfiz & Akrout 2021) reports Fashion-MNIST test errors "
      "of LeNet: BP 9.2, uSF 9.69, brSF 10.02, frSF 9.61, FA 13.06 %. Our "
      "setting differs: liao2016's MNIST CNN (LeNet-like, 431k "
      "parameters), the first 10k training images, a few epochs instead of "
      "~100, and uSF/brSF/frSF with liao2016's BN + BM where the cell says "
      "so; compare the *differences to BP* (last two columns; ours against "
      "the BP run of the same recipe: configs/demo.py's for BP and FA, "
      "liao2016's SGD for the sign-concordant rows), not the absolute "
      "errors.",
      "",
      *biotorch,
      "",
  ]
  with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(text))
  _write_runs_csv(res, os.path.join(out_dir, "runs.csv"))
  return verdicts


def _write_runs_csv(res, path):
  """One row per run behind the report (runs/ itself is not committed)."""
  import csv  # pylint: disable=g-import-not-at-top
  keys = ("cell", "seed", "lr_mult", "status", "final_eval_error",
          "best_eval_error", "seconds")
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(keys)
    for key in sorted((k for k in res.rows if k[0] != "linear"),
                      key=lambda k: (k[0], k[1])):
      row = res.rows[key]
      writer.writerow([row.get(k, "") if not isinstance(row.get(k), float)
                       else f"{row[k]:.4g}" for k in keys])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  unknown = [c for c in FLAGS.only if c not in CLAIM_NAMES]
  if unknown:
    sys.exit(f"reproduce: error: unknown claim(s) {unknown}; known: "
             f"{', '.join(CLAIM_NAMES)}")
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    sys.exit(f"reproduce: error: --seeds must be integers. Received: "
             f"{FLAGS.seeds}")
  if len(set(seeds)) != len(seeds) or not seeds:
    sys.exit(f"reproduce: error: --seeds must be distinct. Received: {seeds}")
  claims = [c for c in CLAIMS if not FLAGS.only or c.name in FLAGS.only]
  global OPTS
  OPTS = Options(out=FLAGS.out, data=FLAGS.data,
                 train_examples=FLAGS.train_examples,
                 eval_examples=FLAGS.eval_examples,
                 epoch_scale=FLAGS.epoch_scale, jobs=FLAGS.jobs,
                 budget_minutes=FLAGS.budget_minutes)
  if OPTS.data == "auto":
    OPTS.data = "fashion" if _fashion_idx_present() else "digits"
    if OPTS.data == "digits":
      logging.warning("Fashion-MNIST is not installed in %s (apt-get install "
                      "dataset-fashion-mnist): using scikit-learn's digits; "
                      "pass --data=fashion to use tensorflow-datasets' copy.",
                      FASHION_DIR)
  # TensorFlow in the workers: one thread each (before they import it).
  os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
  os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  out_dir = os.path.abspath(OPTS.out)
  os.makedirs(out_dir, exist_ok=True)
  res, minutes, missing, failed = run_all(claims, seeds)
  command = "tools/reproduce.py " + " ".join(sys.argv[1:])
  verdicts = write_report(claims, res, seeds, minutes, out_dir, command)
  for name, v in verdicts.items():
    logging.info("%-20s %s", name, _verdict_text(v))
  logging.info("wrote %s (%.1f min%s)", os.path.join(out_dir, "README.md"),
               minutes, f"; {missing} runs missing" if missing else "")
  if failed:
    sys.exit(f"reproduce: error: {failed} runs failed; the report marks "
             "their claims INCOMPLETE (rerun to retry)")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
