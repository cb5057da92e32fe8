"""The registered FSG optimizers `fsg` (GRU slow net), `fsg_attention` and
`fsg_authors` (`FSGAuthors`: the form of the authors' public code).

Each is registered with `wrap_model=bnnzoo.fsg.wrap` (`OptimizerSpec`): the model gets
FSG's training step before `train` compiles it. The registration lives here, not in
`bnnzoo/fsg/`, so that `bnnzoo.fsg` (the optimizer and its nets) imports nothing of
`bnnzoo.optimizers`: the dependency between the two folders points one way.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from bnnzoo.fsg.authors import FSGAuthors, _authors_adam
from bnnzoo.fsg.model import wrap
from bnnzoo.fsg.optimizer import FSG
from bnnzoo.optimizers.builders import register_optimizer

__all__ = ["fsg", "fsg_attention", "fsg_authors"]


def _builder(slow_net: str):
    def build(learning_rate=1e-3, history: int = 5, alpha: float = 0.9, embedding_dim: int = 8,
              units: int = 4, fast_hidden: Sequence[int] = (100, 100)):
        return FSG(
            inner=tf.keras.optimizers.legacy.Adam(learning_rate),
            slow_net=slow_net,
            history=history,
            alpha=alpha,
            embedding_dim=embedding_dim,
            units=units,
            fast_hidden=fast_hidden,
        )

    build.__doc__ = f"FSG with the {slow_net} slow net; Adam(learning_rate) applies every update."
    return build


fsg = register_optimizer("fsg", wrap_model=wrap)(_builder("gru"))
fsg_attention = register_optimizer("fsg_attention", wrap_model=wrap)(_builder("attention"))


@register_optimizer("fsg_authors", wrap_model=wrap)
def fsg_authors(learning_rate=1e-3, slow_net: str = "gru", slow_learning_rate: float = 1e-3,
                fast_learning_rate: float = 1e-2, **fsg_kwargs):
    """`FSGAuthors`, as the authors' code trains: Adam(learning_rate) on the latent
    weights (with \\(c \\odot g^{\\text{fast}}\\)) and the real-valued variables,
    Adam(slow_learning_rate) on the slow net and embeddings, Adam(fast_learning_rate)
    on the linear fast net (all three with PyTorch's ε = 1e-8). `fsg_kwargs`:
    `history`, `alpha`, `embedding_dim`, `units`, `fast_hidden`, as for `fsg`."""
    return FSGAuthors(
        inner=_authors_adam(learning_rate),
        slow_net=slow_net,
        slow_optimizer=_authors_adam(slow_learning_rate),
        fast_optimizer=_authors_adam(fast_learning_rate),
        **fsg_kwargs,
    )
