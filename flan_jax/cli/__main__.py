"""``python -m flan_jax.cli``: the same as the ``flan-jax`` console script."""

import sys

from flan_jax.cli import main

sys.exit(main())
