"""Dataset pipelines of the training binaries (tfbio.data).

``get_dataset(name, split, batch_size=...)`` yields batches ``(image float32
NHWC, label int32)``; ``dataset_info(name)`` gives ``num_classes``,
``input_shape``, ``num_examples`` and ``source`` without reading the data when
possible. Offline sources (``names()``): ``"digits"`` (scikit-learn),
``"fashion_mnist_idx"`` / ``"mnist_idx"`` (IDX files), ``"folder:<path>"`` /
``"image_folder"`` (ImageNet-layout folders); any other name is a
tensorflow-datasets dataset, downloaded only if absent and the network is
reachable. Preprocessings: ``tfbio.data.preprocessing.NAMES``.
"""

from tfbio.data import idx
from tfbio.data import preprocessing
from tfbio.data import sources
from tfbio.data.datasets import dataset_info
from tfbio.data.datasets import get_dataset
from tfbio.data.datasets import names
from tfbio.data.sources import FASHION_MNIST_DIR
from tfbio.data.sources import fashion_mnist_idx_present
from tfbio.data.sources import named_input_errors

__all__ = ["FASHION_MNIST_DIR", "dataset_info", "fashion_mnist_idx_present",
           "get_dataset", "idx", "named_input_errors", "names",
           "preprocessing", "sources"]
