"""Token losses and metrics over fp32 logits (log-softmax via logsumexp).

All functions take logits [b, t, vocab], integer targets [b, t] and weights [b, t] (0 on padding
and, for prefix-LM, on the prefix) and return sums, so callers can aggregate across devices and
micro-batches before dividing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _log_softmax_parts(logits: Array, targets: Array) -> tuple[Array, Array, Array]:
    """(log_z [b, t], target log-prob [b, t], logits fp32) without materializing a one-hot."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)
    return log_z, target_logit[..., 0] - log_z, logits


def cross_entropy_with_z_loss(
    logits: Array,
    targets: Array,
    weights: Array,
    z_loss: float = 1e-4,
    label_smoothing: float = 0.0,
) -> tuple[Array, Array, Array]:
    """Weighted token cross-entropy plus T5X's z-loss `z_loss * log(Z)^2`.

    Returns `(loss_sum, z_loss_sum, weight_sum)`; `loss_sum` already includes the z-loss (it is the
    quantity to minimize) and `z_loss_sum` reports that part alone. With label smoothing the
    target distribution puts `1 - label_smoothing` on the target and spreads the rest uniformly
    over the other tokens; the entropy of that distribution is subtracted (as T5X does) so a
    perfect model scores 0.
    """
    vocab = logits.shape[-1]
    weights = weights.astype(jnp.float32)
    log_z, target_logp, logits32 = _log_softmax_parts(logits, targets)
    if label_smoothing > 0.0:
        confidence = 1.0 - label_smoothing
        low = label_smoothing / (vocab - 1)
        sum_logp = jnp.sum(logits32, axis=-1) - vocab * log_z
        # -sum_v q_v log p_v with q = low everywhere except `confidence` on the target.
        loss = -(confidence - low) * target_logp - low * sum_logp
        loss = loss + (confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
    else:
        loss = -target_logp
    z = z_loss * jnp.square(log_z)
    loss_sum = jnp.sum((loss + z) * weights)
    return loss_sum, jnp.sum(z * weights), jnp.sum(weights)


def loss_rows(weights: Array, budget: int) -> tuple[Array, Array]:
    """The positions of each row that the loss weighs, for computing logits there alone.

    Returns `(rows [b, budget], fits)`: per row, the weighted positions in order, then
    unweighted ones (weight 0) to fill `budget`; and whether every row's weighted positions fit
    in `budget`. When `fits`, the loss over the selected positions has exactly the terms of the
    loss over all positions.
    """
    budget = min(budget, weights.shape[1])
    weighted = weights > 0
    # A stable sort of "not weighted" puts each row's weighted positions first, in order.
    order = jnp.argsort(jnp.logical_not(weighted).astype(jnp.int32), axis=1, stable=True)
    return order[:, :budget].astype(jnp.int32), jnp.all(jnp.sum(weighted, axis=1) <= budget)


def token_accuracy(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array]:
    """(weighted count of targets whose logit is the row's maximum, weight sum).

    The same as argmax == target except that a tie with the maximum counts as correct. A plain
    max reduction: XLA's CPU backend runs argmax's (value, index) reduction over a 32k
    vocabulary ~10x slower, which cost ~10% of a tiny T5's training step.
    """
    weights = weights.astype(jnp.float32)
    target = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    correct = (target >= jnp.max(logits, axis=-1)).astype(jnp.float32)
    return jnp.sum(correct * weights), jnp.sum(weights)


def per_example_logprob(logits: Array, targets: Array, weights: Array) -> Array:
    """Summed target log-likelihood per row [b] (rank classification scores)."""
    _, target_logp, _ = _log_softmax_parts(logits, targets)
    return jnp.sum(target_logp * weights.astype(jnp.float32), axis=-1)


def per_example_length(weights: Array) -> Array:
    """Number of scored tokens per row [b] (for length-normalized scores)."""
    return jnp.sum(weights.astype(jnp.float32), axis=-1)


# ---------------------------------------------------------------------------------------------
# Rank-classification scoring (the family scorers share these).


def shift_right(targets: Array) -> Array:
    """Decoder inputs for teacher forcing: 0 (BOS = pad) then the targets minus the last."""
    return jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]


def target_scores(logits: Array, targets: Array, weights: Array | None = None) -> Array:
    """[b, 2]: summed target log-probability and number of scored tokens, per row.

    `weights` defaults to the non-padding targets. Length normalization divides the two on the
    host, so it costs no extra compilation.
    """
    weights = targets > 0 if weights is None else weights
    return jnp.stack(
        [per_example_logprob(logits, targets, weights), per_example_length(weights)], axis=-1
    )
