"""Small shared helpers of tfbio: argument checks, seeds, conv geometry.

The lowest layer of the package: it imports nothing from tfbio (only the
standard library), so every other module may use it and ``import tfbio.utils``
costs nothing.

* ``tfbio.utils.checks``: Keras-style argument validation, one-line
  ``ValueError`` quoting the argument (``"units must be a positive int.
  Received: units=-3"``);
* ``tfbio.utils.seeds``: layer seeds, the seed-mixing rule of the feedback
  randomness and the data-order seed of an epoch;
* ``tfbio.utils.geometry``: output length of a convolution along one axis.
"""

from tfbio.utils import checks
from tfbio.utils import geometry
from tfbio.utils import seeds

__all__ = ["checks", "geometry", "seeds"]
