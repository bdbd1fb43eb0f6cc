"""The networks of the seed papers, built by name from a registry.

Every builder returns a plain functional ``keras.Model`` whose Dense / Conv2D
/ LocallyConnected2D layers are tfbio feedback layers, outputs logits (train
with ``from_logits=True``), and takes the per-layer feedback spec

* ``feedback``: the algorithm of every feedback layer (a name from
  ``tfbio.feedback.names()``, a dict ``{"name": ..., **params}`` or a
  ``tfbio.feedback.FeedbackAlgorithm``; docs/algorithms.md §1);
* ``last_layer``: the algorithm of the classifier only (None: ``feedback``);
  ``feedback="ss", last_layer="bp"`` is xiao2018's "SS + last layer BP";
* ``overrides``: ``{layer name or regex: algorithm}`` as in
  ``tfbio.convert``, winning over both.

Not imported by ``import tfbio`` (it stays cheap); import it explicitly::

    from tfbio import models
    models.list_models()
    model = models.create_model("resnet18", num_classes=10,
                                input_shape=(32, 32, 3), stem="cifar",
                                feedback="ss", last_layer="bp")
"""

from tfbio.models.registry import create_model
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import list_models
from tfbio.models.registry import model_info
from tfbio.models.registry import ModelInfo
from tfbio.models.registry import register_model

# Builders register themselves on import.
from tfbio.models.liao2016 import *  # noqa: F401,F403
from tfbio.models.resnet import *  # noqa: F401,F403
from tfbio.models.alexnet import *  # noqa: F401,F403
from tfbio.models.amit2019 import *  # noqa: F401,F403
from tfbio.models.bartunov2018 import *  # noqa: F401,F403
from tfbio.models.retinanet import *  # noqa: F401,F403
from tfbio.models.cifar_resnet import *  # noqa: F401,F403
from tfbio.models.le_net import *  # noqa: F401,F403
from tfbio.models.vit import *  # noqa: F401,F403
