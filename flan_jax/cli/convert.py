"""`flan-jax convert`: Hugging Face / T5X checkpoints in, Hugging Face out."""

from __future__ import annotations

import argparse
import json

from etils import epath

from flan_jax import conversion, partitioning


def cmd_convert(args: argparse.Namespace) -> None:
    """`--from hf|t5x SRC OUT` writes our checkpoint; `--to hf CHECKPOINT OUT` exports one."""
    if args.to_format:
        config = None
        if args.model_config:
            try:
                config = conversion.config_from_json(
                    json.loads(epath.Path(args.model_config).read_text())
                )
            except (TypeError, KeyError, json.JSONDecodeError) as e:
                raise conversion.ConversionError(f"--model_config {args.model_config}: {e}") from e
        out = conversion.export_hf(args.src, args.out, config=config)
        print(f"wrote {out}/config.json and safetensors weights (loadable with transformers)")
        return
    if epath.Path(args.out).exists():
        raise conversion.ConversionError(f"output {args.out} already exists; choose a new path")
    mesh = None
    if args.model_parallel > 1:
        mesh = partitioning.make_mesh(partitioning.MeshConfig(data=-1, model=args.model_parallel))
    if args.from_format == "hf":
        model = conversion.import_hf(args.src, mesh=mesh, param_dtype=args.dtype)
    else:
        model = conversion.import_t5x(
            args.src,
            mesh=mesh,
            param_dtype=args.dtype,
            relative_attention_max_distance=args.max_distance,
        )
    if args.vocabulary:
        model.vocabulary = args.vocabulary
    conversion.save_imported(args.out, model)
    print(
        f"wrote {args.out}: {conversion.describe(model.config)}, vocabulary {model.vocabulary}; "
        "use it as INITIAL_CHECKPOINT_PATH"
    )
