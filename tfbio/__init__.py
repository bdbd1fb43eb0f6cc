"""tfbio: Keras 3 layers and tools for biologically plausible credit assignment.

Feedback layers use a feedback kernel ``B`` instead of the forward kernel
``W`` in their backward pass (sign-symmetry, feedback alignment, updated random
feedback, ...); see ``tfbio.feedback`` for the algorithms and
docs/algorithms.md for the definitions.
"""

from tfbio import feedback
from tfbio import layers
from tfbio import losses
from tfbio import ops
from tfbio import optimizers
from tfbio import activations
from tfbio import analysis
from tfbio.convert import convert
from tfbio.convert import untie

__version__ = "0.1.0"

__all__ = ["activations", "analysis", "convert", "feedback", "layers",
           "losses", "ops", "optimizers", "untie", "__version__"]

# Imported on first use (``tfbio.models``, ``tfbio.data``, ``tfbio.tp``,
# ``tfbio.dfa``, ``tfbio.experiments``), so that ``import tfbio`` stays cheap.
_LAZY_SUBMODULES = ("models", "data", "tp", "dfa", "experiments")


def __getattr__(name):
  if name in _LAZY_SUBMODULES:
    import importlib  # pylint: disable=g-import-not-at-top
    return importlib.import_module(f"tfbio.{name}")
  raise AttributeError(f"module 'tfbio' has no attribute {name!r}")
