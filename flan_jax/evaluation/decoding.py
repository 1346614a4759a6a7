"""Autoregressive decoding for every model family: greedy, sampling, beam search.

Everything runs inside one jitted `jax.lax.while_loop` per batch, sharded over the job's layout
with the examples split over ("data", "fsdp"). Outputs are [examples, max_decode_length] token
ids: each row stops at its first EOS (id 1) and is padded with 0 after it, so every row has the
same length (seqio's Evaluator stacks them into one array). The loop ends early once every row
is done.

The model family supplies each step's logits (`Family.stepper` returns a `models.Stepper`:
start, step, reorder); this module owns the token choice and the loops. Two ways to get the
logits, chosen by `DecodeConfig.use_cache`:

* KV cache (default): one token per step through `decode=True` (a decoder-only LM first runs
  the prompt into the cache as one prefix-LM chunk, per example under `vmap`);
* no cache: the whole decoder recomputes the sequence so far at every step (an encoder output
  is still computed once). The reference for tests and the baseline of
  `bench/eval_throughput.py`.

Params must already be laid out on the layout (`Layout.place`, or restored onto
`Layout.abstract_on_mesh`): nothing here moves them.

Beam search follows T5X's: 2k candidates per step, finished hypotheses scored with the length
penalty ((5 + length) / 6) ** alpha (T5X's default alpha 0.6; alpha 0 means plain summed
log-probability), early stop once no alive beam can beat the finished ones. Unlike T5X, beams
cut at the maximum length compete with finished ones on the same score.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flan_jax import models, partitioning
from flan_jax.evaluation import batching, scoring
from flan_jax.models import Stepper

Array = jax.Array
EOS_ID = 1
_NEG = -1.0e9  # "impossible" log-probability; finite so arithmetic on it stays NaN-free
METHODS = ("greedy", "sample", "beam")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How to pick tokens.

    method: "greedy", "sample" (temperature, then top-k, then top-p / nucleus filtering) or
      "beam" (num_beams, length penalty alpha).
    use_cache: KV-cache decoding (False: recompute the decoder every step).
    prefix_lm: decoder-only prompts attend bidirectionally (seqio PrefixLM layout).
    """

    method: str = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 4
    alpha: float = 0.6
    use_cache: bool = True
    eos_id: int = EOS_ID
    seed: int = 0
    prefix_lm: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"DecodeConfig.method={self.method!r}: use one of {METHODS}.")
        if self.temperature < 0:
            raise ValueError(f"DecodeConfig.temperature={self.temperature!r}: must be >= 0.")
        if self.top_k < 0:
            raise ValueError(f"DecodeConfig.top_k={self.top_k!r}: must be >= 0 (0 = off).")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"DecodeConfig.top_p={self.top_p!r}: must be in (0, 1].")
        if self.num_beams < 1:
            raise ValueError(f"DecodeConfig.num_beams={self.num_beams!r}: must be >= 1.")


GREEDY = DecodeConfig()  # the default: greedy with the KV cache


# ---------------------------------------------------------------------------------------------
# Token choice and the two loops.


def filter_logits(logits: Array, temperature: float, top_k: int, top_p: float) -> Array:
    """Temperature, then top-k, then top-p (nucleus) filtering; filtered entries -> -inf-ish."""
    logits = logits.astype(jnp.float32) / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][..., -1:]
        logits = jnp.where(logits < kth, _NEG, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        cutoff_index = jnp.sum(cum < top_p, axis=-1, keepdims=True)
        cutoff = jnp.take_along_axis(sorted_logits, cutoff_index, axis=-1)
        logits = jnp.where(logits < cutoff, _NEG, logits)
    return logits


def _sample_loop(stepper: Stepper, max_len: int, cfg: DecodeConfig, rng: Array) -> Array:
    """Greedy or sampled tokens. `rng`: one key per row ([rows]), so a row's sample depends
    on its own key only, not on which batch or process it ran in; a single key is split."""
    logits, state = stepper.start()
    n = logits.shape[0]
    greedy = cfg.method == "greedy" or cfg.temperature == 0.0
    keys = rng if rng.ndim else jax.vmap(lambda r: jax.random.fold_in(rng, r))(jnp.arange(n))

    def draw(key, row_logits, i):
        return jax.random.categorical(jax.random.fold_in(key, i), row_logits)

    def choose(logits, i):
        if greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        filtered = filter_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p)
        return jax.vmap(draw, in_axes=(0, 0, None))(keys, filtered, i).astype(jnp.int32)

    def cond(carry):
        i, _, _, _, done = carry
        return (i < max_len) & ~jnp.all(done)

    def body(carry):
        i, tokens, logits, state, done = carry
        tok = jnp.where(done, 0, choose(logits, i))  # 0 (pad) after a row's EOS
        tokens = jax.lax.dynamic_update_index_in_dim(tokens, tok, i, axis=1)
        done = done | (tok == cfg.eos_id)
        logits, state = stepper.step(state, tok, i)
        return i + 1, tokens, logits, state, done

    init = (jnp.int32(0), jnp.zeros((n, max_len), jnp.int32), logits, state, jnp.zeros(n, bool))
    return jax.lax.while_loop(cond, body, init)[1]


def length_penalty(length: Array, alpha: float) -> Array:
    """T5X / GNMT brevity penalty ((5 + length) / 6) ** alpha (1 when alpha = 0)."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def _beam_loop(stepper: Stepper, max_len: int, cfg: DecodeConfig) -> Array:
    k = cfg.num_beams
    logits, state = stepper.start()
    e = logits.shape[0] // k
    vocab = logits.shape[-1]
    max_penalty = length_penalty(jnp.array(max_len), cfg.alpha)

    def cond(carry):
        i, _, alive_lp, _, fin_scores, fin_flags, _, _ = carry
        # Stop when, for every example, the best alive beam at the largest possible length
        # penalty cannot beat the worst of the k finished ones.
        best_alive = alive_lp[:, 0] / max_penalty
        worst_finished = jnp.min(jnp.where(fin_flags, fin_scores, _NEG), axis=1)
        return (i < max_len) & ~jnp.all(worst_finished > best_alive)

    def body(carry):
        i, alive_seqs, alive_lp, fin_seqs, fin_scores, fin_flags, logits, state = carry
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(e, k, vocab)
        cand = (alive_lp[:, :, None] + logp).reshape(e, k * vocab)
        vals, flat = jax.lax.top_k(cand, 2 * k)  # [e, 2k]
        parent, tok = flat // vocab, (flat % vocab).astype(jnp.int32)
        seqs = jnp.take_along_axis(alive_seqs, parent[:, :, None], axis=1)
        seqs = jax.lax.dynamic_update_index_in_dim(seqs, tok, i, axis=2)
        is_eos = tok == cfg.eos_id

        # Finished: merge candidates ending in EOS into the k best so far.
        new_fin = jnp.where(is_eos, vals / length_penalty(i + 1, cfg.alpha), _NEG)
        all_scores = jnp.concatenate([fin_scores, new_fin], axis=1)
        all_flags = jnp.concatenate([fin_flags, is_eos], axis=1)
        all_seqs = jnp.concatenate([fin_seqs, seqs], axis=1)
        fin_scores, top = jax.lax.top_k(jnp.where(all_flags, all_scores, _NEG), k)
        fin_flags = jnp.take_along_axis(all_flags, top, axis=1)
        fin_seqs = jnp.take_along_axis(all_seqs, top[:, :, None], axis=1)

        # Alive: the k best candidates that did not end.
        alive_lp, top = jax.lax.top_k(jnp.where(is_eos, _NEG, vals), k)
        alive_seqs = jnp.take_along_axis(seqs, top[:, :, None], axis=1)
        next_tok = jnp.take_along_axis(tok, top, axis=1).reshape(e * k)
        rows = (jnp.take_along_axis(parent, top, axis=1) + jnp.arange(e)[:, None] * k).reshape(-1)
        logits, state = stepper.step(stepper.reorder(state, rows), next_tok, i)
        return i + 1, alive_seqs, alive_lp, fin_seqs, fin_scores, fin_flags, logits, state

    # All k copies start identical: only the first may expand, or the beam would hold k
    # duplicates of every hypothesis.
    alive_lp = jnp.tile(jnp.array([0.0] + [_NEG] * (k - 1), jnp.float32), (e, 1))
    zeros_seqs = jnp.zeros((e, k, max_len), jnp.int32)
    init = (
        jnp.int32(0),
        zeros_seqs,
        alive_lp,
        zeros_seqs,
        jnp.full((e, k), _NEG, jnp.float32),
        jnp.zeros((e, k), bool),
        logits,
        state,
    )
    _, alive_seqs, alive_lp, fin_seqs, fin_scores, fin_flags, _, _ = jax.lax.while_loop(
        cond, body, init
    )
    # Hypotheses cut at the maximum length compete with the finished ones (greedy would return
    # such a sequence too; T5X uses them only when nothing finished). After an early stop they
    # cannot win, by the stopping rule.
    alive_scores = alive_lp[:, 0] / max_penalty
    best_finished = jnp.where(fin_flags[:, 0], fin_scores[:, 0], _NEG)
    take_alive = alive_scores > best_finished
    return jnp.where(take_alive[:, None], alive_seqs[:, 0], fin_seqs[:, 0])


# One compile per (model, layout, config, length), not per call.
@functools.lru_cache(maxsize=32)
def _decode_fn(
    model: nn.Module, layout: partitioning.Layout, cfg: DecodeConfig, max_len: int
) -> Callable:
    """jit(params, ids [e], inputs [e, s]) -> tokens [e, max_len] (ids seed the sampler)."""
    copies = cfg.num_beams if cfg.method == "beam" else 1
    family = models.family_of(model.config)
    make_stepper = family.stepper(model, copies, max_len, cfg.use_cache, cfg.prefix_lm)

    def run(params, ids, inputs):
        stepper = make_stepper.fn(params, inputs)
        if cfg.method == "beam":
            return _beam_loop(stepper, max_len, cfg)
        # One key per example from its index: samples do not depend on the batching.
        # threefry: its draws do not depend on the batch shape or sharding (rbg's do).
        base = jax.random.key(cfg.seed, impl="threefry2x32")
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(ids)
        return _sample_loop(stepper, max_len, cfg, keys)

    return scoring.jit_on_layout(models.ModelFn(run, make_stepper.vmaps_examples), layout)


def decode_rows(
    model: nn.Module,
    params: Any,
    inputs: Sequence[Sequence[int]],
    layout: partitioning.Layout,
    batch_size: int,
    lengths: Mapping[str, int],
    config: DecodeConfig = GREEDY,
    *,
    bucket: bool = True,
) -> np.ndarray:
    """Generated token ids [len(inputs), lengths["targets"]] (0-padded after each row's EOS).

    Every process passes the same inputs and gets every output back; each feeds only its share
    of every batch to its devices (`batching`). Sampling seeds each example by its index, so
    outputs do not depend on the batching, the bucketing or the number of processes.

    Args:
      model: a module built by `models.build_model`.
      params: its params, laid out on `layout` by their logical axes.
      inputs: one token-id sequence per example (EOS included), cut to `lengths["inputs"]`.
      layout: the job's mesh and logical-axis rules; examples are split over data x fsdp.
      batch_size: examples per step (rounded up to the data-parallel size).
      lengths: ``{"inputs": s, "targets": t}``; t is the maximum decode length.
      config: how to pick tokens.
      bucket: sort prompts by length and pad each batch to its own length bucket (False: pad
        every batch to s).
    """
    s, max_len = int(lengths["inputs"]), int(lengths["targets"])
    if not len(inputs):
        return np.zeros((0, max_len), np.int32)
    fn = _decode_fn(model, layout, config, max_len)
    prompts = [np.asarray(x, np.int32)[:s] for x in inputs]

    def build(items: np.ndarray, lens: tuple[int, ...]) -> list[np.ndarray]:
        batch = np.zeros((len(items), lens[0]), np.int32)
        for slot, item in enumerate(items):
            if item >= 0:
                batch[slot] = scoring.pad_ids(prompts[item], lens[0])
        return [batch]

    batches = batching.plan(
        [(len(p),) for p in prompts], (s,), layout.batch_unit(batch_size), bucket
    )
    call = lambda ids, x: fn(params, ids, x)  # noqa: E731
    return batching.run(call, batches, layout, build, len(prompts)).astype(np.int32)


def trim_at_eos(tokens: Sequence[int], eos_id: int = EOS_ID) -> list[int]:
    """Token ids up to and including the first EOS (all of them if there is none)."""
    tokens = [int(x) for x in tokens]
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens
