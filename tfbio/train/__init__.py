"""Training: config schema, strategies and the custom loop of ``tfbio-train``.

Imported explicitly (``from tfbio import train``); not by ``import tfbio``.
"""

from tfbio.train.config import base_config
from tfbio.train.config import validate
from tfbio.train.run import restore
from tfbio.train.run import train
from tfbio.train.trainer import Trainer
from tfbio.train.trainer import TrainingDiverged

__all__ = ["Trainer", "TrainingDiverged", "base_config", "restore", "train",
           "validate"]
