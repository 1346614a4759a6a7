"""`flan-jax convert`: Hugging Face / T5X checkpoints in, Hugging Face out.

    flan-jax convert --from hf  HF_DIR      OUT   # config.json + *.safetensors -> params checkpoint
    flan-jax convert --from t5x T5X_DIR     OUT   # `checkpoint` msgpack + zarr arrays (local, gs://)
    flan-jax convert --to hf    CHECKPOINT  OUT   # -> config.json + model.safetensors (transformers)

An imported OUT is a params-only checkpoint usable as INITIAL_CHECKPOINT_PATH, with
`model_config.json` beside the arrays (model family, config, vocabulary). The conversion itself
lives in `flan_jax.conversion` (one converter per model family).
"""

from __future__ import annotations

import argparse
import json

from etils import epath

from flan_jax import conversion, partitioning


def cmd_convert(args: argparse.Namespace) -> None:
    """`--from hf|t5x SRC OUT` writes our checkpoint; `--to hf CHECKPOINT OUT` exports one."""
    if args.to_format:
        config, vocabulary = None, None
        if args.model_config:
            try:
                record = json.loads(epath.Path(args.model_config).read_text())
            except json.JSONDecodeError as e:
                raise conversion.ConversionError(f"--model_config {args.model_config}: {e}") from e
            # Our model_config.json, or bare config fields (a T5 config when no family is named).
            config = conversion.config_from_json(record)
            vocabulary = record.get("vocabulary")
        out = conversion.export_hf(args.src, args.out, config=config, vocabulary=vocabulary)
        architecture = json.loads((out / "config.json").read_text())["architectures"][0]
        print(f"wrote {out}/config.json and safetensors weights (transformers {architecture})")
        return
    if epath.Path(args.out).exists():
        raise conversion.ConversionError(f"output {args.out} already exists; choose a new path")
    layout = None
    if args.model_parallel > 1:
        layout = partitioning.Layout.build(
            partitioning.MeshConfig(data=-1, model=args.model_parallel)
        )
    if args.from_format == "hf":
        model = conversion.import_hf(args.src, layout=layout, param_dtype=args.dtype)
    else:
        model = conversion.import_t5x(
            args.src,
            layout=layout,
            param_dtype=args.dtype,
            relative_attention_max_distance=args.max_distance,
        )
    if args.vocabulary:
        model.vocabulary = args.vocabulary
    conversion.save_imported(args.out, model)
    # The recorded vocabulary: an `hf:` one names the tokenizer files copied beside the weights.
    _, vocabulary = conversion.read_model_config(args.out)
    print(
        f"wrote {args.out}: {conversion.describe(model.config)}, vocabulary {vocabulary}; "
        "use it as INITIAL_CHECKPOINT_PATH"
    )
