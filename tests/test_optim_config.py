"""Schedule warm-up, gradient clipping (config) and ResNet-18 width."""

import numpy as np
import pytest

from tfbio import models
from tfbio.train import config as config_lib
from tfbio.train import trainer as trainer_lib


def _config(**schedule):
  c = config_lib.base_config()
  c.optimizer.learning_rate = 0.1
  c.epochs = 4
  for k, v in schedule.items():
    c.schedule[k] = v
  return c


def test_warmup_ramps_then_follows_the_schedule():
  c = _config(name="piecewise", boundaries_epochs=(2,), multipliers=(1.0, 0.1),
              warmup_steps=10)
  lr = trainer_lib.learning_rate_schedule(c, steps_per_epoch=10)
  got = [float(lr(s)) for s in (0, 4, 9, 15, 25)]
  np.testing.assert_allclose(got, [0.01, 0.05, 0.1, 0.1, 0.01], rtol=1e-6)
  assert lr.get_config()["warmup_steps"] == 10
  no_warmup = trainer_lib.learning_rate_schedule(_config(), 10)
  assert float(no_warmup(0)) == pytest.approx(0.1)


def test_clipnorm_reaches_the_keras_optimizer():
  c = _config()
  c.optimizer.clipnorm = 2.5
  opt = trainer_lib.make_optimizer(c, steps_per_epoch=5)
  assert opt.global_clipnorm == 2.5
  c.optimizer.name = "adam"
  assert trainer_lib.make_optimizer(c, 5).global_clipnorm == 2.5
  c.optimizer.clipnorm = 0.0
  assert trainer_lib.make_optimizer(c, 5).global_clipnorm is None


@pytest.mark.parametrize("key,value,message", [
    ("optimizer.clipnorm", -1.0, "optimizer.clipnorm=-1.0"),
    ("schedule.warmup_steps", -5, "schedule.warmup_steps=-5"),
])
def test_bad_values_are_one_line_errors(key, value, message):
  c = config_lib.base_config()
  section, field = key.split(".")
  c[section][field] = value
  with pytest.raises(ValueError, match=message.replace(".", r"\.")):
    config_lib.validate(c)


def test_resnet18_width():
  small = models.create_model("resnet18_cifar", num_classes=10,
                              input_shape=(16, 16, 1), width=8)
  assert small.get_layer("conv1").kernel.shape == (3, 3, 1, 8)
  assert small.get_layer("layer4_1_conv2").kernel.shape == (3, 3, 64, 64)
  assert small.get_layer("fc").kernel.shape == (64, 10)
  assert small.output.shape == (None, 10)
  with pytest.raises(ValueError, match="width=0"):
    models.create_model("resnet18_cifar", width=0)
