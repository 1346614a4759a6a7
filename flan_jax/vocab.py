"""Vocabularies: bytes for tiny runs, SentencePiece by path, and training a SentencePiece model.

A run names its vocabulary in its config (``TrainConfig.vocabulary`` / ``EvalConfig.vocabulary``,
gin macro ``VOCABULARY``): ``byte`` (default; ``seqio.ByteVocabulary``), ``t5`` (T5's public 32k
model on GCS), a path to a ``.model`` file or ``hf:DIR`` (a Hugging Face ``tokenizer.json``;
see `flan_jax.hf_vocab`). ``get_vocabulary`` turns that string into the
object, which is then passed explicitly to whatever registers or reads tasks
(``catalog.get_task_or_mixture(name, vocabulary)``); nothing reads it from the environment.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

import seqio

from flan_jax import hf_vocab

T5_VOCAB = "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model"


def get_vocabulary(spec: str = "byte") -> seqio.Vocabulary:
    """``byte``, ``t5``, a SentencePiece model path or ``hf:DIR`` -> a seqio vocabulary."""
    if spec.startswith(hf_vocab.PREFIX):
        return hf_vocab.load(spec)
    if spec == "byte":
        return seqio.ByteVocabulary()
    if spec == "t5":
        return seqio.SentencePieceVocabulary(T5_VOCAB)
    if spec.startswith("gs://") or spec.endswith(".model"):
        if not spec.startswith("gs://") and not os.path.exists(spec):
            raise FileNotFoundError(
                f"SentencePiece model {spec} does not exist; train one with `flan-jax train-vocab`"
            )
        return seqio.SentencePieceVocabulary(spec)
    raise ValueError(
        f"vocabulary {spec!r} is not 'byte', 't5', a path to a SentencePiece .model file "
        "or hf:DIR (a folder with tokenizer.json)"
    )


def describe(vocabulary: seqio.Vocabulary) -> str:
    """A short name for messages: ``byte``, ``t5``, the model path, or the class name.

    Never loads a SentencePiece model (``str()`` of one would read the file to hash it).
    """
    if isinstance(vocabulary, seqio.ByteVocabulary):
        return "byte" if not vocabulary.extra_ids else f"byte (+{vocabulary.extra_ids} extra ids)"
    if isinstance(vocabulary, seqio.SentencePieceVocabulary):
        path = vocabulary.sentencepiece_model_file
        return "t5" if path == T5_VOCAB else path
    if isinstance(vocabulary, hf_vocab.HFVocabulary):
        return vocabulary.spec
    return type(vocabulary).__name__


def train_sentencepiece(
    texts: Iterable[str],
    model_prefix: str,
    vocab_size: int = 8000,
    *,
    character_coverage: float = 1.0,
    input_sentence_size: int = 1_000_000,
) -> str:
    """Trains a SentencePiece model that keeps newlines; returns the ``.model`` path.

    T5's id convention (pad 0, eos 1, unk 2, no bos), identity normalization and no whitespace
    squashing, so templates' line structure survives tokenization.
    """
    import sentencepiece as spm

    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        corpus = f.name
        n = 0
        for text in texts:
            # SentencePiece reads one sentence per line: split at newlines. "\n" itself is a
            # user-defined symbol, so it is always in the vocabulary as one piece.
            for line in text.split("\n"):
                if line.strip():
                    f.write(line + "\n")
                    n += 1
    if n == 0:
        raise ValueError("no text to train a vocabulary on; check the task or mixture name/split")
    try:
        spm.SentencePieceTrainer.train(
            input=corpus,
            model_prefix=model_prefix,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=character_coverage,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            user_defined_symbols=["\n"],
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            hard_vocab_limit=False,
            minloglevel=2,
        )
    finally:
        os.unlink(corpus)
    return model_prefix + ".model"
