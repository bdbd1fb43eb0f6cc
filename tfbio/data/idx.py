"""MNIST-format IDX files (MNIST, Fashion-MNIST), parsed with NumPy.

An IDX file is a big-endian header followed by the raw array::

    magic: 0x00 0x00 <dtype code> <ndim>   (4 bytes)
    dims:  ndim x uint32                    (4 * ndim bytes)
    data:  prod(dims) items of the dtype

MNIST images are ``0x00000803`` (uint8, 3 dims: n x 28 x 28) and labels
``0x00000801`` (uint8, 1 dim: n). Files may be gzip-compressed; compression is
detected from the content (gzip magic ``1f 8b``), not from the file name.

A split ``"train"`` / ``"test"`` is the file pair
``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in one directory (the
layout of yann.lecun.com, of zalandoresearch/fashion-mnist and of the Debian
package ``dataset-fashion-mnist``).
"""

import gzip
import os

import numpy as np

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# IDX dtype codes -> big-endian NumPy dtypes.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Split name -> file prefix.
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}

_KINDS = {"images": ("idx3", IMAGES_MAGIC), "labels": ("idx1", LABELS_MAGIC)}


def _open(path):
  """Opens ``path`` for binary reading, through gzip if it is gzipped."""
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"
  return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _parse_header(head, path):
  """(magic, dtype, dims) from the first bytes of an IDX file."""
  if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
    raise ValueError(f"{path} is not an IDX file: bad magic number "
                     f"0x{head[:4].hex() or '(empty)'}.")
  ndim = head[3]
  if len(head) < 4 + 4 * ndim:
    raise ValueError(f"{path} is not an IDX file: truncated header.")
  dims = tuple(int(d) for d in np.frombuffer(head, ">u4", ndim, 4))
  magic = int.from_bytes(head[:4], "big")
  return magic, _DTYPES[head[2]], dims


def _check_magic(magic, expected_magic, path):
  if expected_magic is not None and magic != expected_magic:
    raise ValueError(f"{path} has IDX magic number 0x{magic:08x}, expected "
                     f"0x{expected_magic:08x}; the file is corrupt or not "
                     "the expected kind (images: 0x00000803, labels: "
                     "0x00000801).")


def read_idx_header(path, expected_magic=None):
  """Reads only the header of an IDX file.

  Args:
    path: file path (gzipped or plain).
    expected_magic: if not None, the required magic number (e.g.
      ``IMAGES_MAGIC``).

  Returns:
    ``(magic, dtype, dims)``: the magic number, the big-endian NumPy dtype and
    the tuple of dimensions.

  Raises:
    ValueError: if the file is not a valid IDX file or has the wrong magic.
  """
  try:
    with _open(path) as f:
      head = f.read(4)
      if len(head) == 4:
        head += f.read(4 * head[3])
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
    raise ValueError(f"{path} could not be read as an IDX file: {e}") from None
  magic, dtype, dims = _parse_header(head, path)
  _check_magic(magic, expected_magic, path)
  return magic, dtype, dims


def read_idx(path, expected_magic=None):
  """Reads a whole IDX file into a NumPy array (native byte order).

  Args:
    path: file path (gzipped or plain).
    expected_magic: if not None, the required magic number.

  Returns:
    The array, with the shape given by the header.

  Raises:
    ValueError: if the file is not a valid IDX file, has the wrong magic, or
      its size does not match its header.
  """
  try:
    with _open(path) as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise ValueError(f"{path} could not be read as an IDX file: {e}") from None
  magic, dtype, dims = _parse_header(data, path)
  _check_magic(magic, expected_magic, path)
  offset = 4 + 4 * len(dims)
  expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
  if len(data) - offset != expected:
    raise ValueError(f"{path}: IDX header says shape {dims} ({expected} data "
                     f"bytes) but the file has {len(data) - offset} data "
                     "bytes; the file is truncated or corrupt.")
  array = np.frombuffer(data, dtype, offset=offset).reshape(dims)
  return array.astype(dtype.newbyteorder("="), copy=False)


def _candidates(prefix, kind):
  idx, _ = _KINDS[kind]
  stems = (f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte")
  return [s + ext for s in stems for ext in (".gz", "")]


def find_split_files(directory, split):
  """Paths ``(images, labels)`` of one split in ``directory``.

  Args:
    directory: directory holding the IDX files.
    split: ``"train"`` or ``"test"``.

  Returns:
    ``(images_path, labels_path)``, or ``(None, None)`` entries where missing;
    the gzipped name is preferred when both exist.
  """
  prefix = SPLIT_PREFIXES[split]
  found = []
  for kind in ("images", "labels"):
    path = None
    for name in _candidates(prefix, kind):
      candidate = os.path.join(directory, name)
      if os.path.isfile(candidate):
        path = candidate
        break
    found.append(path)
  return tuple(found)


def expected_file_names(split):
  """The canonical (gzipped) file names of one split."""
  prefix = SPLIT_PREFIXES[split]
  return [_candidates(prefix, kind)[0] for kind in ("images", "labels")]


def load_split(images_path, labels_path, num_classes=10):
  """Reads and validates one split.

  Args:
    images_path: IDX images file (``n x h x w`` uint8).
    labels_path: IDX labels file (``n`` uint8).
    num_classes: labels must lie in ``[0, num_classes)``.

  Returns:
    ``(images, labels)``: uint8 ``[n, h, w, 1]`` and int32 ``[n]``.

  Raises:
    ValueError: on invalid files or inconsistent sizes.
  """
  images = read_idx(images_path, IMAGES_MAGIC)
  labels = read_idx(labels_path, LABELS_MAGIC)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(f"{images_path}: expected uint8 images of shape "
                     f"[n, h, w], got {images.dtype} {images.shape}.")
  if labels.ndim != 1 or labels.dtype != np.uint8:
    raise ValueError(f"{labels_path}: expected uint8 labels of shape [n], got "
                     f"{labels.dtype} {labels.shape}.")
  if len(images) != len(labels):
    raise ValueError(f"{images_path} has {len(images)} images but "
                     f"{labels_path} has {len(labels)} labels.")
  if labels.size and int(labels.max()) >= num_classes:
    raise ValueError(f"{labels_path}: label {int(labels.max())} is outside "
                     f"[0, {num_classes}).")
  return images[..., None], labels.astype(np.int32)
