"""``--strategy`` names → ``tf.distribute`` strategies."""

import json
import os

from absl import logging
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def make_strategy(name, tpu_address=None):
  """The strategy for ``name``.

  * ``default``: ``tf.distribute.get_strategy()`` (one device, no replicas);
  * ``mirrored``: ``MirroredStrategy`` over the local GPUs (or the logical
    CPUs if there are none);
  * ``multiworker``: ``MultiWorkerMirroredStrategy``, cluster from the
    ``TF_CONFIG`` environment variable (every worker runs the same command);
  * ``tpu``: ``TPUStrategy`` on ``tpu_address`` (a Cloud TPU name or
    ``grpc://`` address; None: the local TPU VM).

  Raises:
    ValueError: an unknown name, or ``multiworker`` without ``TF_CONFIG``.
  """
  if name not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}. Received: "
                     f"strategy={name!r}")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    logging.info("MirroredStrategy over %s", devices)
    return tf.distribute.MirroredStrategy(devices)
  if name == "multiworker":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("strategy='multiworker' needs the TF_CONFIG "
                       "environment variable (cluster and task of this "
                       "worker); see the README's multi-worker section.")
    try:
      json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
      raise ValueError(f"TF_CONFIG is not valid JSON ({e}): "
                       f"{os.environ['TF_CONFIG']!r}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
      tpu=tpu_address or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def split_cpu(replicas):
  """Splits the CPU into ``replicas`` logical devices (before TF starts).

  With them ``--strategy=mirrored`` runs ``replicas`` replicas on a machine
  without accelerators (a laptop check of a distributed config; on 2 cores
  it is slower than one replica).

  Raises:
    ValueError: ``replicas`` is not a positive int, or TensorFlow's runtime
      is already initialised.
  """
  from tfbio.utils import checks  # pylint: disable=g-import-not-at-top

  replicas = checks.positive_int("cpu_replicas", replicas)
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
  except RuntimeError as e:
    raise ValueError(f"cpu_replicas={replicas} must be set before "
                     f"TensorFlow initialises its devices ({e})") from None
  return replicas


def worker_info(strategy):
  """``(is_chief, task_id)`` of this process (chief: writes the outputs)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True, 0
  task_type, task_id = resolver.task_type, resolver.task_id
  is_chief = (task_type == "chief" or (
      task_type == "worker" and task_id == 0
      and "chief" not in resolver.cluster_spec().as_dict()))
  return is_chief, task_id or 0


def shard_by_data(dataset):
  """``dataset`` with the options every training input pipeline uses.

  Auto-sharding by *data* (each worker of a multi-worker strategy reads the
  whole source and keeps its share of the batches: the sources are not
  file-sharded) and a deterministic element order (exact resume).
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  options.deterministic = True
  return dataset.with_options(options)
