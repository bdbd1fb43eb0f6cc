"""tfbio: Keras 3 layers and tools for biologically plausible credit assignment.

Feedback layers use a feedback kernel ``B`` instead of the forward kernel
``W`` in their backward pass (sign-symmetry, feedback alignment, updated random
feedback, ...); see ``tfbio.feedback`` for the algorithms and SPEC.md for the
definitions.
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
