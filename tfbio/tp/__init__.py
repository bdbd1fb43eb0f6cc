"""Target propagation: DTP and SDTP with learned inverses (bartunov2018).

bartunov2018 §2.1.1 (difference target propagation, "DTP", Lee et al.
2015), Algorithm 1 (simplified DTP, "SDTP") and the appendix (inverses of
locally-connected layers by the transpose trick); docs/algorithms.md §6.

    from tfbio import models, tp
    net = models.create_model("bartunov2018_mnist_fc")
    model = tp.TargetPropModel(net, variant="sdtp", schedule="parallel")
    model.compile(metrics=["accuracy"])
    model.fit(x, y, epochs=10, validation_data=(x_test, y_test))

Not imported by ``import tfbio``; import it explicitly.
"""

from tfbio.tp.inverse import Block
from tfbio.tp.inverse import LayerInverse
from tfbio.tp.inverse import make_inverse
from tfbio.tp.inverse import split_blocks
from tfbio.tp.model import angle_degrees
from tfbio.tp.model import default_optimizer
from tfbio.tp.model import EpochCounter
from tfbio.tp.model import INVERSE_TRAININGS
from tfbio.tp.model import SCHEDULES
from tfbio.tp.model import squared_error
from tfbio.tp.model import TargetPropModel
from tfbio.tp.model import VARIANTS

__all__ = [
    "Block", "EpochCounter", "INVERSE_TRAININGS", "LayerInverse",
    "SCHEDULES", "TargetPropModel", "VARIANTS", "angle_degrees",
    "default_optimizer", "make_inverse", "split_blocks", "squared_error",
]
