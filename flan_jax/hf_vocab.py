"""Hugging Face tokenizers as seqio vocabularies: ``hf:DIR`` (a folder with ``tokenizer.json``).

``HFVocabulary`` wraps a local ``tokenizer.json`` with the `tokenizers` library (no network) and
reads the special tokens from ``tokenizer_config.json``, then ``special_tokens_map.json``, then
``generation_config.json`` (first one that names a token wins; ``eos_token_id`` lists give their
first id). It behaves like any seqio vocabulary: tasks tokenize with it inside tf.data (a
stateless ``tf.numpy_function``, so training iterators stay checkpointable), seqio appends EOS,
the evaluator decodes with it (special tokens are dropped from decoded text).

Conventions, the same for every tokenizer:

- **Ids are the tokenizer's**, with one exception that keeps flan_jax's "id 0 is padding" true
  (seqio's feature converters, the evaluator and the models treat token 0 as padding and give it
  no loss weight, no attention): when the tokenizer's own id 0 is a text token (``!`` in Llama 3
  and Qwen2) or its BOS/EOS, that token trades ids with a *spare* special token (the
  highest-numbered special token that is not BOS/EOS/UNK and is not used by the chat template;
  with none, the first id past the tokenizer). ``id_swap`` names the pair; checkpoint converters
  swap the same two rows of the embedding and output tables (``permute_rows``). What id 0 is:
  Gemma ``<pad>``, Llama 2 / TinyLlama ``<unk>``, Llama 3 and Qwen2 the spare special token that
  took ``!``'s place (``!`` then has the spare's id), SmolLM ``<|endoftext|>`` traded likewise
  since it is also EOS.
- **No BOS in encoded ids.** ``add_bos`` says whether the tokenizer's convention starts a
  sequence with BOS (``add_bos_token`` in tokenizer_config.json, else its post-processor: true for
  Llama and Gemma, false for Qwen2); ``decoder_start_id`` is then ``bos_id`` (else None). seqio
  shifts each decoder-only sequence right with token 0 at position 0; the model reads its own
  ``bos_token_id`` there, so BOS comes from the model config and `check_agrees` makes sure it
  is the tokenizer's. Inputs and targets are tokenized apart (no BOS between them).
- **Chat template** (off by default; ``hf:DIR?chat_template=1``): the task's ``inputs`` text
  becomes the user message of the model's own template (``chat_template`` of
  tokenizer_config.json or ``chat_template.jinja``), rendered with ``add_generation_prompt`` in
  jinja2's immutable sandbox; the targets then follow the generation prompt and end in EOS. It is
  applied by the vocabulary of the ``inputs`` feature only (``inputs_vocabulary``), which also
  appends no EOS after the prompt (`inputs_add_eos`). A BOS written by the template is dropped
  (see above). No clock is given to templates (``strftime_now`` is undefined), so a template that
  prints today's date prints its fixed fallback and training data stays deterministic.

``check_agrees`` compares a model's vocabulary size and special token ids with the tokenizer.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

PREFIX = "hf:"
TOKENIZER_FILE = "tokenizer.json"
SPECIAL_NAMES = ("bos", "eos", "pad", "unk")
_OPTIONS = {"chat_template": ("0", "1")}


class HFVocabularyError(ValueError):
    """A tokenizer folder or ``hf:`` spec that cannot be used (reported in one line)."""


# ---------------------------------------------------------------------------------------------
# Reading the folder.


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``hf:DIR[?key=value&...]`` -> (DIR, options); unknown options are errors."""
    body = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    path, _, query = body.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in _OPTIONS:
            raise HFVocabularyError(
                f"vocabulary {spec!r} has unknown option {key!r}; known: {', '.join(_OPTIONS)}"
            )
        if value not in _OPTIONS[key]:
            raise HFVocabularyError(
                f"vocabulary {spec!r}: {key}={value!r} must be one of {', '.join(_OPTIONS[key])}"
            )
        options[key] = value
    if not path:
        raise HFVocabularyError(f"vocabulary {spec!r} names no folder; write hf:DIR")
    return path, options


def _read_json(path: str) -> dict[str, Any] | None:
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HFVocabularyError(f"cannot read {path}: {e}; fix or remove the file") from None
    if not isinstance(data, dict):
        raise HFVocabularyError(f"{path} is not a JSON object; fix or remove the file")
    return data


def _load_tokenizer(folder: str):
    from tokenizers import Tokenizer

    file = os.path.join(folder, TOKENIZER_FILE)
    if not os.path.isdir(folder):
        raise HFVocabularyError(
            f"tokenizer folder {folder} does not exist; give hf:DIR with the model's "
            f"{TOKENIZER_FILE} (e.g. the folder of a converted checkpoint)"
        )
    if not os.path.isfile(file):
        raise HFVocabularyError(
            f"{folder} has no {TOKENIZER_FILE}; give hf:DIR of a Hugging Face model folder "
            "with a fast tokenizer (SentencePiece-only folders: save one with transformers first)"
        )
    try:
        tokenizer = Tokenizer.from_file(file)
    except Exception as e:  # the Rust side raises plain Exceptions for unreadable files
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HFVocabularyError(f"cannot read {file}: {first}") from None
    # Our pipelines pad and truncate; a tokenizer.json saved with either would change the ids.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _token_text(value: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return value["content"]
    return None


# ---------------------------------------------------------------------------------------------
# The vocabulary.


class HFVocabulary(seqio.Vocabulary):
    """A local Hugging Face ``tokenizer.json`` as a seqio vocabulary (see module docstring)."""

    def __init__(self, path: str, *, chat_template: bool = False):
        super().__init__(extra_ids=0)
        self.path = os.path.abspath(path)
        self.chat_template = bool(chat_template)
        self._tokenizer = _load_tokenizer(self.path)
        config = _read_json(os.path.join(self.path, "tokenizer_config.json")) or {}
        special_map = _read_json(os.path.join(self.path, "special_tokens_map.json")) or {}
        generation = _read_json(os.path.join(self.path, "generation_config.json")) or {}
        self._template = _chat_template_text(self.path, config)
        if self.chat_template and self._template is None:
            raise HFVocabularyError(
                f"{self.path} has no chat template (tokenizer_config.json 'chat_template' or "
                "chat_template.jinja); drop ?chat_template=1"
            )
        self._hf_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self._specials = {
            i: t.content for i, t in self._tokenizer.get_added_tokens_decoder().items() if t.special
        }
        # Special token ids in the tokenizer's numbering (None: it has none).
        self.hf_special_ids: dict[str, int | None] = {
            name: self._special_id(name, config, special_map, generation) for name in SPECIAL_NAMES
        }
        if self.hf_special_ids["eos"] is None:
            raise HFVocabularyError(
                f"{self.path} names no EOS token (eos_token in tokenizer_config.json or "
                "special_tokens_map.json, or eos_token_id in generation_config.json); add one"
            )
        add_bos = config.get("add_bos_token")
        if not isinstance(add_bos, bool):
            bos = self.hf_special_ids["bos"]
            probe = self._tokenizer.encode("a", add_special_tokens=True).ids
            add_bos = bos is not None and bool(probe) and probe[0] == bos
        self._add_bos = bool(add_bos and self.hf_special_ids["bos"] is not None)
        # Every end-of-turn id generation stops at (Llama 3 lists several) stays where it is.
        stops = generation.get("eos_token_id")
        self._stop_ids = {
            i for i in (stops if isinstance(stops, list) else [stops]) if isinstance(i, int)
        }
        self._swap = self._choose_swap()
        self._chat_env = None

    # -- special tokens -------------------------------------------------------------------

    def _special_id(self, name, config, special_map, generation) -> int | None:
        for source in (config, special_map):
            text = _token_text(source.get(f"{name}_token"))
            if text is not None:
                token_id = self._tokenizer.token_to_id(text)
                if token_id is None:
                    raise HFVocabularyError(
                        f"{self.path}: {name}_token {text!r} is not in {TOKENIZER_FILE}; fix the "
                        "tokenizer config or use the tokenizer saved with it"
                    )
                return token_id
        value = generation.get(f"{name}_token_id")
        if isinstance(value, list):
            value = value[0] if value else None
        return value if isinstance(value, int) else None

    def _choose_swap(self) -> tuple[int, int] | None:
        """(0, X): the tokenizer's id 0 trades places with X, or None when 0 is already free."""
        reserved = {self.hf_special_ids[n] for n in ("bos", "eos", "unk")} | self._stop_ids
        reserved.discard(None)
        if 0 in self._specials and 0 not in reserved:
            return None  # a pad/unk-like special token that text never produces
        template = self._template or ""
        spare = [
            i
            for i, text in self._specials.items()
            if i != 0 and i not in reserved and text not in template
        ]
        return (0, max(spare) if spare else self._hf_size)

    @property
    def id_swap(self) -> tuple[int, int] | None:
        """The pair of tokenizer ids that trade places (id 0 and X), or None."""
        return self._swap

    def to_hf(self, i: int) -> int:
        """Our id -> the tokenizer's id (the swap is its own inverse)."""
        if self._swap is not None and i in self._swap:
            return self._swap[1] if i == 0 else 0
        return i

    from_hf = to_hf

    def _mapped(self, name: str) -> int | None:
        hf = self.hf_special_ids[name]
        return None if hf is None else self.from_hf(hf)

    @property
    def eos_id(self) -> int:
        return self._mapped("eos")

    @property
    def bos_id(self) -> int | None:
        return self._mapped("bos")

    @property
    def unk_id(self) -> int | None:
        return self._mapped("unk")

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def add_bos(self) -> bool:
        """Whether the tokenizer's convention starts each sequence with BOS (Llama, Gemma)."""
        return self._add_bos

    @property
    def decoder_start_id(self) -> int | None:
        """The token a decoder-only sequence starts with: BOS where the convention adds one."""
        return self.bos_id if self._add_bos else None

    @property
    def _base_vocab_size(self) -> int:
        # The spare slot past the tokenizer, when id 0 had to move there, counts too.
        return self._hf_size + (1 if self._swap and self._swap[1] == self._hf_size else 0)

    # -- encode / decode ------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if self._swap is not None:
            ids = [self.from_hf(i) for i in ids]
        return ids

    def _encode(self, s: str) -> Sequence[int]:
        return self._ids(s)

    def _decode(self, ids: Sequence[int]) -> str:
        hf = [self.to_hf(int(i)) for i in ids if 0 <= int(i) < self._base_vocab_size]
        hf = [i for i in hf if i < self._hf_size]
        return self._tokenizer.decode(hf, skip_special_tokens=True)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        return _encode_tf(self._encode_bytes, s)

    def _encode_bytes(self, s: Any) -> np.ndarray:
        return np.asarray(self._encode(_text(s)), np.int32)

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        def decode(array: np.ndarray) -> np.ndarray:
            rows = array.reshape(-1, array.shape[-1]) if array.ndim else array.reshape(1, 1)
            out = [self._decode(row.tolist()).encode("utf-8") for row in rows]
            return np.array(out, dtype=object).reshape(array.shape[:-1])

        out = tf.numpy_function(decode, [ids], tf.string, stateful=False)
        out.set_shape(ids.shape[:-1])
        return out

    # -- chat template --------------------------------------------------------------------

    @property
    def inputs_vocabulary(self) -> seqio.Vocabulary:
        """The vocabulary of the ``inputs`` feature: this one, or its chat-template view."""
        return _ChatInputs(self) if self.chat_template else self

    @property
    def inputs_add_eos(self) -> bool:
        """Whether seqio appends EOS to the inputs (not after a chat generation prompt)."""
        return not self.chat_template

    def render_chat(self, text: str) -> str:
        """``text`` as the user message of the model's chat template, ready for the answer."""
        if self._template is None:
            raise HFVocabularyError(f"{self.path} has no chat template")
        if self._chat_env is None:
            self._chat_env = _compile_template(self._template)
        names = {f"{n}_token": self._token_of(n) for n in SPECIAL_NAMES}
        return self._chat_env.render(
            messages=[{"role": "user", "content": text}], add_generation_prompt=True, **names
        )

    def _token_of(self, name: str) -> str:
        hf = self.hf_special_ids[name]
        return "" if hf is None else self._tokenizer.id_to_token(hf)

    def encode_chat(self, text: str) -> list[int]:
        """Ids of the rendered chat prompt, without a leading BOS (the sequence start's)."""
        ids = self._ids(self.render_chat(text))
        if self._add_bos and ids and ids[0] == self.bos_id:
            ids = ids[1:]
        return ids

    # -- identity -------------------------------------------------------------------------

    @property
    def spec(self) -> str:
        """The ``hf:`` spec that makes this vocabulary."""
        return PREFIX + self.path + ("?chat_template=1" if self.chat_template else "")

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.path == self.path
            and other.chat_template == self.chat_template
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path, self.chat_template))

    def __str__(self) -> str:
        return f"HFVocabulary({self.spec})"


class _ChatInputs(seqio.Vocabulary):
    """The ``inputs`` feature's view of an `HFVocabulary`: text goes through the chat template."""

    def __init__(self, base: HFVocabulary):
        super().__init__(extra_ids=0)
        self.base = base

    eos_id = property(lambda self: self.base.eos_id)
    bos_id = property(lambda self: self.base.bos_id)
    unk_id = property(lambda self: self.base.unk_id)
    pad_id = property(lambda self: self.base.pad_id)
    _base_vocab_size = property(lambda self: self.base._base_vocab_size)

    def _encode(self, s: str) -> Sequence[int]:
        return self.base.encode_chat(s)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.base._decode(ids)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        return _encode_tf(lambda b: np.asarray(self._encode(_text(b)), np.int32), s)

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        return self.base._decode_tf(ids)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.base == self.base

    def __hash__(self) -> int:
        return hash(("chat", self.base))


def _text(value: Any) -> str:
    """What tf.numpy_function hands over for a string scalar (bytes, or a 0-d array of them)."""
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _encode_tf(encode_bytes, s: tf.Tensor) -> tf.Tensor:
    """A string scalar (or 1-D batch of strings, ragged out) -> int32 ids in tf.data.

    ``stateful=False``: the function is pure, which is what lets tf.data save an iterator whose
    pipeline calls it (a stateful py function makes iterator checkpoints fail).
    """
    s = tf.convert_to_tensor(s, tf.string)
    if s.shape.rank == 1:
        return tf.map_fn(
            lambda x: _encode_tf(encode_bytes, x),
            s,
            fn_output_signature=tf.RaggedTensorSpec([None], tf.int32),
        )
    ids = tf.numpy_function(encode_bytes, [s], tf.int32, stateful=False)
    ids.set_shape([None])
    return ids


def _chat_template_text(folder: str, config: Mapping[str, Any]) -> str | None:
    """The default chat template: tokenizer_config.json's, else chat_template.jinja's."""
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the "default" one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
        template = named.get("default")
    if isinstance(template, str):
        return template
    file = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(file):
        with open(file, encoding="utf-8") as f:
            return f.read()
    return None


def _compile_template(text: str):
    """A chat template compiled in jinja2's immutable sandbox (the environment chat templates
    are written for: trimmed blocks, loop controls, ``tojson``, ``raise_exception``)."""
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise HFVocabularyError(f"chat template: {message}")

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(text)
    except TemplateError as e:
        raise HFVocabularyError(f"chat template does not compile: {e}") from None


def inputs_feature(vocabulary: seqio.Vocabulary) -> seqio.Feature:
    """The seqio feature of task inputs: EOS-terminated text, or, for an `HFVocabulary` with its
    chat template on, the rendered chat prompt (no EOS after the generation prompt)."""
    if isinstance(vocabulary, HFVocabulary):
        return seqio.Feature(
            vocabulary.inputs_vocabulary, add_eos=vocabulary.inputs_add_eos, required=False
        )
    return seqio.Feature(vocabulary, add_eos=True, required=False)


# ---------------------------------------------------------------------------------------------
# Model agreement and converters.


@functools.lru_cache(maxsize=8)
def load(spec: str) -> HFVocabulary:
    """``hf:DIR[?chat_template=1]`` -> the vocabulary (one per spec and process)."""
    path, options = parse_spec(spec)
    return HFVocabulary(path, chat_template=options.get("chat_template") == "1")


def check_agrees(
    vocabulary: seqio.Vocabulary,
    model_vocab_size: int,
    special_tokens: Mapping[str, int | Sequence[int] | None] | None = None,
    *,
    tokenizer_ids: bool = False,
) -> None:
    """Raises one line unless the model can use the vocabulary.

    The model's vocabulary size must hold every id; ``special_tokens`` (``{"bos": id, "eos":
    id or [ids], "pad": ..., "unk": ...}``, e.g. `special_tokens_of` a model config; None values
    are skipped) must name the vocabulary's special tokens. Ids are the ones the model reads,
    i.e. ours: the tokenizer's, except for the two of `HFVocabulary.id_swap`. With
    ``tokenizer_ids`` they are the tokenizer's own (a Hugging Face config.json's, before the
    swap), and the message names the tokenizer's ids too.
    """
    size = vocabulary.vocab_size
    name = vocabulary.spec if isinstance(vocabulary, HFVocabulary) else type(vocabulary).__name__
    if model_vocab_size < size:
        raise ValueError(
            f"model vocab_size {model_vocab_size} is smaller than vocabulary {name}'s {size}; "
            f"use a model config with vocab_size >= {size} or the vocabulary the model was "
            "trained with"
        )
    if not isinstance(vocabulary, HFVocabulary):
        return
    for key, model_ids in (special_tokens or {}).items():
        key = key.removesuffix("_token_id").removesuffix("_id")
        if key not in SPECIAL_NAMES:
            raise ValueError(f"unknown special token {key!r}; use one of {SPECIAL_NAMES}")
        # Both sides in one numbering: a config.json's ids are the tokenizer's, a model
        # config's ours (they differ where the tokenizer's id 0 is BOS or EOS).
        want = vocabulary.hf_special_ids[key] if tokenizer_ids else vocabulary._mapped(key)
        if model_ids is None or want is None:
            continue
        ids = [model_ids] if isinstance(model_ids, int) else list(model_ids)
        if want not in ids:
            text = vocabulary._token_of(key)
            raise ValueError(
                f"the model's {key}_token_id {model_ids} differs from the tokenizer's {key} id "
                f"{want} ({text}) in {vocabulary.path}; use the tokenizer published with the "
                "model (the folder it was converted from)"
            )


def special_tokens_of(config: Any) -> dict[str, Any]:
    """A model config's ``bos_token_id`` / ``eos_token_id`` / ``pad_token_id`` / ``unk_token_id``
    fields (the ones it has), for `check_agrees`."""
    fields = {name: getattr(config, f"{name}_token_id", None) for name in SPECIAL_NAMES}
    return {k: v for k, v in fields.items() if v is not None}


def permute_rows(table: np.ndarray, swap: tuple[int, int] | None) -> np.ndarray:
    """A ``[vocab, ...]`` embedding or output table reordered between the tokenizer's ids and
    ours (rows 0 and X trade places; the swap is its own inverse, so import and export both
    call this). Returns the table itself when there is no swap."""
    if swap is None:
        return table
    a, b = swap
    if b >= table.shape[0]:
        raise ValueError(
            f"the vocabulary moves token id 0 to id {b}, past the model's {table.shape[0]} rows; "
            "the model needs a vocab_size above the tokenizer's"
        )
    order = np.arange(table.shape[0])
    order[[a, b]] = order[[b, a]]
    return table[order]
