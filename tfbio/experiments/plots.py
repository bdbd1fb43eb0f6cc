"""Plots shared by the experiments' reports (matplotlib, Agg backend)."""

from tfbio import analysis
from tfbio.experiments import stats


def save(fig, path):
  """Lays out, writes (PNG, 100 dpi) and closes ``fig``; returns ``path``."""
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  analysis.pyplot().close(fig)
  return path


def bar_plot(groups, path, title, rotate=False):
  """Grouped bars: ``{group: [(label, errors), ...]}``, mean ± std."""
  plt = analysis.pyplot()
  n = max(len(v) for v in groups.values())
  fig, axes = plt.subplots(1, len(groups), figsize=(max(5, 1.1 * n) *
                                                     len(groups), 4),
                           squeeze=False)
  for ax, (group, bars) in zip(axes[0], groups.items()):
    means = [stats.mean(e) if e else 0.0 for _, e in bars]
    stds = [stats.std(e) for _, e in bars]
    ax.bar(range(len(bars)), means, yerr=stds, capsize=3,
           color=plt.cm.tab10.colors[:len(bars)])
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([label for label, _ in bars],
                       rotation=45 if rotate or n > 5 else 0, ha="right"
                       if rotate or n > 5 else "center", fontsize=8)
    ax.set_title(group)
    ax.set_ylabel("test error % (mean ± std)")
  fig.suptitle(title)
  return save(fig, path)
