"""Hugging Face tokenizers as seqio vocabularies (`hf:DIR`), against `tokenizers` and
`transformers` on tiny tokenizers trained here."""

import json
import os
import types

import numpy as np
import pytest
import seqio
import tensorflow as tf
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers import models as tok_models

from flan_jax import cli, hf_vocab, input_pipeline, models, registry, vocab
from flan_jax.hf_vocab import HFVocabularyError
from flan_jax.sources import FunctionSource
from flan_jax.templates import Template

CORPUS = [
    "Premise: the cat sat on the mat.\nHypothesis: a cat sat!\nOPTIONS:\n- yes\n- no",
    "Çà et là, naïve café au lait; 日本語のテキスト and emoji 🙂 too!",
    "Translate to German: good morning\tfriends. Answer: Guten Morgen, Freunde!",
] * 20

TEXTS = [
    "the cat sat!",
    "Premise: naïve café\n\nHypothesis: 日本語 🙂\tend",
    "  leading spaces and trailing \n",
    "",
    "literal </s> inside text",
]

# A chat template in the usual style: BOS, role markers as special tokens, EOS after each turn,
# the sandbox's raise_exception for a role it does not know.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] not in ['user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] | trim + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def _byte_level_bpe(special_tokens, vocab_size=320):
    tok = Tokenizer(tok_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """Llama-like: <pad> 0, <s> 1, </s> 2, <unk> 3, BOS added by the post-processor."""
    folder = tmp_path_factory.mktemp("llama_tok")
    tok = _byte_level_bpe(["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        # The older AddedToken form, which some published configs still use.
        "unk_token": {"__type": "AddedToken", "content": "<unk>", "special": True},
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    """Qwen2-like: id 0 is a text token, specials after the text tokens, no BOS; EOS only in
    generation_config.json (a list)."""
    folder = tmp_path_factory.mktemp("qwen_tok")
    tok = _byte_level_bpe([])
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_pad|>"])
    tok.save(str(folder / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [eos, eos + 2]}))
    return folder


@pytest.fixture(scope="module")
def llama(llama_dir):
    return vocab.get_vocabulary(f"hf:{llama_dir}")


@pytest.fixture(scope="module")
def qwen(qwen_dir):
    return vocab.get_vocabulary(f"hf:{qwen_dir}")


def _reference(folder) -> Tokenizer:
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


# ---------------------------------------------------------------------------------------------
# Ids and text.


def test_ids_are_the_tokenizers_and_text_round_trips(llama, llama_dir):
    ref = _reference(llama_dir)
    assert llama.id_swap is None  # id 0 is <pad>: nothing moves
    for text in TEXTS:
        ids = list(llama.encode(text))
        assert ids == ref.encode(text, add_special_tokens=False).ids
        assert 1 not in ids  # no BOS in encoded ids
        if "</s>" not in text:  # decode stops at EOS and drops special tokens
            assert llama.decode(ids) == text
        assert llama.encode_tf(tf.constant(text)).numpy().tolist() == ids
    assert "</s>" not in llama.decode(llama.encode("literal </s> inside text"))


def test_special_tokens_and_bos_convention(llama, llama_dir, qwen, qwen_dir):
    assert (llama.pad_id, llama.bos_id, llama.eos_id, llama.unk_id) == (0, 1, 2, 3)
    assert llama.add_bos and llama.decoder_start_id == 1
    assert llama.vocab_size == _reference(llama_dir).get_vocab_size()
    ref = _reference(qwen_dir)
    assert not qwen.add_bos and qwen.bos_id is None and qwen.decoder_start_id is None
    assert qwen.eos_id == ref.token_to_id("<|endoftext|>")  # generation_config's first id
    assert qwen.unk_id is None


def test_a_text_token_at_id_0_trades_places_with_a_spare_special_token(qwen, qwen_dir):
    ref = _reference(qwen_dir)
    spare = ref.token_to_id("<|fim_pad|>")  # not EOS, not <|im_end|> (a generation stop id)
    assert qwen.id_swap == (0, spare)
    zero_text = ref.decode([0])
    assert zero_text == "!"  # as in Llama 3 and Qwen2 (the task tests below use it)
    for text in [*TEXTS, zero_text * 3]:
        theirs = ref.encode(text, add_special_tokens=False).ids
        ours = list(qwen.encode(text))
        assert 0 not in ours  # only padding is 0
        assert ours == [spare if i == 0 else 0 if i == spare else i for i in theirs]
        assert qwen.decode(ours) == text
        assert qwen.encode_tf(tf.constant(text)).numpy().tolist() == ours
    assert 0 in ref.encode(zero_text, add_special_tokens=False).ids
    table = np.arange(qwen.vocab_size)[:, None] * np.ones((1, 3))
    moved = hf_vocab.permute_rows(table, qwen.id_swap)
    assert moved[0, 0] == spare and moved[spare, 0] == 0
    np.testing.assert_array_equal(hf_vocab.permute_rows(moved, qwen.id_swap), table)


def test_decode_tf_matches_decode_on_batches(qwen):
    rows = [list(qwen.encode(t)) for t in TEXTS[:3]]
    width = max(map(len, rows)) + 2
    batch = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
        batch[i, len(row)] = qwen.eos_id
    decoded = qwen.decode_tf(tf.constant(batch)).numpy()
    assert [d.decode() for d in decoded] == TEXTS[:3]
    assert [qwen.decode(r) for r in batch.tolist()] == TEXTS[:3]


# ---------------------------------------------------------------------------------------------
# seqio tasks, feature converters, iterator checkpoints.


def _collection(name, vocabulary):
    rows = [
        {"premise": f"p{i}: the cat sat!", "label": i % 2, "text": "naïve café 日本語"}
        for i in range(24)
    ]
    sizes = {"train": 24, "validation": 4, "test": 4}

    def fn(split):
        data = rows[: sizes[split]]
        return tf.data.Dataset.from_tensor_slices({k: [r[k] for r in data] for k in data[0]})

    def fields(ex):
        options = tf.constant(["no!", "yes!"])
        return {
            "premise": ex["premise"],
            "text": ex["text"],
            "options": options,
            "answer": tf.gather(options, ex["label"]),
        }

    spec = registry.TaskSpec(
        name="toy",
        cluster="alpha",
        source=FunctionSource(fn, sizes),
        fields_fn=fields,
        fields=("premise", "text", "options", "answer"),
        templates=(
            Template("{premise}\n{text}\nTrue?", options=True),
            Template("Is it so? {premise}", options=True),
        ),
    )
    return registry.register_collection(name, [spec], vocabulary)


@pytest.fixture(scope="module")
def qwen_tasks(qwen):
    return _collection("hfvocab", qwen)


def test_task_ids_through_the_prefix_lm_converter(qwen, qwen_tasks):
    task = seqio.get_mixture_or_task("hfvocab:toy:t0")
    raw = next(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
    inputs = "p0: the cat sat!\nnaïve café 日本語\nTrue?\n\nOPTIONS:\n- no!\n- yes!"
    assert raw["inputs"].tolist() == [*qwen.encode(inputs), qwen.eos_id]
    assert raw["targets"].tolist() == [*qwen.encode("no!"), qwen.eos_id]
    config = models.decoder_config("tiny", vocab_size=qwen.vocab_size)
    converter = input_pipeline.feature_converter(config, pack=False)
    ds = seqio.get_dataset(
        "hfvocab:toy:t0",
        task_feature_lengths={"inputs": 64, "targets": 8},
        dataset_split="validation",
        shuffle=False,
        feature_converter=converter,
    )
    ex = next(ds.as_numpy_iterator())
    n_in, n_tg = len(raw["inputs"]), len(raw["targets"])
    tokens = ex["decoder_target_tokens"]
    assert tokens[: n_in + n_tg].tolist() == [*raw["inputs"], *raw["targets"]]
    assert not tokens[n_in + n_tg :].any()
    # The loss covers exactly the target tokens: "!" (the tokenizer's id 0) is no padding here.
    weights = ex["decoder_loss_weights"]
    assert weights[n_in : n_in + n_tg].all() and weights.sum() == n_tg


def test_training_iterator_over_hf_tokens_checkpoints_and_restores(qwen, qwen_tasks, tmp_path):
    config = models.decoder_config("tiny", vocab_size=qwen.vocab_size)

    def make():
        return input_pipeline.TrainInput(
            "hfvocab:toy:mix", {"inputs": 48, "targets": 8}, 4, config, True, 0, qwen
        )

    data = make()
    for _ in range(3):
        next(data)
    position = data.save(str(tmp_path / "host0"))
    expected = [next(data) for _ in range(2)]
    resumed = make()
    assert resumed.restore(position) == "iterator state"
    for want in expected:
        got = next(resumed)
        assert got.keys() == want.keys()
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value)


# ---------------------------------------------------------------------------------------------
# Chat template.


def test_chat_template_renders_and_tokenizes_as_transformers(llama_dir):
    from transformers import PreTrainedTokenizerFast

    theirs = PreTrainedTokenizerFast.from_pretrained(str(llama_dir), local_files_only=True)
    chat = vocab.get_vocabulary(f"hf:{llama_dir}?chat_template=1")
    assert chat != vocab.get_vocabulary(f"hf:{llama_dir}")
    for text in TEXTS[:3]:
        messages = [{"role": "user", "content": text}]
        rendered = theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert chat.render_chat(text) == rendered
        ids = theirs(rendered, add_special_tokens=False)["input_ids"]
        assert ids[0] == chat.bos_id
        assert chat.encode_chat(text) == ids[1:]  # BOS is the sequence start's, not the prompt's
        feature = hf_vocab.inputs_feature(chat)
        assert not feature.add_eos
        assert feature.vocabulary.encode_tf(tf.constant(text)).numpy().tolist() == ids[1:]


def test_chat_template_tasks_put_the_prompt_before_the_answer(llama_dir):
    chat = vocab.get_vocabulary(f"hf:{llama_dir}?chat_template=1")
    _collection("hfchat", chat)
    task = seqio.get_mixture_or_task("hfchat:toy:t1")
    ex = next(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
    assert ex["inputs"].tolist() == chat.encode_chat(
        "Is it so? p0: the cat sat!\n\nOPTIONS:\n- no!\n- yes!"
    )
    # Decoded for reports: up to the first EOS (the end of the user turn), specials dropped.
    assert (
        chat.decode(ex["inputs"]).strip() == "Is it so? p0: the cat sat!\n\nOPTIONS:\n- no!\n- yes!"
    )
    assert ex["targets"].tolist() == [*chat.encode("no!"), chat.eos_id]
    with pytest.raises(HFVocabularyError, match="unknown role system"):
        chat._chat_env.render(messages=[{"role": "system", "content": "x"}])


# ---------------------------------------------------------------------------------------------
# Bad inputs: one line each.


def _one_line(excinfo, *parts):
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


def test_bad_folders_and_specs(tmp_path, llama_dir):
    with pytest.raises(ValueError) as e:
        vocab.get_vocabulary(f"hf:{tmp_path}/missing")
    _one_line(e, "does not exist", "hf:DIR")
    with pytest.raises(ValueError) as e:
        vocab.get_vocabulary(f"hf:{tmp_path}")
    _one_line(e, str(tmp_path), "has no tokenizer.json")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError) as e:
        vocab.get_vocabulary(f"hf:{tmp_path}")
    _one_line(e, "cannot read", "tokenizer.json")
    with pytest.raises(ValueError) as e:
        vocab.get_vocabulary(f"hf:{llama_dir}?chat=1")
    _one_line(e, "unknown option 'chat'", "chat_template")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "tokenizer.json").write_bytes((llama_dir / "tokenizer.json").read_bytes())
    (bare / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    with pytest.raises(ValueError) as e:
        vocab.get_vocabulary(f"hf:{bare}?chat_template=1")
    _one_line(e, "has no chat template", "drop ?chat_template=1")
    (bare / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<eos>"}))
    with pytest.raises(ValueError) as e:
        vocab.get_vocabulary(f"hf:{bare}")
    _one_line(e, "eos_token '<eos>' is not in tokenizer.json")


def test_model_and_tokenizer_must_agree(llama, qwen):
    hf_vocab.check_agrees(llama, llama.vocab_size, {"bos": 1, "eos": [7, 2], "pad": None})
    hf_vocab.check_agrees(qwen, qwen.vocab_size + 64, {"bos": 5})  # Qwen's tokenizer has no BOS
    hf_vocab.check_agrees(vocab.get_vocabulary("byte"), 384, {"eos": 99})  # size only
    with pytest.raises(ValueError) as e:
        hf_vocab.check_agrees(llama, llama.vocab_size - 1)
    _one_line(e, f"model vocab_size {llama.vocab_size - 1}", f"{llama.vocab_size}")
    with pytest.raises(ValueError) as e:
        hf_vocab.check_agrees(llama, llama.vocab_size, {"eos_token_id": 5})
    _one_line(e, "eos_token_id 5", "eos id 2 (</s>)", "use the tokenizer published with the model")


def test_special_tokens_of_a_model_config(llama):
    config = types.SimpleNamespace(bos_token_id=1, eos_token_id=(2, 7), vocab_size=99)
    assert hf_vocab.special_tokens_of(config) == {"bos": 1, "eos": (2, 7)}
    hf_vocab.check_agrees(llama, llama.vocab_size, hf_vocab.special_tokens_of(config))
    config.bos_token_id = 4
    with pytest.raises(ValueError) as e:
        hf_vocab.check_agrees(llama, llama.vocab_size, hf_vocab.special_tokens_of(config))
    _one_line(e, "bos_token_id 4", "bos id 1 (<s>)")


def test_eval_checks_the_vocabulary_against_the_model(llama):
    from flan_jax.evaluation import jobs

    config = models.decoder_config("tiny", vocab_size=llama.vocab_size - 1)
    cfg = jobs.EvalConfig("unused", "unused", {"inputs": 8, "targets": 8}, model=config)
    with pytest.raises(ValueError) as e:
        jobs.check_vocabulary(cfg, llama)
    _one_line(e, "is smaller than vocabulary hf:")


def test_cli_train_with_a_missing_tokenizer_is_one_line(capsys, tmp_path):
    model_dir = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--gin_file=experiments/demo_smoke.gin",
            f'--gin.MODEL_DIR="{model_dir}"',
            '--gin.VOCABULARY="hf:/missing"',
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "tokenizer folder /missing does not exist" in err
    assert not os.path.exists(model_dir)
