r"""The worker side of ``bench/peer_biotorch.py`` (standard library only).

``bench/peer_biotorch.py`` drives one worker process per framework; each
holds its (model, rule) cells -- a model, an optimizer and a random batch --
and times them on request, so that the driver can interleave the two
frameworks cell by cell. The protocol is JSON lines: one request per line
on stdin, one reply per line on the worker's original stdout (everything
else a worker or a library prints, biotorch's conversion messages included,
goes to stderr):

* ``{"cmd": "setup", "threads": 2, "inter_threads": 1, "batch_size": 64,
  "seed": 0, "learning_rate": 1e-3, "momentum": 0.9}`` -> ``{"ok": true,
  "versions": "..."}``, once, before anything else;
* ``{"cmd": "build", "model": "le_net_mnist", "rule": "fa"}`` -> ``{"ok":
  true}``, or ``{"ok": false, "error": "..."}`` when the framework cannot
  run that cell (the driver reports it as n/a with the reason);
* ``{"cmd": "run", "model": ..., "rule": ..., "steps": 5}`` -> ``{"ok": true,
  "seconds": ..., "loss": ...}``: that many consecutive training steps, the
  loss fetched after the last;
* ``{"cmd": "quit"}``.

This file is also the biotorch worker, run by the side venv's interpreter
(``make bench-peer`` builds ``.venv-peer``: the torch CPU wheel and
``biotorch`` without its dependencies):

    .venv-peer/bin/python bench/peer_worker.py

biotorch 0.0.16's ``biotorch.models`` package imports torchvision in its
``__init__`` (for the ImageNet models) and so do its per-mode model modules.
The worker needs none of that: it loads ``biotorch/models/le_net.py``,
``small_resnet.py`` and ``utils.py`` (torch only) from their files and
builds each model as biotorch's ``biotorch.models.<mode>`` constructors do
(``create_le_net_biomodel`` / ``create_torchvision_biomodel``, i.e.
``BioModule(model, mode=mode, copy_weights=False, output_dim=10)``).
"""

import importlib.util
import json
import os
import sys
import time
import traceback

# biotorch's model files and constructors (biotorch/models/).
BIOTORCH_MODELS = {
    "resnet20": ("small_resnet", "resnet20", "create_torchvision_biomodel"),
    "le_net_mnist": ("le_net", "le_net_mnist", "create_le_net_biomodel"),
    "le_net_cifar": ("le_net", "le_net_cifar", "create_le_net_biomodel"),
}
# Input shape (height, width, channels) of each model.
INPUT_SHAPES = {
    "resnet20": (32, 32, 3),
    "le_net_mnist": (32, 32, 1),
    "le_net_cifar": (32, 32, 3),
}
# The benchmark's rule names -> biotorch's modes (biotorch/layers/utils.py
# convert_layer; "backpropagation" is its name of bp).
BIOTORCH_MODES = {"bp": "backpropagation", "fa": "fa", "usf": "usf",
                  "brsf": "brsf", "frsf": "frsf", "dfa": "dfa"}
NUM_CLASSES = 10


def serve(handlers):
  """Answers the driver's requests until ``quit`` or the end of stdin.

  Args:
    handlers: a dict from command (``"setup"``, ``"build"``, ``"run"``) to a
      function of the request dict returning the reply's fields; an
      exception becomes ``{"ok": false, "error": "<type>: <message>"}``.
  """
  replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
  os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # Prints go to stderr.
  for line in sys.stdin:
    request = json.loads(line)
    if request["cmd"] == "quit":
      break
    try:
      reply = {"ok": True, **handlers[request["cmd"]](request)}
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    replies.write(json.dumps(reply) + "\n")
    replies.flush()


def cell_key(request):
  """The (model, rule) of a ``build`` / ``run`` request."""
  return request["model"], request["rule"]


def time_steps(step, steps):
  """Runs ``step()`` ``steps`` times; (seconds, the last loss as a float).

  ``float`` of the last loss waits for the computation to finish.
  """
  start = time.perf_counter()
  for _ in range(steps):
    loss = step()
  loss = float(loss)
  return time.perf_counter() - start, loss


class TorchWorker:
  """biotorch's cells: ``BioModule`` models, ``torch.optim.SGD`` steps."""

  def __init__(self):
    self.cells = {}
    self.config = None
    self._files = {}

  def _biotorch_file(self, name):
    """biotorch/models/<name>.py, loaded without biotorch.models' init."""
    if name not in self._files:
      import biotorch  # pylint: disable=g-import-not-at-top

      path = os.path.join(os.path.dirname(biotorch.__file__), "models",
                          name + ".py")
      spec = importlib.util.spec_from_file_location(
          f"_biotorch_models_{name}", path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      self._files[name] = module
    return self._files[name]

  def setup(self, request):
    """Thread counts and the shared settings; returns the versions."""
    import torch  # pylint: disable=g-import-not-at-top

    torch.set_num_threads(request["threads"])
    torch.set_num_interop_threads(request["inter_threads"])
    self.config = request
    return {"versions": f"PyTorch {torch.__version__}, biotorch "
                        f"{distribution_version('biotorch')}"}

  def build(self, request):
    """A model in the rule's biotorch mode, its optimizer and a batch."""
    import torch  # pylint: disable=g-import-not-at-top

    model_name, rule = cell_key(request)
    file_name, builder, creator = BIOTORCH_MODELS[model_name]
    mode = BIOTORCH_MODES[rule]
    torch.manual_seed(self.config["seed"])
    architecture = getattr(self._biotorch_file(file_name), builder)
    net = getattr(self._biotorch_file("utils"), creator)(
        architecture, mode, None, False, True, NUM_CLASSES)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(),
                                lr=self.config["learning_rate"],
                                momentum=self.config["momentum"])
    loss_fn = torch.nn.CrossEntropyLoss()
    height, width, channels = INPUT_SHAPES[model_name]
    generator = torch.Generator().manual_seed(self.config["seed"])
    batch = self.config["batch_size"]
    x = torch.randn(batch, channels, height, width, generator=generator)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)

    def step():
      # biotorch/training/functions.py train(): forward (DFA: with the
      # targets and the loss, biotorch/module/biomodule.py), loss,
      # zero_grad, backward, optimizer step.
      if mode == "dfa":
        outputs = net(x, y, loss_fn)
      else:
        outputs = net(x)
      loss = loss_fn(outputs, y)
      net.zero_grad()
      loss.backward()
      optimizer.step()
      return loss.detach()

    self.cells[(model_name, rule)] = step
    return {}

  def run(self, request):
    """Times ``steps`` training steps of a built cell."""
    seconds, loss = time_steps(self.cells[cell_key(request)],
                               request["steps"])
    return {"seconds": seconds, "loss": loss}


def distribution_version(name):
  """An installed distribution's version, or "?"."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top

  try:
    return metadata.version(name)
  except metadata.PackageNotFoundError:
    return "?"


def main():
  worker = TorchWorker()
  serve({"setup": worker.setup, "build": worker.build, "run": worker.run})


if __name__ == "__main__":
  main()
