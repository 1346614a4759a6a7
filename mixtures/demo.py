"""Mixtures of the demo collection: leave-one-cluster-out training and held-out evaluation.

Registers, for each demo cluster C, ``demo:heldout_C:train`` (every other cluster) and
``demo:heldout_C:eval`` (C's zero-shot templates), plus ``demo:all:train``. The demo data is
small, so FLAN's 30k cap / 3k maximum rate leave every dataset at its full size.
"""

from flan_jax.mixing import MixturePlan, register_all_heldout_mixtures
from flan_jax.registry import Collection


def register(collection: Collection) -> list[MixturePlan]:
    """Registers the demo mixtures (``flan_jax.catalog`` calls it after the tasks)."""
    return register_all_heldout_mixtures(collection)
