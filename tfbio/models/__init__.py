"""Model builders whose Dense/Conv2D layers are tfbio feedback layers.

Each builder returns a plain ``keras.Model`` (functional API) and takes

* ``feedback``: the feedback algorithm of every Dense/Conv2D layer (a name
  from ``tfbio.feedback.names()``, a dict ``{"name": ..., **params}`` or a
  ``tfbio.feedback.FeedbackAlgorithm``; SPEC §1), and
* ``last_layer``: the algorithm of the classifier only (``None``: same as
  ``feedback``). ``feedback="ss", last_layer="bp"`` is xiao2018's
  "SS + last layer BP".

Models output logits (no softmax): train them with ``from_logits=True``.

Not imported by ``import tfbio`` (it stays cheap); import it explicitly::

    from tfbio import models
    model = models.resnet18(feedback="ss", last_layer="bp")
"""

from tfbio.models.liao2016 import liao2016_mnist
from tfbio.models.resnet import resnet18

__all__ = ["liao2016_mnist", "resnet18"]
