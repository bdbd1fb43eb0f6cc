"""Test setup: two logical CPU devices (for MirroredStrategy tests), quiet TF,
and fewer full garbage collections (the heap holds all of TensorFlow)."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its runtime.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_configure(config):
  # TensorFlow, Keras and the test modules are long-lived: move them out of
  # the collector's view, and collect the young generation less often, so
  # that generation-2 scans of a heap of millions of objects are rare
  # (measured: ~8 % of the suite's time).
  gc.collect()
  gc.freeze()
  gc.set_threshold(50000, 20, 20)
  config.addinivalue_line(
      "markers", "slow_apps: an expensive keras.applications model "
      "(tests/test_applications.py); skipped unless TFBIO_ALL_APPS=1 "
      "(make test-apps)")


def pytest_collection_modifyitems(config, items):
  if os.environ.get("TFBIO_ALL_APPS") == "1":
    return
  skip = pytest.mark.skip(reason="slow_apps: set TFBIO_ALL_APPS=1 "
                          "(make test-apps) to run it")
  for item in items:
    if "slow_apps" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
  keras.utils.clear_session(free_memory=False)
  keras.utils.set_random_seed(1234)
  yield


@pytest.fixture(scope="session")
def strategy():
  """The process's only MirroredStrategy (2 logical CPUs).

  A second MirroredStrategy in the same process collides with the first on
  collective instance keys, so every mirrored test (any file) uses this one.
  """
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  assert len(devices) >= 2, "conftest.py should configure 2 logical CPUs"
  return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
