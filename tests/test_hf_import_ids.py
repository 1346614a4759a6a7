"""Importing a Hugging Face decoder whose tokenizer's id 0 is its BOS and EOS (as SmolLM2's
<|endoftext|>), with the chat template saved in chat_template.jinja (as newer transformers do).

config.json's token ids are the tokenizer's; the converted model's are ours, where id 0 (kept
for padding) traded places with a spare special token. Both must be read in their own numbering,
and the tokenizer files, chat_template.jinja included, travel with the weights so the converted
folder's vocabulary makes the same trade. One tiny random `transformers` Llama, no downloads.
"""

from __future__ import annotations

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import cli, conversion, hf_vocab, models

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

# <spare> is the spare special token only because the chat template names <|im_end|>: without
# the template, the highest special token (<|im_end|>, 3) would be chosen instead.
SPECIALS = ("<|endoftext|>", "<spare>", "<|im_start|>", "<|im_end|>")
SPARE = 1
VOCAB = 40
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A Hugging Face folder: a 1-layer Llama with bos = eos = 0 and its tokenizer."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models

    folder = tmp_path_factory.mktemp("hf") / "smol"
    words = {text: i for i, text in enumerate(SPECIALS)}
    words.update({f"w{i}": i for i in range(len(SPECIALS), VOCAB)})
    tok = Tokenizer(tok_models.WordLevel(words, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIALS))
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIALS[0], eos_token=SPECIALS[0], unk_token=SPECIALS[0]
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return folder, model


@pytest.fixture(scope="module")
def converted(src, tmp_path_factory):
    folder, _ = src
    out = tmp_path_factory.mktemp("ours") / "smol"
    assert cli.main(["convert", "--from", "hf", str(folder), str(out)]) == 0
    return out


def test_the_save_puts_the_template_in_chat_template_jinja(src):
    folder, _ = src
    assert (folder / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())
    assert json.loads((folder / "config.json").read_text())["bos_token_id"] == 0


def test_id_0_bos_and_eos_import_as_the_swapped_ids(src, converted):
    folder, model = src
    config, spec = conversion.read_model_config(converted)
    vocabulary = hf_vocab.load(spec)
    assert vocabulary.id_swap == (0, SPARE)
    assert config.bos_token_id == config.eos_token_id == SPARE
    assert vocabulary.bos_id == vocabulary.eos_id == SPARE
    # What `train` and `eval` check (ids in our numbering) holds.
    hf_vocab.check_agrees(vocabulary, config.vocab_size, hf_vocab.special_tokens_of(config))
    # The model reads its BOS (our SPARE, the tokenizer's 0) at position 0: same logits.
    hf_ids = [0, 5, 9, 7]
    ours_ids = [0, *vocabulary.encode("w5 w9 w7")]
    with torch.no_grad():
        ref = model(torch.tensor([hf_ids])).logits.numpy()[0]
    params, _, _ = conversion.load_params(converted)
    got = models.build_model(config).apply(
        {"params": params}, decoder_input_tokens=jnp.asarray([ours_ids])
    )[0]
    order = [vocabulary.to_hf(i) for i in range(VOCAB)]
    np.testing.assert_allclose(np.asarray(got), ref[:, order], atol=1e-4, rtol=0)


def test_export_writes_the_tokenizers_ids_back(converted, tmp_path):
    out = tmp_path / "export"
    assert cli.main(["convert", "--to", "hf", str(converted), str(out)]) == 0
    exported = json.loads((out / "config.json").read_text())
    assert (exported["bos_token_id"], exported["eos_token_id"]) == (0, 0)
    assert (out / "chat_template.jinja").read_text() == CHAT_TEMPLATE


def test_the_chat_template_travels_in_chat_template_jinja(src, converted):
    folder, _ = src
    assert (converted / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    source = hf_vocab.load(f"hf:{folder}?chat_template=1")
    chat = hf_vocab.load(f"hf:{converted}?chat_template=1")
    assert chat.id_swap == source.id_swap == (0, SPARE)  # the same trade in both folders
    theirs = transformers.AutoTokenizer.from_pretrained(str(converted), local_files_only=True)
    messages = [{"role": "user", "content": "w5 w6"}]
    rendered = theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == "<|im_start|>user w5 w6<|im_end|> <|im_start|>assistant "
    assert chat.render_chat("w5 w6") == rendered
    hf_ids = theirs(rendered, add_special_tokens=False)["input_ids"]
    assert chat.encode_chat("w5 w6") == [chat.from_hf(i) for i in hf_ids]


def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_bos_that_is_not_the_tokenizers_is_refused_in_one_line(src, tmp_path, capsys):
    folder, _ = src
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    record = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**record, "bos_token_id": 2}))
    err = _one_line_error(capsys, ["convert", "--from", "hf", str(bad), str(tmp_path / "out")])
    # Both ids in the tokenizer's numbering, the one config.json is written in.
    assert "bos_token_id 2 differs from the tokenizer's bos id 0 (<|endoftext|>)" in err
    assert not (tmp_path / "out").exists()


def test_check_agrees_reads_each_numbering(src):
    folder, _ = src
    vocabulary = hf_vocab.load(f"hf:{folder}")
    size = vocabulary.vocab_size
    hf_vocab.check_agrees(vocabulary, size, {"bos": 0, "eos": 0}, tokenizer_ids=True)
    hf_vocab.check_agrees(vocabulary, size, {"bos": SPARE, "eos": [SPARE, 3]})
    with pytest.raises(ValueError, match=r"bos_token_id 0 differs from the tokenizer's bos id 1"):
        hf_vocab.check_agrees(vocabulary, size, {"bos": 0})
    with pytest.raises(ValueError, match=r"eos_token_id 1 differs from the tokenizer's eos id 0"):
        hf_vocab.check_agrees(vocabulary, size, {"eos": SPARE}, tokenizer_ids=True)
