"""Direct feedback alignment (DFA, Nøkland 2016) as a training rule.

Nøkland 2016, "Direct Feedback Alignment Provides Learning in Deep Neural
Networks" (NeurIPS): every hidden layer is trained with the output error
projected through a fixed random matrix, ``δ_l = (e B_l) ⊙ f'(a_l)``; the
output layer with its true gradient. Residual networks and Transformers
(``tfbio.models`` ``vit_tiny``) are trained block-wise (Launay et al. 2020:
one ``B_k`` per residual block, back-propagation inside it). See
``tfbio.dfa.model``.

    import keras
    from tfbio import dfa
    net = keras.Sequential([keras.Input((64,)),
                            keras.layers.Dense(256, activation="tanh"),
                            keras.layers.Dense(10)])
    model = dfa.DFAModel(net, seed=0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=10, validation_data=(x_test, y_test))

Not imported by ``import tfbio``; import it explicitly.
"""

from tfbio.dfa.model import ACTIVATION_LAYERS
from tfbio.dfa.model import Block
from tfbio.dfa.model import chain_layers
from tfbio.dfa.model import DFAModel
from tfbio.dfa.model import DirectFeedback
from tfbio.dfa.model import GraphBlock
from tfbio.dfa.model import RESIDUAL
from tfbio.dfa.model import residual_block_ends
from tfbio.dfa.model import split_graph_blocks
from tfbio.dfa.model import is_kernel_layer
from tfbio.dfa.model import split_blocks

__all__ = [
    "ACTIVATION_LAYERS", "Block", "DFAModel", "DirectFeedback", "GraphBlock",
    "RESIDUAL", "chain_layers", "is_kernel_layer", "residual_block_ends",
    "split_blocks", "split_graph_blocks",
]
