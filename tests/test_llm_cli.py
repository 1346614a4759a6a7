"""The recipe of the README, through the command line, for each Hugging Face decoder family:

    flan-jax convert --from hf HF_DIR CKPT
    flan-jax train  (a tiny preset, INITIAL_CHECKPOINT_PATH=CKPT, VOCABULARY=hf:CKPT)
    flan-jax eval   (rank classification and decoding of the held-out cluster)
    flan-jax convert --to hf MODEL_DIR/<step> OUT --model_config CKPT/model_config.json

on local files only: a random `transformers` model with the tiny preset's shapes and a
byte-level BPE tokenizer trained here, each with its family's token conventions (Llama 3: a
text token at id 0 and a BOS; Qwen2: a text token at id 0, no BOS; Gemma: <pad> 0, <eos> 1,
<bos> 2). The export loads in transformers' AutoModelForCausalLM and holds the tuned weights.
Bad inputs to `convert` are one line (exit 2): a `.bin`-only folder, an unsupported
model_type, a tokenizer that disagrees with the model, a `hf:` vocabulary without tokenizer.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from flan_jax import cli, conversion, hf_vocab, models

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "Premise: the cat sat on the mat. Hypothesis: a cat sat! Does the premise entail it? yes no",
    "Question: what is 2 + 3? Answer: 5. OPTIONS: - it is true - it is false - maybe",
    "Review: I loved this film, the acting was great. Is this review positive or negative?",
] * 10

# family -> (transformers classes, special tokens in id order before the text tokens, special
# tokens after them, bos, eos, BOS added by the post-processor).
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", [], ["<|bos|>", "<|eos|>", "<|spare|>"], True),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", [], ["<|endoftext|>", "<|im_start|>"], False),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", ["<pad>", "<eos>", "<bos>"], [], True),
}
TOKENS = {"llama": ("<|bos|>", "<|eos|>"), "qwen2": (None, "<|endoftext|>")}
TOKENS["gemma"] = ("<bos>", "<eos>")
FEATURE_LENGTHS = "{'inputs': 64, 'targets': 8}"
# What each family's `flan-jax eval` runs: the held-out cluster by rank classification (the FLAN
# report), or a generative task decoded by sampling or beam search.
EVALS = {
    "llama": [],
    "qwen2": [
        '--gin.EvalConfig.mixture_or_task_name="demo:addition:t0"',
        '--gin.EvalConfig.decode_method="sample"',
    ],
    "gemma": [
        '--gin.EvalConfig.mixture_or_task_name="demo:reverse_word:t0"',
        '--gin.EvalConfig.decode_method="beam"',
        "--gin.EvalConfig.num_beams=2",
    ],
}
EVAL_TASKS = {
    "llama": ["demo:fact_nli:t0:rank", "demo:order_nli:t4:rank"],
    "qwen2": ["demo:addition:t0"],
    "gemma": ["demo:reverse_word:t0"],
}


def _tokenizer(folder, name: str) -> tuple[int | None, int]:
    """Writes tokenizer.json + tokenizer_config.json; returns the tokenizer's (bos, eos) ids."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models

    _, _, before, after, add_bos = FAMILIES[name]
    tok = Tokenizer(tok_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=before,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(after)
    bos_text, eos_text = TOKENS[name]
    bos, eos = tok.token_to_id(bos_text) if bos_text else None, tok.token_to_id(eos_text)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_text} $A", special_tokens=[(bos_text, bos)]
        )
    tok.save(str(folder / "tokenizer.json"))
    config = {"eos_token": eos_text, "add_bos_token": add_bos}
    if bos_text:
        config["bos_token"] = bos_text
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return bos, eos


def _hf_dir(folder, name: str) -> None:
    """A random transformers model with the shapes of gin/models/<name>_tiny.gin, saved as
    safetensors, with its tokenizer."""
    bos, eos = _tokenizer(folder, name)
    preset = models.preset(name, "tiny")
    config_cls, model_cls = FAMILIES[name][:2]
    config = getattr(transformers, config_cls)(
        vocab_size=preset.vocab_size,
        hidden_size=preset.d_model,
        intermediate_size=preset.d_ff,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads,
        head_dim=preset.head_dim,
        max_position_embeddings=preset.max_position_embeddings,
        rms_norm_eps=preset.norm_epsilon,
        rope_theta=preset.rope_theta,
        tie_word_embeddings=preset.tie_word_embeddings,
        bos_token_id=bos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config)
    model.save_pretrained(folder, safe_serialization=True)


def _run(argv: list[str]) -> None:
    assert cli.main(argv) == 0, argv


# Runs command lines in one process (a process registers the demo collection with one
# vocabulary, so each family trains and evaluates in its own).
_DRIVER = (
    "import json, sys\n"
    "from flan_jax import cli\n"
    "for argv in json.loads(sys.argv[1]):\n"
    "    code = cli.main(argv)\n"
    "    if code:\n"
    "        sys.exit(f'exit {code}: {argv[0]}')\n"
)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """name -> the folders of each step of the recipe; the families train and evaluate in
    parallel processes."""
    out, jobs = {}, {}
    for name in FAMILIES:
        root = tmp_path_factory.mktemp(name)
        src, ckpt, run, exported = (root / d for d in ("hf", "ckpt", "run", "exported"))
        src.mkdir()
        _hf_dir(src, name)
        _run(["convert", "--from", "hf", str(src), str(ckpt)])
        imported, vocabulary = conversion.read_model_config(ckpt)
        config_name = type(imported).__name__
        gin = [
            "--gin_file=train.gin",
            f"--gin_file=models/{name}_tiny.gin",
            '--gin.MIXTURE_OR_TASK_NAME="demo:heldout_nli:train"',
            f"--gin.TASK_FEATURE_LENGTHS={FEATURE_LENGTHS}",
            f'--gin.VOCABULARY="{vocabulary}"',
            "--gin.MeshConfig.data=4",
            "--gin.MeshConfig.model=2",
            # The preset's shapes are the checkpoint's; its token ids are the tokenizer's.
            f"--gin.{config_name}.bos_token_id={imported.bos_token_id}",
            f"--gin.{config_name}.eos_token_id={imported.eos_token_id}",
        ]
        train = [
            "train",
            *gin,
            f'--gin.MODEL_DIR="{run}"',
            f'--gin.INITIAL_CHECKPOINT_PATH="{ckpt}"',
            "--gin.TRAIN_STEPS=2",
            "--gin.BATCH_SIZE=8",
            '--gin.OptimizerConfig.name="adamw"',
            "--gin.OptimizerConfig.learning_rate=1e-2",
            "--gin.TrainConfig.save_every=2",
            "--gin.TrainConfig.progress_bar=False",
        ]
        evaluate = [
            "eval",
            *gin,
            f'--gin.CHECKPOINT_PATH="{run}/2"',
            "--gin.EvalConfig.splits=('validation',)",
            "--gin.EvalConfig.num_examples=4",
            "--gin.EvalConfig.batch_size=8",
            "--gin.EvalConfig.bucket=False",  # one padded shape: one compile per task shape
            *EVALS[name],
        ]
        jobs[name] = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, json.dumps([train, evaluate])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out[name] = dict(src=src, ckpt=ckpt, run=run, exported=exported)
    for name, job in jobs.items():
        log, _ = job.communicate(timeout=600)
        assert job.returncode == 0, f"{name}:\n{log[-3000:]}"
    for paths in out.values():
        _run(
            [
                "convert",
                "--to",
                "hf",
                str(paths["run"] / "2"),
                str(paths["exported"]),
                "--model_config",
                str(paths["ckpt"] / conversion.MODEL_CONFIG_FILE),
            ]
        )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_convert_train_eval_export(recipe, name):
    paths = recipe[name]
    imported, vocabulary = conversion.read_model_config(paths["ckpt"])
    assert models.family_of(imported).name == name and vocabulary == f"hf:{paths['ckpt']}"
    assert hf_vocab.load(vocabulary).add_bos == (name != "qwen2")

    # The evaluation wrote its metrics and examples (scored options, or decoded answers).
    report = paths["run"] / "eval" / "step_2"
    metrics = json.loads((report / "metrics.json").read_text())["metrics"]["validation"]
    for task in EVAL_TASKS[name]:
        assert 0.0 <= next(iter(metrics[task].values())) <= 100.0, metrics
        examples = report / "examples" / "validation" / f"{task.replace(':', '__')}.jsonl"
        records = [json.loads(line) for line in examples.read_text().splitlines()]
        assert 1 <= len(records) <= 4
        assert all(("scores" if task.endswith(":rank") else "prediction") in r for r in records)

    # The export is the tuned model: transformers loads it and its tensors are the trained ones
    # (not the imported ones), in the tokenizer's numbering.
    exported = transformers.AutoModelForCausalLM.from_pretrained(paths["exported"]).eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(paths["src"]).eval()
    assert type(exported) is type(original)
    assert (paths["exported"] / "tokenizer.json").read_bytes() == (
        paths["src"] / "tokenizer.json"
    ).read_bytes()
    trained, _, _ = conversion.load_params(paths["run"] / "2", imported)
    again = conversion.import_hf(paths["exported"])
    assert again.config == imported
    flat = jax.tree_util.tree_flatten_with_path
    for (path, x), (_, y) in zip(flat(trained)[0], flat(again.params)[0]):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    before = original.state_dict()
    changed = [k for k, p in exported.state_dict().items() if not torch.equal(p, before[k])]
    assert changed, "the export holds the imported weights, not the tuned ones"
    tokens = torch.tensor([[5, 9, 17, 33, 2, 40]])
    with torch.no_grad():
        logits = exported(tokens).logits
    assert logits.shape == (1, 6, imported.vocab_size) and torch.isfinite(logits).all()


# ----------------------------------------------------------------------------- bad inputs


def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_inputs_are_one_line(recipe, tmp_path, capsys):
    src = recipe["llama"]["src"]
    out = str(tmp_path / "out")

    bins = tmp_path / "bins"
    bins.mkdir()
    shutil.copy(src / "config.json", bins / "config.json")
    (bins / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(bins), out])
    assert "only pickle weights (pytorch_model.bin)" in err

    other = tmp_path / "other"
    shutil.copytree(src, other)
    record = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**record, "model_type": "phi3"}))
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(other), out])
    assert "model_type='phi3' has no flan_jax converter" in err

    # The tokenizer of another model: its EOS is not the model's.
    mismatch = tmp_path / "mismatch"
    shutil.copytree(src, mismatch)
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(recipe["gemma"]["src"] / file, mismatch / file)
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(mismatch), out])
    assert "bos_token_id" in err and "use the tokenizer published with the model" in err

    # A model folder without tokenizer.json converts (no vocabulary recorded) but cannot be
    # trained with `hf:` on it.
    bare = tmp_path / "bare"
    bare.mkdir()
    for file in ("config.json", "model.safetensors"):
        shutil.copy(src / file, bare / file)
    _run(["convert", "--from", "hf", str(bare), str(tmp_path / "bare_ckpt")])
    err = _one_line_error(
        capsys,
        [
            "train",
            "--gin_file=train.gin",
            "--gin_file=models/llama_tiny.gin",
            f'--gin.MODEL_DIR="{tmp_path / "run"}"',
            '--gin.MIXTURE_OR_TASK_NAME="demo:heldout_nli:train"',
            f"--gin.TASK_FEATURE_LENGTHS={FEATURE_LENGTHS}",
            "--gin.TRAIN_STEPS=1",
            f'--gin.VOCABULARY="hf:{tmp_path / "bare_ckpt"}"',
            f'--gin.INITIAL_CHECKPOINT_PATH="{tmp_path / "bare_ckpt"}"',
        ],
    )
    assert "has no tokenizer.json" in err

    # A model file that is not the imported checkpoint's model: refused before the data starts.
    train = [
        "train",
        "--gin_file=train.gin",
        f'--gin.MODEL_DIR="{tmp_path / "run"}"',
        '--gin.MIXTURE_OR_TASK_NAME="demo:heldout_nli:train"',
        f"--gin.TASK_FEATURE_LENGTHS={FEATURE_LENGTHS}",
        "--gin.TRAIN_STEPS=1",
        f'--gin.INITIAL_CHECKPOINT_PATH="{recipe["llama"]["ckpt"]}"',
    ]
    err = _one_line_error(
        capsys, [*train, "--gin_file=models/llama_tiny.gin", "--gin.LlamaConfig.num_layers=2"]
    )
    assert "MODEL (num_layers=2, bos_token_id=None, eos_token_id=None) is not the model" in err
    assert "--gin.LlamaConfig.num_layers=3 --gin.LlamaConfig.bos_token_id=" in err
    err = _one_line_error(capsys, [*train, "--gin_file=models/qwen2_tiny.gin"])
    assert "holds a Llama tiny" in err and "MODEL is a Qwen2Config" in err
    # The same check when evaluating an imported checkpoint directly.
    err = _one_line_error(
        capsys,
        [
            "eval",
            "--gin_file=train.gin",
            "--gin_file=models/llama_tiny.gin",
            "--gin.LlamaConfig.num_layers=2",
            '--gin.MIXTURE_OR_TASK_NAME="demo:heldout_nli:train"',
            f"--gin.TASK_FEATURE_LENGTHS={FEATURE_LENGTHS}",
            f'--gin.CHECKPOINT_PATH="{recipe["llama"]["ckpt"]}"',
        ],
    )
    assert "is not the model of CHECKPOINT_PATH" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
