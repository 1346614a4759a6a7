"""The Hugging Face-style decoder families (llama, qwen2, gemma) against `transformers`.

For each family a small random `transformers` model with awkward shapes (grouped-query attention
with several K/V groups, head_dim != d_model / heads, 3 layers, tied and untied heads, Llama 3
rope scaling in effect) is saved as safetensors and imported once per module. Checked: logits
within 1e-4 of transformers in f32 (also on a packed batch), greedy and beam-search tokens
through our decoding path (and sampling), summed option log-likelihoods through our scorer,
export -> transformers reload, import -> export -> import identity, tokenizer files and id
conventions, training on the demo collection over a data x model mesh, preflight, and one-line
CLI errors. The command-line recipe (convert, train, eval, export) is tests/test_llm_cli.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import conversion, models, partitioning
from flan_jax.models import GemmaConfig, LlamaConfig, Qwen2Config

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

TOL = 1e-4
VOCAB = 98  # even: the vocab axis splits over "model" = 2
BOS, EOS = 3, 1  # EOS 1: the evaluator's default stop token

HF_MODELS = {
    # Untied, 6 heads over 2 K/V groups, head_dim 10 (d_model 48), Llama 3 scaling active at
    # these short lengths (original_max_position_embeddings 16).
    "llama": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            num_attention_heads=6,
            num_key_value_heads=2,
            head_dim=10,
            tie_word_embeddings=False,
            rope_theta=5000.0,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
    ),
    # Tied, biases on q/k/v, 6 heads over 3 K/V groups, head_dim 8.
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_attention_heads=6, num_key_value_heads=3, tie_word_embeddings=True),
    ),
    # Tied (Gemma's default), 4 heads over 2 K/V groups, head_dim 20 (> d_model / heads).
    "gemma": (
        "GemmaConfig",
        "GemmaForCausalLM",
        dict(num_attention_heads=4, num_key_value_heads=2, head_dim=20),
    ),
}
FAMILIES = tuple(HF_MODELS)


def _hf_model(name: str, seed: int = 0, **overrides):
    config_cls, model_cls, shape = HF_MODELS[name]
    kwargs = dict(
        vocab_size=VOCAB,
        hidden_size=48,
        intermediate_size=72,
        num_hidden_layers=3,
        max_position_embeddings=128,
        bos_token_id=BOS,
        eos_token_id=EOS,
        **shape,
    )
    torch.manual_seed(seed)
    config = getattr(transformers, config_cls)(**{**kwargs, **overrides})
    model = getattr(transformers, model_cls)(config).eval()
    with torch.no_grad():  # norms and biases away from their init values, so they matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """name -> (torch model, its save_pretrained directory, our import of it)."""
    out = {}
    for name in FAMILIES:
        model = _hf_model(name)
        path = tmp_path_factory.mktemp("hf") / name
        model.save_pretrained(path, safe_serialization=True)
        out[name] = (model, path, conversion.import_hf(path))
    return out


def _hf_logits(model, tokens: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    with torch.no_grad():
        kwargs = {} if mask is None else {"attention_mask": torch.tensor(mask, dtype=torch.long)}
        return model(torch.tensor(tokens, dtype=torch.long), **kwargs).logits.numpy()


def _ours(config, params, **batch) -> np.ndarray:
    model = models.build_model(config)
    return np.asarray(
        model.apply({"params": params}, **{k: jnp.asarray(v) for k, v in batch.items()})
    )


def _tokens(seed: int, shape: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).integers(4, VOCAB, shape).astype(np.int32)


# ----------------------------------------------------------------------------- configs


def test_imported_configs(hf):
    llama, qwen2, gemma = (hf[n][2].config for n in FAMILIES)
    assert type(llama) is LlamaConfig and type(qwen2) is Qwen2Config and type(gemma) is GemmaConfig
    assert (llama.num_heads, llama.num_kv_heads, llama.head_dim) == (6, 2, 10)
    assert llama.rope_scaling == "llama3" and llama.rope_original_max_positions == 16
    assert not llama.tie_word_embeddings and qwen2.tie_word_embeddings and gemma.tie_word_embeddings
    assert (gemma.head_dim, gemma.bos_token_id, gemma.eos_token_id) == (20, BOS, EOS)
    for name in FAMILIES:
        config = hf[name][2].config
        n = sum(x.size for x in jax.tree.leaves(hf[name][2].params))
        # torch lists a tied table once, as our tree holds it once.
        assert models.param_count(config) == n == sum(p.numel() for p in hf[name][0].parameters())
        record = models.describe(config)
        assert record["family"] == name
        assert (
            models.family_named(name).config_from_fields(json.loads(json.dumps(record))) == config
        )


def test_presets_flops_and_validation():
    # Published parameter counts (SmolLM2-135M: 134,515,008; Qwen2.5-0.5B: 494,032,768).
    assert models.param_count(models.preset("llama", "smollm2-135m")) == 134_515_008
    assert models.param_count(models.preset("qwen2", "2.5-0.5b")) == 494_032_768
    assert models.param_count(models.preset("gemma", "2b")) == 2_506_172_416
    config = models.preset("llama", "tiny")
    d, h, g, k, f, v = 64, 4, 2, 24, 96, 512
    s = 10
    block = 2 * s * (2 * d * h * k + 2 * d * g * k + 3 * d * f) + 4 * s * s * h * k
    expected = 3 * (3 * block + 2 * 4 * d * v)  # logits at the 4 target positions only
    assert models.train_flops_per_example(config, {"inputs": 6, "targets": 4}) == expected
    assert models.family_of(config).report_name(config) == "Llama tiny"
    with pytest.raises(ValueError, match="num_kv_heads=3: must divide num_heads=4"):
        LlamaConfig(num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="rope_scaling='yarn'"):
        LlamaConfig(rope_scaling="yarn")


# ----------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_match_transformers(hf, name):
    model, _, imported = hf[name]
    tokens = _tokens(0, (2, 13))
    tokens[1, 9:] = 0  # a right-padded row
    ref_in = tokens.copy()
    ref_in[:, 0] = BOS  # seqio's token 0 at position 0 is read as the model's BOS
    ref = _hf_logits(model, ref_in, tokens > 0)
    ours_in = tokens.copy()
    ours_in[:, 0] = 0
    targets = np.where(tokens > 0, 5, 0)  # validity only
    logits = _ours(
        imported.config,
        imported.params,
        decoder_input_tokens=ours_in,
        decoder_target_tokens=targets,
    )
    valid = tokens > 0
    np.testing.assert_allclose(logits[valid], ref[valid], atol=TOL, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_packed_batch_equals_separate_examples(hf, name):
    """Two examples in one row (segment ids, positions restarting at 0) give each example's
    own logits, as transformers computes them alone."""
    model, _, imported = hf[name]
    a, b = _tokens(1, (1, 7))[0], _tokens(2, (1, 5))[0]
    packed = np.zeros((1, 14), np.int32)
    packed[0, 1:7], packed[0, 8:12] = a[1:], b[1:]  # position 0 of each segment: token 0 (BOS)
    segments = np.array([[1] * 7 + [2] * 5 + [0] * 2], np.int32)
    positions = np.array([list(range(7)) + list(range(5)) + [0, 0]], np.int32)
    logits = _ours(
        imported.config,
        imported.params,
        decoder_input_tokens=packed,
        decoder_target_tokens=(segments > 0).astype(np.int32),
        decoder_segment_ids=segments,
        decoder_positions=positions,
    )
    for seq, rows in ((a, slice(0, 7)), (b, slice(7, 12))):
        ref_in = seq.copy()[None]
        ref_in[0, 0] = BOS
        np.testing.assert_allclose(logits[0, rows], _hf_logits(model, ref_in)[0], atol=TOL, rtol=0)


def _layout():
    return partitioning.Layout.build(partitioning.MeshConfig(data=2), jax.devices()[:2])


@pytest.mark.parametrize("name", FAMILIES)
def test_greedy_tokens_match_transformers(hf, name):
    from flan_jax.evaluation import decoding

    model, _, imported = hf[name]
    inputs = [list(_tokens(3, (1, 9))[0]), list(_tokens(4, (1, 6))[0])]
    steps = 6
    module = models.build_model(imported.config)
    layout = _layout()
    params = layout.place(imported.params, models.abstract_params(imported.config))
    lengths = {"inputs": 10, "targets": steps}
    expected = []
    for row in inputs:
        with torch.no_grad():
            out = model.generate(
                torch.tensor([[BOS, *row]]),
                max_new_tokens=steps,
                do_sample=False,
                num_beams=1,
                eos_token_id=EOS,
                pad_token_id=0,
            )[0, len(row) + 1 :].numpy()
        expected.append(np.pad(out, (0, steps - len(out))))
    # The uncached path (one more compile) once, for the family with untied logits.
    for use_cache in (True, False) if name == "llama" else (True,):
        config = decoding.DecodeConfig(method="greedy", use_cache=use_cache, eos_id=EOS)
        with layout.context():
            got = decoding.decode_rows(module, params, inputs, layout, 2, lengths, config)
        np.testing.assert_array_equal(got, np.stack(expected), err_msg=f"use_cache={use_cache}")


def test_beam_search_and_sampling_on_a_rope_family(hf):
    """Beam search gives transformers' tokens (3 beams, no length penalty), the same with and
    without the KV cache (beams reorder the cache); top-1 sampling is greedy; a hot sample is
    not."""
    from flan_jax.evaluation import decoding

    model, _, imported = hf["llama"]
    inputs = [list(_tokens(11, (1, n))[0]) for n in (9, 4, 7)]
    steps = 6
    module = models.build_model(imported.config)
    layout = _layout()
    params = layout.place(imported.params, models.abstract_params(imported.config))
    lengths = {"inputs": 10, "targets": steps}

    def decode(**kwargs):
        config = decoding.DecodeConfig(eos_id=EOS, **kwargs)
        with layout.context():
            return decoding.decode_rows(module, params, inputs, layout, 2, lengths, config)

    beam = decode(method="beam", num_beams=3, alpha=0.0)
    expected = []
    for row in inputs:
        with torch.no_grad():
            out = model.generate(
                torch.tensor([[BOS, *row]]),
                max_new_tokens=steps,
                do_sample=False,
                num_beams=3,
                length_penalty=0.0,
                eos_token_id=EOS,
                pad_token_id=0,
            )[0, len(row) + 1 :].numpy()
        expected.append(np.pad(out, (0, steps - len(out))))
    np.testing.assert_array_equal(beam, np.stack(expected))
    np.testing.assert_array_equal(
        decode(method="beam", num_beams=3, alpha=0.0, use_cache=False), beam
    )

    greedy = decode(method="greedy")
    np.testing.assert_array_equal(decode(method="sample", temperature=1.5, top_k=1), greedy)
    sample = decode(method="sample", temperature=2.0, seed=4)
    assert sample.shape == greedy.shape and not np.array_equal(sample, greedy)


@pytest.mark.parametrize("name", FAMILIES)
def test_option_log_likelihoods_match_transformers(hf, name):
    from flan_jax.evaluation import scoring

    model, _, imported = hf[name]
    prompts = [list(_tokens(5, (1, 8))[0]), list(_tokens(6, (1, 5))[0])]
    options = [list(_tokens(7, (1, 3))[0]), list(_tokens(8, (1, 2))[0]), [EOS]]
    rows = [{"inputs": p, "targets": o} for p in prompts for o in options]
    expected = []
    for row in rows:
        seq = [BOS, *row["inputs"], *row["targets"]]
        logp = torch.log_softmax(torch.tensor(_hf_logits(model, np.array([seq]))[0]), -1)
        n = 1 + len(row["inputs"])
        expected.append(sum(float(logp[n - 1 + j, t]) for j, t in enumerate(row["targets"])))
    module = models.build_model(imported.config)
    layout = _layout()
    params = layout.place(imported.params, models.abstract_params(imported.config))
    lengths = {"inputs": 10, "targets": 4}
    # Per-row scoring (no cache; one more compile) once, for the family with untied logits.
    for shared in (True, False) if name == "llama" else (True,):
        with layout.context():
            got = scoring.score_rows(module, params, rows, layout, 6, lengths, shared=shared)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=f"shared={shared}")


# ----------------------------------------------------------------------------- checkpoints


def _assert_same_tree(a, b) -> None:
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


@pytest.mark.parametrize("name", FAMILIES)
def test_export_reloads_in_transformers_and_round_trips(hf, name, tmp_path):
    model, _, imported = hf[name]
    ckpt = conversion.save_imported(tmp_path / "ours", imported)
    exported = conversion.export_hf(ckpt, tmp_path / "hf")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(exported).eval()
    assert type(reloaded) is type(model)
    tokens = _tokens(9, (2, 11))
    tokens[:, 0] = BOS
    np.testing.assert_allclose(
        _hf_logits(reloaded, tokens), _hf_logits(model, tokens), atol=1e-5, rtol=0
    )
    again = conversion.import_hf(exported)
    assert again.config == imported.config
    _assert_same_tree(again.params, imported.params)


def test_sharded_safetensors_import_onto_a_mesh(hf, tmp_path):
    model, _, imported = hf["llama"]
    model.save_pretrained(tmp_path / "sharded", safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    layout = partitioning.Layout.build(partitioning.MeshConfig(data=4, model=2))
    placed = conversion.import_hf(tmp_path / "sharded", layout=layout)
    _assert_same_tree(placed.params, imported.params)
    query = placed.params["layers_0"]["self_attention"]["query"]
    assert tuple(query.sharding.spec) == (None, "model", None)  # (embed, heads, kv)
    key = placed.params["layers_0"]["self_attention"]["key"]
    assert tuple(key.sharding.spec) == (None, None, None)  # K/V heads replicated
    assert tuple(placed.params["logits_dense"].sharding.spec) == (None, "model")


def _tiny_tokenizer(path, zero_is_text: bool) -> None:
    """A word-level tokenizer.json (+ tokenizer_config.json) over the test vocabulary; with
    `zero_is_text` its id 0 is a word (as Llama 3's "!"), which the vocabulary moves away."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models

    specials = {"<eos>": EOS, "<spare>": 2, "<bos>": BOS}
    if not zero_is_text:
        specials["<pad>"] = 0
    words = {f"w{i}": i for i in range(VOCAB) if i not in specials.values()}
    words.update(specials)
    tokenizer = Tokenizer(tok_models.WordLevel(words, unk_token="<eos>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(list(specials))
    tokenizer.save(str(path / "tokenizer.json"))
    config = {"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": True}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": EOS}))


@pytest.mark.parametrize("zero_is_text", [False, True])
def test_tokenizer_files_travel_and_id_zero_is_kept_for_padding(hf, tmp_path, zero_is_text):
    from flan_jax import cli, hf_vocab

    model, path, imported = hf["qwen2"]
    src = tmp_path / "src"
    shutil.copytree(path, src)
    _tiny_tokenizer(src, zero_is_text)
    assert cli.main(["convert", "--from", "hf", str(src), str(tmp_path / "ours")]) == 0
    config, vocabulary = conversion.read_model_config(tmp_path / "ours")
    assert vocabulary == f"hf:{tmp_path / 'ours'}"
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (tmp_path / "ours" / name).read_bytes() == (src / name).read_bytes()
    vocab = hf_vocab.load(vocabulary)
    params, _, _ = conversion.load_params(tmp_path / "ours")
    swap = vocab.id_swap
    assert (swap is None) == (not zero_is_text)
    if swap is None:
        _assert_same_tree(params, imported.params)
    else:
        # The tokenizer's id 0 ("w0") now has id `swap[1]`: the same text gives the same
        # logits, read through our ids.
        text = "w5 w0 w7 w0 w9"
        hf_ids = [BOS, 5, 0, 7, 0, 9]
        ours_ids = [0, *vocab.encode(text)]
        assert ours_ids[1:] == [vocab.from_hf(i) for i in hf_ids[1:]] and 0 not in ours_ids[1:]
        ref = _hf_logits(model, np.array([hf_ids]))[0]
        got = _ours(config, params, decoder_input_tokens=np.array([ours_ids]))[0]
        order = [vocab.to_hf(i) for i in range(VOCAB)]
        np.testing.assert_allclose(got, ref[:, order], atol=TOL, rtol=0)
    # Export restores the tokenizer's numbering and brings the tokenizer along.
    assert cli.main(["convert", "--to", "hf", str(tmp_path / "ours"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tokenizer.json").exists()
    again = conversion.import_hf(tmp_path / "out")
    _assert_same_tree(conversion.load_params(tmp_path / "ours")[0], again.params)
    exported = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (exported["bos_token_id"], exported["eos_token_id"]) == (BOS, EOS)


# ----------------------------------------------------------------------------- bad inputs


def _one_line_error(capsys, argv) -> str:
    from flan_jax import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "change, match",
    [
        ({"model_type": "gpt_neox"}, "model_type='gpt_neox' has no flan_jax converter"),
        ({"sliding_window": 4096, "model_type": "mistral"}, "sliding_window=4096 is not supported"),
        (
            {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
            "rope scaling type 'yarn' is not supported",
        ),
        ({"attention_bias": True}, "attention_bias=true is not supported for Llama"),
    ],
)
def test_unsupported_configs_are_one_line(hf, tmp_path, capsys, change, match):
    _, path, _ = hf["llama"]
    src = tmp_path / "src"
    shutil.copytree(path, src)
    record = json.loads((src / "config.json").read_text())
    record.pop("rope_parameters", None)
    (src / "config.json").write_text(json.dumps({**record, **change}))
    # The weights are never read: an unreadable weights file changes nothing.
    (src / "model.safetensors").write_bytes(b"not safetensors")
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(src), str(tmp_path / "out")])
    assert match in err
    assert not (tmp_path / "out").exists()


def test_qwen2_sliding_window_and_bin_only_dir_are_one_line(hf, tmp_path, capsys):
    _, path, _ = hf["qwen2"]
    src = tmp_path / "sliding"
    shutil.copytree(path, src)
    record = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**record, "use_sliding_window": True}))
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(src), str(tmp_path / "a")])
    assert "use_sliding_window=true is not supported" in err

    bins = tmp_path / "bins"
    bins.mkdir()
    shutil.copy(path / "config.json", bins / "config.json")
    (bins / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(bins), str(tmp_path / "b")])
    assert "only pickle weights (pytorch_model.bin)" in err and "safe_serialization=True" in err


# ----------------------------------------------------------------------------- training


class _Recorder:
    """A metric writer that keeps the scalars (the trainer's TensorBoard writer's interface)."""

    def __init__(self):
        self.scalars: dict[int, dict[str, float]] = {}

    def write_scalars(self, step, scalars):
        self.scalars[int(step)] = dict(scalars)

    def flush(self):
        pass

    def close(self):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_tiny_model_trains_on_the_demo_collection(name, tmp_path, monkeypatch):
    from flan_jax import optim, train

    recorder = _Recorder()
    monkeypatch.setattr(train, "_metric_writer", lambda *a, **k: recorder)
    config = models.preset(name, "tiny", vocab_size=384, num_layers=2)
    cfg = train.TrainConfig(
        model_dir=str(tmp_path / "run"),
        mixture_or_task_name="demo:compare:t0",
        task_feature_lengths={"inputs": 48, "targets": 8},
        train_steps=12,
        batch_size=8,
        model=config,
        mesh=partitioning.MeshConfig(data=4, model=2),
        optimizer=optim.OptimizerConfig(name="adamw", learning_rate=1e-2),
        save_every=12,
        log_every=1,
        progress_bar=False,
        async_checkpoint=False,
        pack=True,
    )
    result = train.train(cfg)
    losses = [recorder.scalars[s]["loss"] for s in sorted(recorder.scalars)]
    assert result["step"] == 12 and len(losses) == 12
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_preflight_compiles_a_llama_step():
    from flan_jax import preflight, train

    cfg = train.TrainConfig(
        model_dir="/unused",
        mixture_or_task_name="unused",
        task_feature_lengths={"inputs": 32, "targets": 8},
        train_steps=10,
        batch_size=8,
        model=dataclasses.replace(models.preset("llama", "tiny"), remat=True, dtype="bfloat16"),
        mesh=partitioning.MeshConfig(data=4, model=2),
    )
    report = preflight.preflight(cfg, compile=True, device_memory_gib=16)
    n = models.param_count(cfg.model)
    assert report.param_bytes < n * 4  # query / mlp / vocab kernels split over "model"
    assert report.temp_bytes > 0 and report.fits is True


def test_bfloat16_activations_keep_float32_params(hf):
    _, _, imported = hf["gemma"]
    config = dataclasses.replace(imported.config, dtype="bfloat16")
    tokens = _tokens(10, (1, 9))
    full = _ours(imported.config, imported.params, decoder_input_tokens=tokens)
    half = _ours(config, imported.params, decoder_input_tokens=tokens)
    assert half.dtype == np.float32  # logits stay fp32
    assert np.abs(half - full).max() < 0.1 and not np.array_equal(half, full)
    model = models.build_model(config)
    boxed = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 4), jnp.int32))
    assert {
        x.value.dtype
        for x in jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
    } == {jnp.dtype("float32")}


def test_dropout_masks_attention_weights_per_element_and_hidden_states_per_position():
    # Every dropout call's input and output, by the module it runs in (fixed rngs: deterministic).
    rate, seen = 0.5, {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Dropout):
            where = type(context.module.parent).__name__
            seen.setdefault(where, []).append((np.asarray(args[0]), np.asarray(out)))
        return out

    config = models.preset("llama", "tiny", dropout_rate=rate)
    model = models.build_model(config)
    tokens = _tokens(11, (2, 12))
    params = model.init(jax.random.key(0), tokens)["params"]
    with nn.intercept_methods(record):
        model.apply(
            {"params": params}, tokens, enable_dropout=True, rngs={"dropout": jax.random.key(1)}
        )
    assert sorted(seen) == ["Attention", "DecoderLayer", "Mlp", "RopeDecoder"]
    for where, calls in seen.items():
        for x, y in calls:
            kept = y != 0
            np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
            if where == "Attention":
                # [b, kv_heads, group, q, k]: key 0 is visible to every query, and each query
                # drops it on its own draw (a length-broadcast mask would drop it for all).
                column = kept[..., 0]
                assert (column != column[..., :1]).any()
            else:
                # Hidden states [b, t, d]: one mask shared by all positions, as T5's.
                assert x.ndim == 3 and (kept == kept[:, :1]).all()
                assert 0 < kept.mean() < 1
