"""Tests for flan_jax.models: configs, parameter layout, packing, KV-cache decoding, losses.

Everything runs on tiny models (vocab 64, d_model 64, 2+2 layers); compiled functions are shared
through module-scoped fixtures to keep the file fast on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flan_jax import models
from flan_jax.models import (
    T5,
    DecoderConfig,
    DecoderOnly,
    T5Config,
    build_model,
    decoder_config,
    family_of,
    init_decode_cache,
    param_count,
    t5_config,
    train_flops_per_example,
)
from flan_jax.models.layers import relative_position_bucket
from flan_jax.models.losses import (
    cross_entropy_with_z_loss,
    per_example_length,
    per_example_logprob,
    token_accuracy,
)

VOCAB = 64


def _token_logprobs(logits: jax.Array, targets: np.ndarray) -> np.ndarray:
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return np.asarray(jnp.take_along_axis(logp, jnp.asarray(targets)[..., None], -1)[..., 0])


# ----------------------------------------------------------------------------- fixtures


def _host_params(model: nn.Module, *args, seed: int = 0) -> tuple[dict, dict]:
    """(abstract boxed variables, host-random params) without running `init`.

    XLA:CPU needs ~0.3 s to compile each parameter's random initializer, so the tests draw
    parameters with numpy at fan-in scale (norm scales near 1) and run the real `init` once
    (`test_real_init_scales`).
    """
    boxed = jax.eval_shape(model.init, jax.random.key(0), *args)
    rng = np.random.default_rng(seed)

    def draw(path, leaf: nn.LogicallyPartitioned) -> jax.Array:
        shape, names = leaf.value.shape, leaf.names
        if names == ("embed",):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif names[0] == "vocab" or names[0] == "heads" and len(names) == 2:
            value = rng.normal(size=shape)  # embeddings and relative position biases
        else:
            fan_in = shape[0] if names[0] in ("embed", "mlp") else shape[0] * shape[1]
            value = rng.normal(size=shape) / np.sqrt(fan_in)
        return jnp.asarray(value, leaf.value.dtype)

    params = jax.tree_util.tree_map_with_path(
        draw, boxed["params"], is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)
    )
    return boxed, params


def _jit_decode_step(model: nn.Module, **kwargs):
    """jit(params, cache, *args) -> (logits, new cache) for one `decode=True` call."""

    def step(params, cache, *args):
        logits, mutated = model.apply(
            {"params": params, "cache": cache}, *args, decode=True, mutable=["cache"], **kwargs
        )
        return logits, mutated["cache"]

    return jax.jit(step)


# Tests share batch shapes ([2, 8]) so each fixture's jitted functions compile once per
# batch structure.
T5_ENC = jnp.array([[5, 6, 7, 8, 1, 0, 0, 0], [9, 3, 1, 0, 0, 0, 0, 0]])
T5_TARGETS = jnp.array([[12, 13, 14, 15, 1, 0, 0, 0], [20, 21, 22, 23, 24, 25, 26, 1]])
T5_DEC_IN = jnp.array([[0, 12, 13, 14, 15, 0, 0, 0], [0, 20, 21, 22, 23, 24, 25, 26]])
LM_TOKENS = jnp.array([[0, 7, 8, 5, 1, 3, 9, 2], [0, 4, 4, 6, 1, 10, 11, 12]])


@pytest.fixture(scope="module")
def t5_setup():
    model = build_model(t5_config("tiny", vocab_size=VOCAB))
    boxed, params = _host_params(model, T5_ENC, T5_DEC_IN)
    forward = jax.jit(lambda p, batch: model.apply({"params": p}, **batch))
    return model, boxed, params, forward


@pytest.fixture(scope="module")
def t5_encode(t5_setup):
    model = t5_setup[0]
    return jax.jit(lambda p, tokens: model.apply({"params": p}, tokens, method=T5.encode))


@pytest.fixture(scope="module")
def lm_setup():
    model = build_model(decoder_config("tiny", vocab_size=VOCAB))
    boxed, params = _host_params(model, LM_TOKENS, seed=1)
    forward = jax.jit(lambda p, batch: model.apply({"params": p}, **batch))
    return model, boxed, params, forward


@pytest.fixture(scope="module")
def lm_step(lm_setup):
    return _jit_decode_step(lm_setup[0])


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: T5Config(d_model=0), "d_model"),
        (lambda: T5Config(num_heads=-2), "num_heads"),
        (lambda: T5Config(num_encoder_layers=0), "num_encoder_layers"),
        (lambda: T5Config(dropout_rate=1.0), "dropout_rate"),
        (lambda: T5Config(dtype="float16"), "dtype"),
        (lambda: T5Config(param_dtype="int8"), "param_dtype"),
        (lambda: T5Config(layer_norm_epsilon=0.0), "layer_norm_epsilon"),
        (lambda: T5Config(relative_attention_max_distance=8), "relative_attention_max_distance"),
        (lambda: DecoderConfig(num_layers=0), "num_layers"),
        (lambda: DecoderConfig(vocab_size=2.5), "vocab_size"),
        (lambda: t5_config("huge"), "huge"),
    ],
)
def test_invalid_config_one_line_error(make, field):
    with pytest.raises(ValueError) as err:
        make()
    message = str(err.value)
    assert field in message and "\n" not in message


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        T5Config().d_model = 3  # type: ignore[misc]


def test_presets_and_kind():
    small = t5_config("small")
    assert (small.d_model, small.num_heads, small.d_ff, small.num_encoder_layers) == (
        512,
        6,
        1024,
        8,
    )
    xxl = t5_config("xxl")
    assert (xxl.d_model, xxl.num_heads, xxl.d_ff, xxl.num_decoder_layers) == (4096, 64, 10240, 24)
    assert t5_config("tiny", vocab_size=100).vocab_size == 100
    assert family_of(small).batch_layout == "encoder_decoder"
    assert family_of(decoder_config("tiny")).batch_layout == "prefix_lm"
    assert isinstance(build_model(small), T5)
    assert isinstance(build_model(decoder_config("small")), DecoderOnly)
    assert models.preset("t5", "small") == small
    assert models.preset("decoder", "tiny", vocab_size=VOCAB) == decoder_config(
        "tiny", vocab_size=VOCAB
    )


def test_family_registry_and_records():
    assert set(models.FAMILIES) == {"t5", "decoder", "llama", "qwen2", "gemma"}
    assert {T5Config, DecoderConfig} <= set(models.config_classes())
    for config, name, report in [
        (t5_config("base", vocab_size=VOCAB), "t5", "T5 base"),
        (decoder_config("small"), "decoder", "decoder-only small"),
        (t5_config("tiny", d_model=96), "t5", "T5 d_model=96"),
    ]:
        family = family_of(config)
        assert family is models.family_named(name) and family.name == name
        assert family.report_name(config) == report
        record = models.describe(config)
        assert record["family"] == name
        assert family.config_from_fields(record) == config  # checkpoint metadata round trip
    with pytest.raises(TypeError, match="no model family's config"):
        family_of(dict(d_model=3))
    with pytest.raises(ValueError, match="unknown model family 'bert'"):
        models.family_named("bert")
    with pytest.raises(ValueError, match="no field 'num_layers'"):
        models.family_named("t5").config_from_fields({"num_layers": 2})


def test_feature_lengths_dummy_batch_and_abstract_params():
    lengths = {"inputs": 6, "targets": 4}
    t5 = t5_config("tiny", vocab_size=VOCAB)
    lm = decoder_config("tiny", vocab_size=VOCAB)
    assert models.model_feature_lengths(t5, lengths) == {
        "encoder_input_tokens": 6,
        "decoder_target_tokens": 4,
    }
    assert models.model_feature_lengths(lm, lengths) == {"decoder_target_tokens": 10}
    assert {k: v.shape for k, v in models.dummy_batch(t5, lengths, 2).items()} == {
        "encoder_input_tokens": (2, 6),
        "decoder_input_tokens": (2, 4),
        "decoder_target_tokens": (2, 4),
    }
    assert {k: v.shape for k, v in models.dummy_batch(lm, lengths, 2).items()} == {
        "decoder_input_tokens": (2, 10),
        "decoder_target_tokens": (2, 10),
    }
    for config in (t5, lm):
        boxed = models.abstract_params(config)
        assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(boxed))) == (
            param_count(config)
        )


@pytest.mark.parametrize("size, tflop", [("small", 0.106), ("base", 0.426), ("large", 1.47)])
def test_train_flops_match_t5_md(size, tflop):
    got = train_flops_per_example(t5_config(size), {"inputs": 512, "targets": 114}) / 1e12
    assert got == pytest.approx(tflop, rel=0.01)


def test_decoder_only_flops_formula():
    cfg = decoder_config("tiny", vocab_size=VOCAB)
    d, a, f, s = 64, 64, 128, 10
    # Logits at the 4 target positions only (the training loss computes no others).
    expected = 3 * (2 * (2 * s * (4 * d * a + 3 * d * f) + 4 * s * s * a) + 2 * 4 * d * VOCAB)
    assert train_flops_per_example(cfg, {"inputs": 6, "targets": 4}) == expected


def _abstract_param_size(model: nn.Module, *args) -> int:
    shapes = jax.eval_shape(model.init, jax.random.key(0), *args)["params"]
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nn.unbox(shapes)))


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_param_count_t5(size):
    config = t5_config(size, vocab_size=VOCAB) if size == "tiny" else t5_config(size)
    tokens = jnp.ones((1, 4), jnp.int32)
    assert param_count(config) == _abstract_param_size(T5(config), tokens, tokens)
    if size == "small":
        assert param_count(config) == pytest.approx(77e6, rel=0.01)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_param_count_decoder(size):
    config = decoder_config(size)
    tokens = jnp.ones((1, 4), jnp.int32)
    assert param_count(config) == _abstract_param_size(DecoderOnly(config), tokens)


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize("setup", ["t5_setup", "lm_setup"])
def test_params_are_logically_partitioned(setup, request):
    _, boxed, _, _ = request.getfixturevalue(setup)
    leaves = jax.tree_util.tree_leaves(
        boxed["params"], is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)
    )
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
    for leaf in leaves:
        assert len(leaf.names) == leaf.value.ndim, leaf.names
        assert leaf.value.dtype == jnp.float32
    specs = nn.get_partition_spec(boxed)["params"]
    assert specs["token_embedder"]["embedding"] == jax.sharding.PartitionSpec("vocab", "embed")
    decoder = specs["decoder"]
    assert decoder["logits_dense"] == jax.sharding.PartitionSpec("embed", "vocab")
    assert decoder["relpos_bias"]["rel_embedding"] == jax.sharding.PartitionSpec(
        "heads", "relpos_buckets"
    )
    layer = decoder["layers_0"]
    assert layer["self_attention"]["query"] == jax.sharding.PartitionSpec("embed", "heads", "kv")
    assert layer["self_attention"]["out"] == jax.sharding.PartitionSpec("heads", "kv", "embed")
    assert layer["mlp"]["wi_0"] == jax.sharding.PartitionSpec("embed", "mlp")
    assert layer["mlp"]["wo"] == jax.sharding.PartitionSpec("mlp", "embed")
    assert layer["pre_mlp_layer_norm"]["scale"] == jax.sharding.PartitionSpec("embed")


def test_t5_layout_and_shapes(t5_setup, t5_encode):
    _, _, params, forward = t5_setup
    assert set(params) == {"token_embedder", "encoder", "decoder"}
    assert "encoder_decoder_attention" in params["decoder"]["layers_1"]
    batch = dict(
        encoder_input_tokens=T5_ENC,
        decoder_input_tokens=T5_DEC_IN,
        decoder_target_tokens=T5_TARGETS,
    )
    logits = forward(params, batch)
    assert logits.shape == (2, 8, VOCAB) and logits.dtype == jnp.float32
    assert t5_encode(params, T5_ENC).shape == (2, 8, 64)


def test_relative_position_buckets_match_t5():
    # Hand-checked values of T5's bucketing (32 buckets, max distance 128).
    rel = jnp.array([0, -1, -15, -16, -100, -1000, 1, 5, 200])
    bi = relative_position_bucket(rel, True, 32, 128)
    assert bi.tolist() == [0, 1, 9, 10, 15, 15, 17, 21, 31]
    uni = relative_position_bucket(rel, False, 32, 128)
    assert uni.tolist() == [0, 1, 15, 16, 30, 31, 0, 0, 0]


# ----------------------------------------------------------------------------- packing

# Two examples, as seqio's EncDecFeatureConverter would pack / pad them.
_EX = [
    dict(inputs=[3, 4, 5, 1], targets=[6, 7, 1]),
    dict(inputs=[8, 9, 1], targets=[10, 11, 12, 1]),
]


def _pad(x: list[int], n: int) -> list[int]:
    return x + [0] * (n - len(x))


def test_t5_packing_equals_unpacked(t5_setup):
    _, _, params, forward = t5_setup
    n_in, n_tg = 8, 8
    packed = dict(
        encoder_input_tokens=[_pad(_EX[0]["inputs"] + _EX[1]["inputs"], n_in)],
        encoder_segment_ids=[_pad([1] * 4 + [2] * 3, n_in)],
        encoder_positions=[_pad([0, 1, 2, 3, 0, 1, 2], n_in)],
        decoder_target_tokens=[_pad(_EX[0]["targets"] + _EX[1]["targets"], n_tg)],
        decoder_input_tokens=[_pad([0, 6, 7, 0, 10, 11, 12], n_tg)],
        decoder_segment_ids=[_pad([1] * 3 + [2] * 4, n_tg)],
        decoder_positions=[_pad([0, 1, 2, 0, 1, 2, 3], n_tg)],
    )
    packed = {k: jnp.array(v) for k, v in packed.items()}
    unpacked = dict(
        encoder_input_tokens=jnp.array([_pad(e["inputs"], n_in) for e in _EX]),
        decoder_target_tokens=jnp.array([_pad(e["targets"], n_tg) for e in _EX]),
        decoder_input_tokens=jnp.array([_pad([0] + e["targets"][:-1], n_tg) for e in _EX]),
    )
    lp_packed = _token_logprobs(forward(params, packed), packed["decoder_target_tokens"])[0]
    lp_unpacked = _token_logprobs(forward(params, unpacked), unpacked["decoder_target_tokens"])
    seg = np.asarray(packed["decoder_segment_ids"][0])
    packed_sums = [lp_packed[seg == s].sum() for s in (1, 2)]
    unpacked_sums = [lp_unpacked[i, : len(e["targets"])].sum() for i, e in enumerate(_EX)]
    np.testing.assert_allclose(packed_sums, unpacked_sums, rtol=1e-5, atol=1e-5)


# seqio PrefixLMFeatureConverter's own packed example (inputs then targets, marker one past).
_LM_PACKED = dict(
    decoder_target_tokens=[7, 8, 5, 1, 3, 9, 1, 8, 4, 9, 3, 1, 4, 1, 0],
    decoder_input_tokens=[0, 7, 8, 5, 1, 3, 9, 0, 8, 4, 9, 3, 1, 4, 0],
    decoder_loss_weights=[0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0],
    decoder_positions=[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0],
    decoder_segment_ids=[1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0],
    decoder_causal_attention=[1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0],
)


def test_decoder_only_packing_equals_unpacked(lm_setup):
    _, _, params, forward = lm_setup
    p = {k: np.array([v]) for k, v in _LM_PACKED.items()}
    rows = [slice(0, 7), slice(7, 14)]
    u = {k: np.array([_pad(list(v[0][r]), 15) for r in rows]) for k, v in p.items()}
    model_keys = (
        "decoder_target_tokens",
        "decoder_input_tokens",
        "decoder_segment_ids",
        "decoder_positions",
        "decoder_causal_attention",
    )
    packed_logits = forward(params, {k: jnp.asarray(p[k]) for k in model_keys})
    unpacked_keys = ("decoder_target_tokens", "decoder_input_tokens", "decoder_causal_attention")
    unpacked_logits = forward(params, {k: jnp.asarray(u[k]) for k in unpacked_keys})
    w_p, w_u = p["decoder_loss_weights"], u["decoder_loss_weights"]
    lp_p = _token_logprobs(packed_logits, p["decoder_target_tokens"]) * w_p
    lp_u = _token_logprobs(unpacked_logits, u["decoder_target_tokens"]) * w_u
    seg = p["decoder_segment_ids"][0]
    packed_sums = [lp_p[0, seg == s].sum() for s in (1, 2)]
    np.testing.assert_allclose(packed_sums, lp_u.sum(-1), rtol=1e-5, atol=1e-5)
    # The same through the library helper.
    np.testing.assert_allclose(
        per_example_logprob(unpacked_logits, u["decoder_target_tokens"], w_u),
        lp_u.sum(-1),
        rtol=1e-6,
    )


# ----------------------------------------------------------------------------- prefix-LM


def test_prefix_lm_and_causal_visibility(lm_setup):
    _, _, params, forward = lm_setup
    tokens = LM_TOKENS
    changed = tokens.at[0, 6].set(11)  # a target position, after the prefix
    changed_prefix = tokens.at[0, 3].set(11)  # inside the prefix
    marker = jnp.broadcast_to(jnp.array([1, 1, 1, 1, 1, 0, 0, 0]), tokens.shape)

    def run(t, prefix=None):
        batch = dict(decoder_input_tokens=t)
        if prefix is not None:
            batch["decoder_causal_attention"] = prefix
        return np.asarray(forward(params, batch))[0]

    base, after = run(tokens, marker), run(changed, marker)
    np.testing.assert_array_equal(base[:6], after[:6])  # prefix and earlier targets unaffected
    assert not np.allclose(base[6:], after[6:])
    # Prefix positions see later prefix tokens (bidirectional) ...
    assert not np.allclose(base[:3], run(changed_prefix, marker)[:3])
    # ... but without the marker the model is purely causal.
    causal, causal_changed = run(tokens), run(changed_prefix)
    np.testing.assert_array_equal(causal[:3], causal_changed[:3])
    assert not np.allclose(causal[3:], causal_changed[3:])


# ----------------------------------------------------------------------------- KV cache


def test_t5_cached_decoding_equals_full_forward(t5_setup, t5_encode):
    model, _, params, forward = t5_setup
    batch = dict(
        encoder_input_tokens=T5_ENC,
        decoder_input_tokens=T5_DEC_IN,
        decoder_target_tokens=T5_TARGETS,
    )
    full = forward(params, batch)
    cache = init_decode_cache(model, batch_size=2, max_decode_length=8, encoder_length=8)
    assert int(cache["decoder"]["cache_index"]) == 0
    step = _jit_decode_step(model, max_decode_length=8, method=T5.decode)
    encoded = t5_encode(params, T5_ENC)
    pieces = []
    for i in range(8):
        logits, cache = step(params, cache, encoded, T5_ENC, T5_DEC_IN[:, i : i + 1])
        pieces.append(logits)
    assert int(cache["decoder"]["cache_index"]) == 8
    # Padded target positions are masked in the full pass only; compare the real ones.
    valid = np.asarray(T5_TARGETS > 0)
    np.testing.assert_allclose(
        jnp.concatenate(pieces, axis=1)[valid], full[valid], atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="max_decode_length"):
        model.apply(
            {"params": params, "cache": cache},
            encoded,
            T5_ENC,
            T5_DEC_IN[:, :1],
            decode=True,
            max_decode_length=7,
            method=T5.decode,
            mutable=["cache"],
        )


@pytest.mark.parametrize("prefix_len", [0, 5])
def test_decoder_only_cached_decoding_equals_full_forward(lm_setup, lm_step, prefix_len):
    model, _, params, forward = lm_setup
    tokens = LM_TOKENS
    marker = jnp.broadcast_to((jnp.arange(8) < prefix_len).astype(jnp.int32), tokens.shape)
    batch = dict(decoder_input_tokens=tokens)
    if prefix_len:
        batch["decoder_causal_attention"] = marker
    full = forward(params, batch)
    cache = init_decode_cache(model, batch_size=2, max_decode_length=8)
    pieces = []
    if prefix_len:  # prefill the whole prompt at once: it attends bidirectionally
        prefill = _jit_decode_step(model)
        logits, cache = prefill(
            params, cache, tokens[:, :prefix_len], None, None, None, marker[:, :prefix_len]
        )
        pieces.append(logits)
    for i in range(prefix_len, 8):
        logits, cache = lm_step(params, cache, tokens[:, i : i + 1])
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- dtypes, dropout


def test_bfloat16_activations_keep_float32_params():
    model = build_model(t5_config("tiny", vocab_size=VOCAB, dtype="bfloat16"))
    enc = jnp.array([[5, 6, 7, 1]])
    dec = jnp.array([[0, 8, 9]])
    boxed, params = _host_params(model, enc, dec)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(nn.unbox(boxed)))
    encoded = jax.eval_shape(lambda p: model.apply({"params": p}, enc, method=T5.encode), params)
    assert encoded.dtype == jnp.bfloat16
    logits = jax.jit(lambda p: model.apply({"params": p}, enc, dec))(params)
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))


def test_real_init_scales():
    """The one real `init`: T5X scales (query init folds in head_dim ** -0.5), float32 params."""
    config = decoder_config("tiny", vocab_size=VOCAB, d_model=128, d_ff=256, num_layers=1)
    model = DecoderOnly(config)
    boxed = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 4), jnp.int32))
    params = nn.unbox(boxed)["params"]
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))
    attn = params["decoder"]["layers_0"]["self_attention"]
    d, hd = config.d_model, config.head_dim
    assert float(jnp.std(attn["query"])) == pytest.approx((d * hd) ** -0.5, rel=0.1)
    assert float(jnp.std(attn["key"])) == pytest.approx(d**-0.5, rel=0.1)
    assert float(jnp.std(attn["out"])) == pytest.approx((config.num_heads * hd) ** -0.5, rel=0.1)
    assert float(jnp.std(params["token_embedder"]["embedding"])) == pytest.approx(1.0, rel=0.1)
    np.testing.assert_array_equal(params["decoder"]["decoder_norm"]["scale"], 1.0)


def test_dropout_only_when_enabled_and_remat_is_transparent(lm_setup):
    _, _, params, _ = lm_setup
    base = decoder_config("tiny", vocab_size=VOCAB, dropout_rate=0.3)
    model, remat = DecoderOnly(base), DecoderOnly(dataclasses.replace(base, remat=True))
    tokens = LM_TOKENS

    @jax.jit
    def run(params, rng):
        variables, rngs = {"params": params}, {"dropout": rng}
        return (
            model.apply(variables, tokens),
            model.apply(variables, tokens, enable_dropout=True, rngs=rngs),
            remat.apply(variables, tokens, enable_dropout=True, rngs=rngs),
        )

    evaluated, train, train_remat = run(params, jax.random.key(3))
    _, _, _, forward = lm_setup
    np.testing.assert_allclose(evaluated, forward(params, dict(decoder_input_tokens=tokens)))
    assert not np.allclose(evaluated, train)
    np.testing.assert_allclose(train, train_remat, atol=1e-6)


# ----------------------------------------------------------------------------- sharding


def test_t5_forward_under_mesh_with_logical_rules(t5_setup):
    """Rules as in T5X's 1D setting (flan_jax.partitioning has the project's own table)."""
    model, boxed, host_params, forward = t5_setup
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    rules = (
        ("batch", "data"),
        ("vocab", "model"),
        ("mlp", "model"),
        ("heads", "model"),
        ("joined_kv", "model"),
        ("kv", None),
        ("embed", None),
        ("length", None),
        ("relpos_buckets", None),
    )
    specs = nn.get_partition_spec(boxed)["params"]
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    params = jax.device_put(host_params, shardings)
    assert params["decoder"]["logits_dense"].sharding.spec == jax.sharding.PartitionSpec(
        None, "model"
    )
    batch = dict(
        encoder_input_tokens=T5_ENC,
        decoder_input_tokens=T5_DEC_IN,
        decoder_target_tokens=T5_TARGETS,
    )

    @jax.jit
    def run(params):
        # Activation constraints resolve through the same rules under the mesh.
        with nn.logical_axis_rules(rules):
            return model.apply({"params": params}, **batch)

    with jax.set_mesh(mesh):
        logits = run(params)
    reference = forward(host_params, batch)
    np.testing.assert_allclose(logits, reference, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- losses


def test_cross_entropy_z_loss_and_label_smoothing():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 11)) * 3, jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, size=(2, 5)))
    weights = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
    loss, z, n = cross_entropy_with_z_loss(logits, targets, weights, z_loss=1e-4)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    np.testing.assert_allclose(z, np.sum(1e-4 * log_z**2 * weights), rtol=1e-5)
    np.testing.assert_allclose(loss, np.sum(ce * weights) + z, rtol=1e-5)
    assert float(n) == 8.0

    eps = 0.1
    loss_ls, _, _ = cross_entropy_with_z_loss(logits, targets, weights, 0.0, label_smoothing=eps)
    soft = optax.smooth_labels(jax.nn.one_hot(targets, 11), 0.0)
    soft = soft * (1 - eps) + (1 - soft) * eps / 10
    entropy = -np.sum(soft * np.log(soft), axis=-1)
    expected = optax.softmax_cross_entropy(logits, soft) - entropy
    np.testing.assert_allclose(loss_ls, np.sum(expected * weights), rtol=1e-5)


@pytest.mark.parametrize("z_loss,eps", [(1e-4, 0.0), (0.0, 0.1), (1e-2, 0.2)])
def test_cross_entropy_gradients_match_optax(z_loss, eps):
    # The gradients the train step takes against those of optax's CE with smoothed one-hot
    # targets (plus the z-loss), for both outputs that depend on the logits.
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(3, 7, 13)) * 3, jnp.float32)
    targets = jnp.asarray(rng.integers(0, 13, size=(3, 7)))
    weights = jnp.asarray(rng.integers(0, 2, size=(3, 7)), jnp.float32)
    low = eps / 12
    soft = jax.nn.one_hot(targets, 13) * (1 - eps - low) + low
    entropy = -jnp.sum(jnp.where(soft > 0, soft * jnp.log(jnp.maximum(soft, 1e-30)), 0), -1)

    def reference(x):
        z = z_loss * jnp.square(jax.nn.logsumexp(x, axis=-1))
        ce = optax.softmax_cross_entropy(x, soft) - entropy
        return jnp.sum((ce + z) * weights), jnp.sum(z * weights)

    def ours(x):
        loss, z, _ = cross_entropy_with_z_loss(x, targets, weights, z_loss, eps)
        return loss, z

    for pick in (0, 1):  # d loss_sum / d logits, d z_loss_sum / d logits
        got = jax.grad(lambda x, k=pick: ours(x)[k] * 1.7)(logits)
        want = jax.grad(lambda x, k=pick: reference(x)[k] * 1.7)(logits)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-5)
    # bf16 logits get a bf16 gradient of the f32 computation.
    low_precision = jax.grad(lambda x: ours(x)[0])(logits.astype(jnp.bfloat16))
    assert low_precision.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        low_precision.astype(np.float32), jax.grad(lambda x: ours(x)[0])(logits), atol=1e-2
    )


def test_accuracy_and_lengths():
    logits = jnp.array([[[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    targets = jnp.array([[1, 1, 2]])
    weights = jnp.array([[1.0, 1.0, 0.0]])
    correct, total = token_accuracy(logits, targets, weights)
    assert (float(correct), float(total)) == (1.0, 2.0)
    np.testing.assert_array_equal(per_example_length(weights), [2.0])
