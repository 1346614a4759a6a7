"""Tests for flan_jax.conversion (T5 converter): numerical parity with transformers' T5, round trips, T5X layout.

The reference is a small randomly initialized `transformers.T5ForConditionalGeneration` (fp32,
gated-GELU, untied, d_model != heads * d_kv, 2 encoder / 3 decoder layers). Every test that needs
torch shares one module-scoped model and its import; forward passes run eagerly (no compile).
"""

from __future__ import annotations

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import conversion, models
from flan_jax.conversion import base
from flan_jax.conversion import t5 as t5_conversion
from flan_jax.models import T5, T5Config
from flan_jax.partitioning import Layout, MeshConfig

HF_CONFIG = dict(
    model_type="t5",
    feed_forward_proj="gated-gelu",
    d_model=48,
    num_heads=4,
    d_kv=16,
    d_ff=96,
    num_layers=2,
    num_decoder_layers=3,
    vocab_size=128,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
)
TOL = 1e-4


def _hf_model(tied: bool = False, seed: int = 0):
    """A random HF T5; untied (T5 1.1) gets its own LM head, tied keeps T5 v1.0's scaling."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in HF_CONFIG.items() if k != "model_type"}
    kwargs = kwargs if tied else dict(kwargs, tie_word_embeddings=False)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**kwargs)).eval()
    if not tied:
        d, v = HF_CONFIG["d_model"], HF_CONFIG["vocab_size"]
        model.lm_head.weight = torch.nn.Parameter(torch.randn(v, d) * d**-0.5)
    return model


def _batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, 128, (2, 20)).astype(np.int32)
    enc[1, 14:] = 0  # a padded row
    dec = rng.integers(2, 128, (2, 7)).astype(np.int32)
    dec[:, 0] = 0  # decoder start token
    return enc, dec


def _hf_forward(model, enc: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(enc, dtype=torch.long),
            attention_mask=torch.tensor(enc > 0, dtype=torch.long),
            decoder_input_ids=torch.tensor(dec, dtype=torch.long),
        )
    return out.encoder_last_hidden_state.numpy(), out.logits.numpy()


@functools.cache
def _forward(config: T5Config):
    """jit(params, enc, dec) -> (encoder output, logits); one compile per config and shape."""
    model = T5(config)

    def forward(params, enc, dec):
        encoded = model.apply({"params": params}, enc, method=T5.encode)
        logits = model.apply({"params": params}, encoded, enc, dec, method=T5.decode)
        return encoded, logits

    return jax.jit(forward)


def _ours(config: T5Config, params, enc: np.ndarray, dec: np.ndarray):
    encoded, logits = _forward(config)(params, jnp.asarray(enc), jnp.asarray(dec))
    return np.asarray(encoded), np.asarray(logits)


def _assert_same_tree(a, b) -> None:
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """(torch model, its save_pretrained directory, our import of it)."""
    model = _hf_model()
    path = tmp_path_factory.mktemp("hf") / "t5"
    model.save_pretrained(path, safe_serialization=True)
    return model, path, conversion.import_hf(path)


# ----------------------------------------------------------------------------- Hugging Face


def test_import_config_and_vocabulary(hf):
    _, _, imported = hf
    assert imported.config == T5Config(
        vocab_size=128,
        d_model=48,
        num_heads=4,
        head_dim=16,
        d_ff=96,
        num_encoder_layers=2,
        num_decoder_layers=3,
    )
    assert imported.vocabulary is None  # 128 rows: no public vocabulary
    assert conversion.vocabulary_for(32128) == "t5" and conversion.vocabulary_for(250112) == "mt5"


def test_import_parity_with_transformers(hf):
    model, _, imported = hf
    enc, dec = _batch()
    ref_encoded, ref_logits = _hf_forward(model, enc, dec)
    encoded, logits = _ours(imported.config, imported.params, enc, dec)
    valid = enc > 0  # HF leaves padded encoder positions unmasked as queries
    np.testing.assert_allclose(encoded[valid], ref_encoded[valid], atol=TOL, rtol=0)
    np.testing.assert_allclose(logits, ref_logits, atol=TOL, rtol=0)


def test_greedy_decoding_matches_transformers(hf):
    """Greedy tokens from our full forward (the compiled parity shapes) vs `generate`."""
    import torch

    model, _, imported = hf
    enc, dec = _batch(seed=1)
    steps = dec.shape[1] - 1
    tokens = np.zeros_like(dec)  # [0 (start), generated...]; later zeros are causally unseen
    for i in range(steps):
        _, logits = _ours(imported.config, imported.params, enc, tokens)
        tokens[:, i + 1] = logits[:, i].argmax(-1)
    ours = tokens[:, 1:]
    ours[np.cumsum(np.cumsum(ours == 1, axis=1), axis=1) > 1] = 0  # pad after EOS like HF
    with torch.no_grad():
        ref = model.generate(
            input_ids=torch.tensor(enc, dtype=torch.long),
            attention_mask=torch.tensor(enc > 0, dtype=torch.long),
            max_new_tokens=steps,
            do_sample=False,
            num_beams=1,
            decoder_start_token_id=0,
            # transformers 5.24 sizes its KV cache by num_layers, which breaks 2 enc / 3 dec.
            use_cache=False,
        ).numpy()[:, 1:]  # drop the start token
    np.testing.assert_array_equal(ours, np.pad(ref, ((0, 0), (0, steps - ref.shape[1]))))


def test_tied_scaled_lm_head_imports_with_the_same_logits(tmp_path):
    model = _hf_model(tied=True, seed=3)
    model.save_pretrained(tmp_path / "tied", safe_serialization=True)
    imported = conversion.import_hf(tmp_path / "tied")
    enc, dec = _batch()
    _, ref_logits = _hf_forward(model, enc, dec)
    _, logits = _ours(imported.config, imported.params, enc, dec)
    np.testing.assert_allclose(logits, ref_logits, atol=TOL, rtol=0)


def _random_params(config: T5Config, seed: int = 0):
    """Host-drawn params for `T5(config)` (no jitted init: slow to compile on CPU)."""
    rng = np.random.default_rng(seed)
    abstract = nn.meta.unbox(models.abstract_params(config))

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "scale" in name:
            return (1 + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
        fan_in = leaf.shape[0] if leaf.ndim > 1 and "out" not in name else leaf.shape[-1]
        std = 1.0 if "embedding" in name else fan_in**-0.5
        return (std * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def test_export_loads_in_transformers_with_the_same_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = T5Config(
        vocab_size=128, d_model=48, num_heads=4, head_dim=16, d_ff=96, num_encoder_layers=2,
        num_decoder_layers=3,
    )  # fmt: skip
    params = _random_params(config, seed=5)
    ckpt = conversion.save_imported(
        tmp_path / "ours", conversion.ImportedModel(params, config, None, {"format": "test"})
    )
    out = conversion.export_hf(ckpt, tmp_path / "hf")
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    model, info = transformers.T5ForConditionalGeneration.from_pretrained(
        out, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()  # untied
    enc, dec = _batch(seed=2)
    ref_encoded, ref_logits = _hf_forward(model.eval(), enc, dec)
    encoded, logits = _ours(config, params, enc, dec)
    valid = enc > 0
    np.testing.assert_allclose(encoded[valid], ref_encoded[valid], atol=TOL, rtol=0)
    np.testing.assert_allclose(logits, ref_logits, atol=TOL, rtol=0)


def test_round_trip_import_export_import(hf, tmp_path):
    _, _, imported = hf
    ckpt = conversion.save_imported(tmp_path / "ours", imported)
    meta = json.loads((ckpt / conversion.MODEL_CONFIG_FILE).read_text())
    assert meta["family"] == "t5" and meta["config"]["d_model"] == 48
    config, vocabulary = conversion.read_model_config(ckpt)
    assert config == imported.config and vocabulary is None
    exported = conversion.export_hf(ckpt, tmp_path / "hf", max_shard_bytes=64 * 1024)
    assert (exported / "model.safetensors.index.json").exists()  # sharded on the way out
    again = conversion.import_hf(exported)
    assert again.config == imported.config
    _assert_same_tree(again.params, imported.params)
    # model_config.json files of the first format (no family name) still read as T5.
    legacy = {"format": "flan_jax.t5_params/v1", "model": "t5", "config": meta["config"]}
    (ckpt / conversion.MODEL_CONFIG_FILE).write_text(json.dumps(legacy))
    assert conversion.read_model_config(ckpt)[0] == imported.config
    # Without model_config.json the config is inferred from the checkpoint's shapes.
    (ckpt / conversion.MODEL_CONFIG_FILE).unlink()
    params, inferred, _ = conversion.load_params(ckpt)
    assert inferred == imported.config
    _assert_same_tree(params, imported.params)


def test_export_from_a_training_step_dir(hf, tmp_path):
    from flan_jax.checkpoints import Checkpointer

    _, _, imported = hf
    state = {"step": np.int32(3), "params": imported.params, "opt_state": {"count": np.int32(3)}}
    with Checkpointer(tmp_path / "run", async_save=False) as ckpt:
        ckpt.save(3, state, data={"batches_consumed": 3})
    exported = conversion.export_hf(tmp_path / "run" / "3", tmp_path / "hf")  # config from shapes
    _assert_same_tree(conversion.import_hf(exported).params, imported.params)


def test_import_onto_a_mesh_from_sharded_safetensors(hf, tmp_path):
    model, _, imported = hf
    model.save_pretrained(tmp_path / "sharded", safe_serialization=True, max_shard_size="40KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    layout = Layout.build(MeshConfig(data=2, model=4))
    placed = conversion.import_hf(tmp_path / "sharded", layout=layout)
    _assert_same_tree(placed.params, imported.params)
    query = placed.params["encoder"]["layers_0"]["attention"]["query"]
    assert query.sharding.mesh.shape == layout.mesh.shape
    assert tuple(query.sharding.spec) == (None, "model", None)  # (embed, heads, kv)
    logits = placed.params["decoder"]["logits_dense"]
    assert tuple(logits.sharding.spec) == (None, "model")  # (embed, vocab)


def test_convert_command_both_ways(hf, tmp_path, capsys):
    from flan_jax import cli

    _, path, imported = hf
    assert cli.main(["convert", "--from", "hf", str(path), str(tmp_path / "ours")]) == 0
    out = capsys.readouterr().out
    assert "INITIAL_CHECKPOINT_PATH" in out and "T5 d_model=48" in out
    export = ["convert", "--to", "hf", str(tmp_path / "ours"), str(tmp_path / "hf")]
    assert cli.main(export) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["d_kv"] == 16
    assert "T5ForConditionalGeneration" in capsys.readouterr().out
    assert cli.main(export) == 2  # refuses to overwrite, in one line
    err = capsys.readouterr().err
    assert "not empty" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- T5X layout


def _write_t5x(directory, params, config: T5Config) -> None:
    """A T5X checkpoint as T5X writes it: zarr arrays named target.<path> plus a msgpack
    `checkpoint` whose leaves are relative TensorStore specs (norm scales inline, as T5X does
    for unpartitioned arrays)."""
    import tensorstore as ts
    from flax import serialization

    target: dict = {}
    for entry in t5_conversion.param_map(config):
        x = np.asarray(base.get(params, entry.ours))
        if entry.kind == "qkv":
            x = x.reshape(x.shape[0], -1)
        elif entry.kind == "out":
            x = x.reshape(-1, x.shape[-1])
        if entry.kind == "norm":
            leaf = x
        else:
            name = "target." + entry.t5x.replace("/", ".")
            metadata = {
                "shape": list(x.shape),
                "chunks": list(x.shape),
                "compressor": {"id": "gzip"},
            }
            spec = {
                "driver": "zarr",
                "dtype": "float32",
                "kvstore": {"driver": "file", "path": name},
                "metadata": metadata,
            }
            absolute = dict(spec, kvstore={"driver": "file", "path": str(directory / name)})
            ts.open(absolute, create=True, open=True).result().write(x).result()
            leaf = spec
        base.put(target, tuple(entry.t5x.split("/")), leaf)
    contents = {
        "version": 3,
        "optimizer": {"target": target, "state": {"step": np.int32(1000), "param_states": {}}},
    }
    (directory / "checkpoint").write_bytes(serialization.msgpack_serialize(contents))


def test_t5x_checkpoint_imports_identically(tmp_path):
    config = T5Config(
        vocab_size=128, d_model=48, num_heads=4, head_dim=16, d_ff=96, num_encoder_layers=2,
        num_decoder_layers=3,
    )  # fmt: skip
    params = _random_params(config, seed=7)
    directory = tmp_path / "checkpoint_1000"
    directory.mkdir()
    _write_t5x(directory, params, config)
    assert (directory / "target.encoder.layers_0.attention.query.kernel" / ".zarray").exists()
    imported = conversion.import_t5x(directory)
    assert imported.config == config
    _assert_same_tree(imported.params, params)


def test_t5x_gcs_spec_is_built_from_the_checkpoint_path():
    ts = pytest.importorskip("tensorstore")
    written = {
        "driver": "zarr",
        "dtype": "float32",
        "kvstore": {"driver": "gcs", "bucket": "t5x-dummy-bucket"},
        "path": "target.token_embedder.embedding",
        "metadata": {"shape": [4, 2]},
    }
    spec = base.absolute_ts_spec(written, "gs://my-bucket/t5x/flan_t5_small/checkpoint_1")
    assert spec["kvstore"] == {
        "driver": "gcs",
        "bucket": "my-bucket",
        "path": "t5x/flan_t5_small/checkpoint_1/target.token_embedder.embedding",
    }
    ts.Spec(spec)  # a valid TensorStore spec (opening it would need the network)


# ----------------------------------------------------------------------------- bad input


def test_missing_config_json(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(conversion.ConversionError, match="has no config.json"):
        conversion.import_hf(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        conversion.import_hf(tmp_path / "nowhere")


def test_unreadable_safetensors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    (tmp_path / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(conversion.ConversionError, match="not a readable safetensors file"):
        conversion.import_hf(tmp_path)


@pytest.mark.parametrize(
    "tensors, match",
    [
        ({"shared.weight": (128, 48), "encoder.block.0.layer.0.SelfAttention.lora.weight": (2,)},
         "does not use .*lora"),
        ({"shared.weight": (128, 48)}, "lacks tensor 'encoder.block.0.*relative_attention_bias"),
    ],
)  # fmt: skip
def test_tensors_that_do_not_fit_a_t5(tmp_path, tensors, match):
    from safetensors.numpy import save_file

    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    arrays = {k: np.zeros(shape, np.float32) for k, shape in tensors.items()}
    save_file(arrays, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(conversion.ConversionError, match=match):
        conversion.import_hf(tmp_path)


def test_pickle_only_directory_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even read")
    with pytest.raises(conversion.ConversionError) as e:
        conversion.import_hf(tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert "pytorch_model.bin" in message and "never unpickles" in message
    assert "arbitrary code" in message and "safe_serialization=True" in message


def test_shape_mismatch_with_the_config(hf, tmp_path):
    _, path, _ = hf
    broken = tmp_path / "broken"
    broken.mkdir()
    os.symlink(path / "model.safetensors", broken / "model.safetensors")
    config = json.loads((path / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(dict(config, d_ff=64)))
    with pytest.raises(conversion.ConversionError) as e:
        conversion.import_hf(broken)
    message = str(e.value)
    assert "\n" not in message
    assert "DenseReluDense.wi_0.weight' has shape (96, 48)" in message
    assert "expects (64, 48)" in message and "d_ff=64" in message


@pytest.mark.parametrize(
    "change, match",
    [
        ({"feed_forward_proj": "relu"}, "gated-GELU MLP only"),
        ({"model_type": "bart"}, "model_type='bart' has no flan_jax converter.*'mt5'"),
        ({"model_type": None}, "model_type=None has no flan_jax converter"),
    ],
)
def test_unsupported_configs(tmp_path, change, match):
    (tmp_path / "config.json").write_text(json.dumps(dict(HF_CONFIG, **change)))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(conversion.ConversionError, match=match):
        conversion.import_hf(tmp_path)


def test_model_config_records_name_their_family():
    lm = models.decoder_config("tiny", vocab_size=128)
    record = {"family": "decoder", "config": models.describe(lm)}
    assert conversion.config_from_json(record) == lm
    bare = {"vocab_size": 128, "d_model": 48, "num_heads": 4, "head_dim": 16, "d_ff": 96}
    assert conversion.config_from_json(bare) == T5Config(**bare)  # no family: T5 (legacy)
    with pytest.raises(conversion.ConversionError, match="no field 'num_layers'"):
        conversion.config_from_json({"num_layers": 2})
    with pytest.raises(conversion.ConversionError, match="'decoder' has no checkpoint converter"):
        conversion.converter_for(lm)
