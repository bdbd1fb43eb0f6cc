"""The reproduction's claims: expectation, rule, table, verdict, plot.

Each :class:`Claim` is one claim of a seed paper: the cells it needs
(:mod:`tfbio.experiments.cells`), the rule that decides its verdict --
fixed here *before* any run, printed in the report and never adjusted to
the outcome; "close" is liao2016's own threshold (within 3 points of the
baseline) unless stated -- its table and its plots. Errors are the
**final** test error (%) of each run; a run that diverged counts as chance
error (90 %) and is flagged.
"""

import dataclasses
import os

from tfbio import analysis
from tfbio.experiments import plots
from tfbio.experiments.cells import AMIT_EPOCHS
from tfbio.experiments.cells import AMIT_NETS
from tfbio.experiments.cells import AMIT_SIZE
from tfbio.experiments.cells import CHANCE_ERROR
from tfbio.experiments.cells import run_error
from tfbio.experiments.cells import FLIPS
from tfbio.experiments.cells import LIAO_A
from tfbio.experiments.cells import LIAO_EPOCHS
from tfbio.experiments.cells import LIAO_LABELS
from tfbio.experiments.cells import XIAO_ALGOS
from tfbio.experiments.cells import XIAO_LABELS
from tfbio.experiments.cells import XIAO_NETS
from tfbio.experiments.stats import fmt
from tfbio.experiments.stats import mean
from tfbio.experiments.stats import std


LINEAR_PNG = "amit2019_fig12_linear.png"


class Results:
  """Per cell, per seed: the result rows of the finished runs.

  Attributes:
    rows: ``{(cell id, seed): row}`` (a row: ``status``,
      ``final_eval_error``, ``best_eval_error``, ``lr_mult``, ``seconds``,
      ...); ``("linear", None)``: the linear simulation's result.
    selected: ``{cell id: lr_mult}`` of the cells with a selected rate.
    cells: ``{cell id: Cell}``.
    curves: ``{(cell id, seed): [history row, ...]}`` (per epoch).
  """

  def __init__(self, rows, selected, cells, curves=None):
    self.rows = rows
    self.selected = selected
    self.cells = cells
    self.curves = curves or {}

  def errors(self, cell_id, seeds):
    """Final test errors (%) of the cell's finished seeds (diverged: 90)."""
    out = []
    for s in seeds:
      r = self.rows.get((cell_id, s))
      if r is None:
        continue
      out.append(run_error(r))
    return out

  def complete(self, cell_id, seeds):
    return all((cell_id, s) in self.rows for s in seeds)

  def diverged(self, cell_id, seeds):
    return sum(1 for s in seeds
               if self.rows.get((cell_id, s), {}).get("status") == "diverged")

  def history(self, cell_id, seed):
    """The run's history rows (dicts), [] if unknown."""
    return self.curves.get((cell_id, seed), [])


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
  return mean(res.errors(cell_id, seeds))


def _within(name, value, base_name, base, margin):
  """A rule part: ``value ≤ base + margin`` (and its text)."""
  return (f"{name} {value:.2f} ≤ {base_name} {base:.2f} + {margin}",
          value <= base + margin)


def _beyond(name, value, base_name, base, margin):
  """A rule part: ``value ≥ base + margin`` (and its text)."""
  return (f"{name} {value:.2f} ≥ {base_name} {base:.2f} + {margin}",
          value >= base + margin)


class _OneTableClaim(Claim):
  """A claim whose table lists its cells and whose plot is one bar group.

  Subclasses set ``header`` (the table's first column), ``png`` and
  ``title`` (the plot), ``rotate`` (slanted bar labels) and ``checks``, the
  rule's parts: ``(kind, label, cell, base label, base cell, margin)`` with
  kind ``"within"`` (mean ≤ base mean + margin) or ``"beyond"`` (≥), all of
  which must hold (or override :meth:`verdict`).
  """
  header = "setting"
  png = ""
  title = ""
  rotate = False
  checks = ()

  def verdict(self, res, seeds):
    parts = []
    for kind, label, cell, base_label, base, margin in self.checks:
      part = _within if kind == "within" else _beyond
      parts.append(part(label, _m(res, cell, seeds), base_label,
                        _m(res, base, seeds), margin))
    return Verdict(all(p for _, p in parts), parts)

  def table(self, res, seeds):
    return _simple_table(res, seeds, self.cells, self.header)

  def plot(self, res, seeds, out_dir):
    groups = {"": [(res.cells[c].label, res.errors(c, seeds))
                   for c in self.cells]}
    return [plots.bar_plot(groups, os.path.join(out_dir, self.png),
                           self.title, rotate=self.rotate)]


def _simple_table(res, seeds, rows, header="setting"):
  lines = [f"| {header} | test error % (mean ± std) | n | lr_mult |",
           "|---|---|---|---|"]
  for cell_id in rows:
    cell = res.cells[cell_id]
    lr = res.selected.get(cell_id, "")
    errors = res.errors(cell_id, seeds)
    lines.append(f"| {cell.label} | "
                 f"{fmt(errors, res.diverged(cell_id, seeds))}"
                 f" | {len(errors)} | {lr} |")
  return "\n".join(lines)


# xiao2018 §3.1's three claims, each decided by parts of Xiao2018.rule.
XIAO2018_CLAIMS = ("SS ≈ BP", "FA worse than BP", "last-layer BP helps FA")
XIAO2018_RULE = ("SS and SS + last BP mean error ≤ BP + 3 points; FA ≥ BP + "
                 "3 points; FA + last BP < FA (means)")


def xiao2018_parts(errors, prefix=""):
  """xiao2018 §3.1's rule (:data:`XIAO2018_RULE`) on mean errors.

  Args:
    errors: ``{algo: mean test error %}`` for every algo of
      :data:`~tfbio.experiments.cells.XIAO_ALGOS`.
    prefix: put before each part's text (e.g. the network).

  Returns:
    ``[(claim, (text, holds))]``, the claim one of :data:`XIAO2018_CLAIMS`.
  """
  e = errors
  ss, fa, helps = XIAO2018_CLAIMS
  parts = [(ss, _within(f"{prefix}{XIAO_LABELS[a]}", e[a], "BP", e["bp"], 3))
           for a in ("ss", "ss_lastbp")]
  parts.append((fa, _beyond(f"{prefix}FA", e["fa"], "BP", e["bp"], 3)))
  parts.append((helps, (f"{prefix}FA + last BP {e['fa_lastbp']:.2f} < FA "
                        f"{e['fa']:.2f}", e["fa_lastbp"] < e["fa"])))
  return parts


def xiao2018_verdict(errors):
  """A verdict paragraph on xiao2018's claims from ``{algo: [errors %]}``.

  The rule is :data:`XIAO2018_RULE` (the reproduction's, fixed before any
  run) on the mean final test error over seeds; a diverged seed counts as
  chance error (``run_error``).
  """
  missing = [a for a in XIAO_ALGOS if not errors.get(a)]
  if missing:
    return (f"Verdict against xiao2018 §3.1: incomplete (no finished run of "
            f"{', '.join(missing)}).")
  means = {a: mean(errors[a]) for a in XIAO_ALGOS}
  by_claim = {}
  for claim, (text, holds) in xiao2018_parts(means):
    by_claim.setdefault(claim, []).append((text, holds))
  sentences = []
  for claim, parts in by_claim.items():
    holds = all(h for _, h in parts)
    sentences.append(f"**{claim}: {'holds' if holds else 'does not hold'}** "
                     f"({'; '.join(t for t, _ in parts)})")
  return (f"Verdict against xiao2018 §3.1 (rule: {XIAO2018_RULE}; mean final "
          f"test error over seeds, a diverged seed counted as "
          f"{CHANCE_ERROR:g} %): " + "; ".join(sentences) + ".")


# Verdicts a sweep can add to its results.md (tfbio-sweep --verdict=NAME):
# NAME -> (the axis naming the conditions, its values, paragraph function).
SWEEP_VERDICTS = {"xiao2018": ("algo", XIAO_ALGOS, xiao2018_verdict)}


class Xiao2018(Claim):
  name = "xiao2018"
  paper = "xiao2018 §3.1, Table 1 / Fig. 1"
  expected = ("Sign-symmetry, with and without a BP last layer, trains "
              "nearly as well as BP; feedback alignment is clearly worse, "
              "and better with a BP last layer than without.")
  rule = (f"Per network: {XIAO2018_RULE}. HOLDS if every part holds on "
          "both networks.")
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
          fmt(res.errors(f"xiao-{net}-{a}", seeds),
               res.diverged(f"xiao-{net}-{a}", seeds)) for a in XIAO_ALGOS)
                   + " |")
    return "\n".join(lines)

  def verdict(self, res, seeds):
    parts = []
    for net, (title, _) in XIAO_NETS.items():
      e = {a: _m(res, f"xiao-{net}-{a}", seeds) for a in XIAO_ALGOS}
      parts += [part for _, part in xiao2018_parts(e, f"{title}: ")]
    return Verdict(all(p for _, p in parts), parts)

  def plot(self, res, seeds, out_dir):
    groups = {title: [(XIAO_LABELS[a], res.errors(f"xiao-{net}-{a}", seeds))
                      for a in XIAO_ALGOS]
              for net, (title, _) in XIAO_NETS.items()}
    return [plots.bar_plot(groups,
                           os.path.join(out_dir, "xiao2018_bp_ss_fa.png"),
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
    return [mean([c[i] for c in curves]) for i in range(n)]

  def table(self, res, seeds):
    lines = ["| run | metric | per epoch (mean over seeds) |", "|---|---|---|"]
    for cell_id in self.cells:
      for key in ("alignment_angle", "weight_kurtosis"):
        curve = self._curve(res, cell_id, seeds, key)
        lines.append(f"| {res.cells[cell_id].label} | {key} | "
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
    plt = analysis.pyplot()
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax2 = ax1.twinx()
    for cell_id, style in zip(self.cells, ("-", "--")):
      label = res.cells[cell_id].label
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
    return [plots.save(fig, os.path.join(out_dir,
                                         "xiao2018_fig3_alignment.png"))]


class Liao2016A(_OneTableClaim):
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
  header = "condition"
  png = "liao2016_exp_a.png"
  title = "liao2016 Exp. A / C1 at CPU scale (Fashion-MNIST)"
  rotate = True

  def verdict(self, res, seeds):
    e = {a: _m(res, f"liao-{a}", seeds) for a in LIAO_A}
    sgd = e["sgd"]
    usf_div = res.diverged("liao-usf", seeds)
    parts = [(f"(a) uSF {e['usf']:.2f} ({usf_div} diverged) ≥ SGD {sgd:.2f} "
              f"+ 10 or diverged", usf_div > 0 or e["usf"] >= sgd + 10)]
    for a in ("usf_bn", "usf_bn_bm", "brsf_bn_bm", "frsf_bn_bm"):
      parts.append(_within(f"(b) {LIAO_LABELS[a]}", e[a], "SGD", sgd, 3))
    parts.append(_beyond("(c) RndF", e["rndf"], "SGD", sgd, 3))
    parts.append((f"(d) RndF+BN {e['rndf_bn']:.2f} < RndF {e['rndf']:.2f}",
                  e["rndf_bn"] < e["rndf"]))
    return Verdict(all(p for _, p in parts), parts)


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
          fmt(res.errors(c, seeds), res.diverged(c, seeds))
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
    plt = analysis.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p / 100 for p in (0,) + FLIPS]
    for mode in ("brsf", "frsf"):
      errs = [res.errors(c, seeds) for c in self._ids(mode)]
      ax.errorbar(xs, [mean(e) for e in errs], yerr=[std(e) for e in errs],
                  marker="o", capsize=3, label=f"{mode} + BN + BM")
    ax.set_xlabel("probability that a feedback sign disagrees")
    ax.set_ylabel("test error % (mean ± std)")
    ax.set_title("liao2016 Exp. B at CPU scale (Fashion-MNIST)")
    ax.legend()
    return [plots.save(fig, os.path.join(out_dir, "liao2016_exp_b.png"))]


class Liao2016C2(_OneTableClaim):
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
  cells = ("liao-sgd-bottom", "liao-usf_bn_bm-bottom",
           "liao-rndf_bn_bm-bottom")
  header = "condition"
  png = "liao2016_exp_c2.png"
  title = "liao2016 Exp. C2 (last layer frozen), Fashion-MNIST"
  checks = (("within", "uSF+BN+BM", "liao-usf_bn_bm-bottom", "SGD",
             "liao-sgd-bottom", 3),
            ("beyond", "RndF+BN+BM", "liao-rndf_bn_bm-bottom", "SGD",
             "liao-sgd-bottom", 10))


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
          fmt(res.errors(f"amit-{net}-{c}", seeds),
               res.diverged(f"amit-{net}-{c}", seeds)) for c in cols)
                   + f" | {corr[0]:.3f} / {corr[1]:.3f} |")
    lines.append("| simpnet untied (URFB) | | | "
                 + fmt(res.errors("amit-simpnet-urfb-untied", seeds))
                 + " | | | | |")
    return "\n".join(lines)

  def _corr(self, res, cell_id, seeds):
    vals = []
    for s in seeds:
      h = res.history(cell_id, s)
      if h and h[-1].get("wb_correlation") not in (None, "", "nan"):
        vals.append(float(h[-1]["wb_correlation"]))
    return mean(vals)

  def verdict(self, res, seeds):
    e = {c: _m(res, c, seeds) for c in self.cells}
    parts = []
    for net in AMIT_NETS:
      u, f, bh, bp = (e[f"amit-{net}-{a}"]
                      for a in ("urfb", "frfb", "bp_hinge", "bp"))
      parts.append(_within(f"(a) {net}: URFB", u, "BP-H", bh, 3))
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
    plt = analysis.pyplot()
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
    paths.append(plots.save(fig, os.path.join(out_dir,
                                         "amit2019_fig10_correlation.png")))
    groups = {net: [(res.cells[f"amit-{net}-{a}"].label,
                     res.errors(f"amit-{net}-{a}", seeds))
                    for a in ("bp", "bp_hinge", "urfb", "frfb", "urfb-d50",
                              "frfb-d50")]
              for net in AMIT_NETS}
    paths.append(plots.bar_plot(groups,
                                os.path.join(out_dir, "amit2019_urfb.png"),
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
    # Written by the linear simulation itself (tfbio.experiments.reproduce).
    data = res.rows.get(("linear", None))
    return [os.path.join(out_dir, LINEAR_PNG)] if data else []


class Bartunov2018(_OneTableClaim):
  name = "bartunov2018"
  paper = "bartunov2018 §3.1, Table 1 (MNIST FC)"
  expected = ("DTP and SDTP train the fully connected network nearly as "
              "well as BP.")
  rule = "DTP and SDTP each ≤ BP + 3 points. HOLDS if both hold."
  setup = ("configs/bartunov2018.py (model=mnist_fc: 7 × 240 tanh, Adam, "
           "parallel schedule, denoising inverses, the config's defaults) "
           "for 5 epochs (paper: up to 500 with tuned hyper-parameters).")
  cells = ("bartunov-bp", "bartunov-dtp", "bartunov-sdtp")
  header = "method"
  png = "bartunov2018_tp.png"
  title = "bartunov2018 at CPU scale (Fashion-MNIST, FC)"
  checks = (("within", "DTP", "bartunov-dtp", "BP", "bartunov-bp", 3),
            ("within", "SDTP", "bartunov-sdtp", "BP", "bartunov-bp", 3))


def default_claims():
  """The claims of the report, in report order."""
  return [Xiao2018(), XiaoAlignment(), Liao2016A(), Liao2016B(),
          Liao2016C2(), Amit2019(), Amit2019Linear(), Bartunov2018()]


CLAIM_NAMES = tuple(c.name for c in default_claims())

# biotorch (Sanfiz & Akrout 2021) benchmark, Fashion-MNIST LeNet test error.
# (name, biotorch error %, our cell, our BP cell with the same recipe).
BIOTORCH = (("BP", 9.2, "xiao-cnn-bp", "xiao-cnn-bp"),
            ("uSF", 9.69, "liao-usf_bn", "liao-sgd"),
            ("brSF", 10.02, "liao-brsf_bn_bm", "liao-sgd"),
            ("frSF", 9.61, "liao-frsf_bn_bm", "liao-sgd"),
            ("FA", 13.06, "xiao-cnn-fa", "xiao-cnn-bp"))
