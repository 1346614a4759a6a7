"""Standalone evaluation and ad-hoc inference from a checkpoint (``flan-jax eval`` / ``infer``).

``evaluate`` loads params from a checkpoint straight onto the job's layout (mesh + rules, built
once) and runs seqio evaluation of the held-out clusters (and, optionally, the held-in ones) on
the validation (dev) and test splits, writing the FLAN-style report (JSON, markdown, PNG per
cluster) and per-example outputs beside it.
``infer`` answers free-form prompts, scoring given options by rank classification.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import seqio
from etils import epath

from flan_jax import (
    catalog,
    checkpoints,
    hf_vocab,
    mixing,
    models,
    naming,
    partitioning,
    run_dir,
    vocab,
)
from flan_jax.evaluation import decoding, evaluator, scoring

log = logging.getLogger("flan_jax.evaluation.jobs")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and with which model (gin binds it from the experiment's macros).

    Attributes:
      checkpoint_path: CHECKPOINT_PATH: ``MODEL_DIR/<step>``, or a MODEL_DIR (its latest step).
      mixture_or_task_name: a training mixture ``<c>:heldout_X:train`` (its held-out clusters are
        evaluated), an eval mixture, or a task.
      include_heldin: also evaluate every held-in cluster of a held-out training mixture.
      heldin_clusters: only these held-in clusters (default: all of them).
      output_dir: where reports go (default ``MODEL_DIR/eval/step_<N>``).
      num_examples: cap on examples (rows for rank tasks) per task and split.
      vocabulary: VOCABULARY: ``byte``, ``t5``, a SentencePiece ``.model`` path or ``hf:DIR``
        (the one the model was trained with); the tasks are registered with it, ``infer`` encodes with it.
      bucket: sort examples by length into padded-length buckets (the same results, less
        padding); False pads every batch to the task feature lengths.
    """

    checkpoint_path: str
    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    model: models.ModelConfig = dataclasses.field(default_factory=models.default_config)
    mesh: partitioning.MeshConfig = dataclasses.field(default_factory=partitioning.MeshConfig)
    batch_size: int = 32
    splits: tuple[str, ...] = ("validation", "test")
    include_heldin: bool = False
    heldin_clusters: tuple[str, ...] | None = None
    output_dir: str | None = None
    num_examples: int | None = None
    length_normalize: bool = False
    decode_method: str = "greedy"
    num_beams: int = 4
    vocabulary: str = "byte"
    bucket: bool = True

    @property
    def decode_config(self) -> decoding.DecodeConfig:
        """How generative tasks are decoded (`decode_method`, `num_beams`)."""
        return decoding.DecodeConfig(method=self.decode_method, num_beams=self.num_beams)


def resolve_checkpoint(path: str) -> tuple[str, int | None]:
    """``MODEL_DIR/<step>`` as given, or a MODEL_DIR's newest committed, intact step."""
    p = epath.Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"checkpoint path {path} does not exist; pass MODEL_DIR/<step> of a training run "
            "(or the MODEL_DIR itself for its latest checkpoint)"
        )
    if p.name.isdigit() and checkpoints.is_committed(p):
        return str(p), int(p.name)
    steps = checkpoints.committed_steps(p)
    for step in reversed(steps):  # the newest intact one: a corrupted step is skipped
        problem = checkpoints.verify(p / str(step))
        if problem is None:
            return str(p / str(step)), step
        log.warning("skipping checkpoint %s: %s", p / str(step), problem)
    if steps:
        raise checkpoints.CheckpointCorrupted(
            f"every checkpoint in {path} is corrupted (steps {steps}); nothing to evaluate"
        )
    return str(p), None  # a params-only checkpoint (e.g. converted from Hugging Face)


def eval_names(
    name: str,
    vocabulary: seqio.Vocabulary,
    include_heldin: bool = False,
    heldin_clusters: Sequence[str] | None = None,
) -> list[str]:
    """The eval mixtures a name stands for (see EvalConfig.mixture_or_task_name)."""
    parsed = naming.parse_name(name)
    if not (parsed.is_mixture and parsed.kind == "train" and parsed.heldout):
        return [name]
    names = [naming.mixture_name(parsed.collection, parsed.heldout, "eval")]
    if include_heldin:
        collection = catalog.get_collection(parsed.collection, vocabulary)
        plan = mixing.plan_heldout(collection, parsed.heldout)
        trained = {s.cluster for s in plan.train_datasets}
        for cluster in heldin_clusters or ():
            if cluster not in trained:
                raise ValueError(
                    f"held-in cluster '{cluster}' is not trained by {name}; "
                    f"choose from: {', '.join(c for c in collection.clusters if c in trained)}"
                )
        for cluster in collection.clusters:
            if cluster in trained and (heldin_clusters is None or cluster in heldin_clusters):
                mixing.register_heldout_mixtures(collection, (cluster,))
                names.append(naming.mixture_name(parsed.collection, (cluster,), "eval"))
    return names


def load_params(config: models.ModelConfig, path: str, layout: partitioning.Layout) -> Any:
    """Params of a checkpoint, restored straight onto the layout by their logical axes (the
    one placement of an evaluation)."""
    target = layout.abstract_on_mesh(models.abstract_params(config))
    return checkpoints.restore_params(path, target)


def evaluate(cfg: EvalConfig, layout: partitioning.Layout | None = None) -> dict[str, Any]:
    """Evaluates a checkpoint; returns evaluator.evaluate_mixture's result plus paths.

    `layout` is the job's mesh and rules (default: built once from ``cfg.mesh``).
    """
    path, step = resolve_checkpoint(cfg.checkpoint_path)
    vocabulary = vocab.get_vocabulary(cfg.vocabulary)
    check_vocabulary(cfg, vocabulary)
    check_model(cfg, path)
    names = eval_names(
        cfg.mixture_or_task_name, vocabulary, cfg.include_heldin, cfg.heldin_clusters
    )
    for name in names:
        # Bad names/splits fail before compiling.
        evaluator.resolve_eval_tasks(name, cfg.splits, vocabulary)
    partitioning.init_distributed()  # a pod slice's hosts join here (no-op on one host)
    layout = layout or partitioning.Layout.build(cfg.mesh)
    model = models.build_model(cfg.model)
    params = load_params(cfg.model, path, layout)
    # Reports go beside the checkpoint: MODEL_DIR/eval/step_<n> (or eval/params).
    out_dir = cfg.output_dir or run_dir.RunDir(os.path.dirname(path.rstrip("/"))).eval_dir(step)
    log.info("evaluating %s on %s -> %s", path, ", ".join(names), out_dir)
    decode = cfg.decode_config
    results = evaluator.evaluate_mixture(
        model,
        params,
        layout,
        names,
        cfg.task_feature_lengths,
        cfg.splits,
        cfg.batch_size,
        out_dir,
        vocabulary=vocabulary,
        num_examples=cfg.num_examples,
        decode_config=decode,
        normalize=cfg.length_normalize,
        bucket=cfg.bucket,
    )
    results["out_dir"] = out_dir
    results["checkpoint"] = path
    results["names"] = names
    return results


def chance_levels(names: Sequence[str], vocabulary: seqio.Vocabulary) -> dict[str, float]:
    """Per dataset: expected accuracy of a uniform random choice among its options (percent)."""
    chance = {}
    for name in names:
        provider = catalog.get_task_or_mixture(name, vocabulary)
        tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
        for task in tasks:
            parsed = naming.parse_name(task.name)
            if not parsed.rank or parsed.dataset in chance:
                continue
            ds = task.get_dataset(None, split="test", shuffle=False)
            sizes: dict[int, int] = {}
            for ex in ds.as_numpy_iterator():
                sizes[int(ex["idx"])] = sizes.get(int(ex["idx"]), 0) + 1
            chance[parsed.dataset] = 100.0 * float(np.mean([1.0 / n for n in sizes.values()]))
    return chance


def eval_names_for_summary(results: Mapping[str, Any]) -> list[str]:
    """The eval mixtures behind a result (for chance levels)."""
    if "names" in results:
        return list(results["names"])
    return sorted({t for split in results["metrics"].values() for t in split})


def format_summary(
    summary: Mapping[str, Any], chance: Mapping[str, float], heldout: Sequence[str]
) -> str:
    """A console table: per dataset and cluster, mean over templates and best-dev template."""
    lines = [
        f"{'cluster':<12} {'dataset':<18} {'held out':>8} {'mean':>7} {'best-dev':>9} {'chance':>7}",
    ]
    for cluster, c in summary["clusters"].items():
        for name in c["datasets"]:
            d = summary["datasets"][name]
            best = "-" if d["best_dev"] is None else f"{d['best_dev']:.1f}"
            ch = f"{chance[name]:.1f}" if name in chance else "-"
            tag = "yes" if cluster in heldout else "no"
            lines.append(f"{cluster:<12} {name:<18} {tag:>8} {d['mean']:>7.1f} {best:>9} {ch:>7}")
        best = "-" if c["best_dev"] is None else f"{c['best_dev']:.1f}"
        lines.append(f"{cluster:<12} {'(cluster mean)':<18} {'':>8} {c['mean']:>7.1f} {best:>9}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Ad-hoc inference.


def infer(
    cfg: EvalConfig,
    prompts: Sequence[Mapping[str, Any]],
    layout: partitioning.Layout | None = None,
) -> list[dict[str, Any]]:
    """Answers ``{"prompt": str, "options": [str] (optional)}`` records.

    Every prompt gets a greedy (or configured) decode; prompts with options also get each
    option's summed log-likelihood and the rank-classification choice. Text is encoded and
    decoded with ``cfg.vocabulary``; `layout` defaults to one built from ``cfg.mesh``.
    """
    vocabulary = vocab.get_vocabulary(cfg.vocabulary)
    path, _ = resolve_checkpoint(cfg.checkpoint_path)
    check_vocabulary(cfg, vocabulary)
    check_model(cfg, path)
    partitioning.init_distributed()
    layout = layout or partitioning.Layout.build(cfg.mesh)
    model = models.build_model(cfg.model)
    params = load_params(cfg.model, path, layout)
    lengths = {k: int(v) for k, v in cfg.task_feature_lengths.items()}
    eos = vocabulary.eos_id
    prompt = hf_vocab.inputs_feature(vocabulary)  # as tasks tokenize inputs (chat template)

    def encode(text: str, length: int, feature: seqio.Feature | None = None) -> list[int]:
        feature = feature or seqio.Feature(vocabulary, add_eos=True)
        ids = list(feature.vocabulary.encode(text))[: length - feature.add_eos]
        return ids + [eos] * feature.add_eos

    for i, p in enumerate(prompts):
        check_prompt(p, f"prompt {i}")
    inputs = [encode(p["prompt"], lengths["inputs"], prompt) for p in prompts]
    decode = cfg.decode_config
    outputs = decoding.decode_rows(model, params, inputs, layout, cfg.batch_size, lengths, decode)
    rows, owners = [], []
    for i, p in enumerate(prompts):
        for option in p.get("options") or ():
            rows.append({"inputs": inputs[i], "targets": encode(option, lengths["targets"])})
            owners.append(i)
    scores = (
        scoring.score_rows(model, params, rows, layout, cfg.batch_size, lengths) if rows else []
    )
    results = []
    for i, p in enumerate(prompts):
        out = {
            "prompt": p["prompt"],
            "prediction": vocabulary.decode(decoding.trim_at_eos(outputs[i].tolist(), eos)),
        }
        rows_of_prompt = [k for k, owner in enumerate(owners) if owner == i]
        mine = [
            (o, float(scores[k]))
            for o, k in zip(p.get("options") or (), rows_of_prompt, strict=True)
        ]
        if mine:
            out["option_scores"] = dict(mine)
            out["choice"] = max(mine, key=lambda x: x[1])[0]
        results.append(out)
    return results


def check_vocabulary(cfg: EvalConfig, vocabulary: seqio.Vocabulary) -> None:
    """One line unless the model can read the vocabulary's ids (size; a Hugging Face
    tokenizer's special tokens too)."""
    hf_vocab.check_agrees(vocabulary, cfg.model.vocab_size, hf_vocab.special_tokens_of(cfg.model))


def check_model(cfg: EvalConfig, path: Any) -> None:
    """One line unless MODEL is the model recorded with an imported checkpoint (its
    model_config.json); training checkpoints carry none and are checked when restored."""
    from flan_jax import conversion

    conversion.check_initial_checkpoint(path, cfg.model, setting="CHECKPOINT_PATH")


def check_prompt(record: Any, where: str) -> None:
    """One prompt record: an object with a non-empty "prompt" string and, optionally,
    "options": a list of at least two strings (rank classification needs a choice)."""
    example = '{"prompt": "...", "options": ["yes", "no"]}'
    if not isinstance(record, Mapping):
        raise ValueError(f"{where} is a {type(record).__name__}, not an object like {example}")
    unknown = sorted(set(record) - {"prompt", "options"})
    if unknown:
        raise ValueError(f"{where} has unknown key {unknown[0]!r}; records look like {example}")
    if not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
        raise ValueError(f'{where} has no "prompt" text; records look like {example}')
    if "options" in record:
        options = record["options"]
        if (
            not isinstance(options, list)
            or len(options) < 2
            or not all(isinstance(o, str) and o for o in options)
        ):
            raise ValueError(
                f'{where}: "options" must be a list of at least two non-empty strings '
                f"(got {options!r}); e.g. {example}"
            )


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Prompt records of a JSONL file, each checked (errors name the file and line)."""
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {n} is not JSON: {e.msg}") from None
                check_prompt(record, f"{path} line {n}")
                records.append(record)
    if not records:
        raise ValueError(f"{path} holds no prompts; write one JSON object per line")
    return records
