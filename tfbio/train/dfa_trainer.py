"""Direct feedback alignment behind ``tfbio-train``: ``config.dfa``.

Nøkland (2016), "Direct Feedback Alignment Provides Learning in Deep Neural
Networks"; docs/algorithms.md §9. :class:`DFATrainer` is
:class:`tfbio.train.fit_trainer.FitTrainer` for ``config.dfa.enabled``: it
wraps the registry network (a chain of kernel layers, or a residual network
trained block-wise, Launay et al. 2020; ``feedback`` must be ``"bp"``) in
``tfbio.dfa.DFAModel`` with ``dfa.feedback_scale``, ``dfa.feedback_density``,
``dfa.bp_angle`` and the config's ``optimizer.weight_decay`` (coupled L2 on
every variable, as ``tfbio.train.Trainer``), compiles it with the config's
optimizer (and schedule) and softmax cross-entropy, and trains it with Keras
``fit``. Runs, resumes and writes its work directory as every
fit trainer; with ``dfa.bp_angle`` the history adds ``bp_angle/<layer>``
(the angle between each hidden layer's DFA update and its true gradient).
"""

import keras

from tfbio.train import fit_trainer


class DFATrainer(fit_trainer.FitTrainer):
  """Trains ``config`` by direct feedback alignment."""

  rule_name = "direct feedback alignment"
  layer_prefixes = ("bp_angle/",)

  def __init__(self, config, workdir, strategy="default", tpu_address=None):
    if config.loss.name != "softmax":
      raise ValueError("direct feedback alignment trains with loss.name="
                       f"'softmax'. Received: loss.name={config.loss.name!r}")
    super().__init__(config, workdir, strategy=strategy,
                     tpu_address=tpu_address)

  def wrap(self, network, optimizer):
    from tfbio import dfa  # pylint: disable=g-import-not-at-top
    from tfbio.train import config as config_lib  # pylint: disable=g-import-not-at-top

    d, opt = self.config.dfa, self.config.optimizer
    wrapper = dfa.DFAModel(
        network, feedback_scale=d.feedback_scale,
        feedback_density=d.feedback_density, seed=int(self.config.seed),
        bp_angle=d.bp_angle, block_outputs=config_lib.dfa_block_outputs(d),
        feedback_structure=d.get("feedback_structure", "dense"),
        weight_decay=(opt.weight_decay if opt.name != "batch_manhattan"
                      else 0.0))
    wrapper.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[fit_trainer.ErrorRate()])
    return wrapper

  def _summary_fields(self, seconds):
    fields = super()._summary_fields(seconds)
    fields.update(feedback="dfa", last_layer=None,
                  dfa_feedback_scale=self.config.dfa.feedback_scale,
                  dfa_feedback_density=self.config.dfa.feedback_density)
    return fields
