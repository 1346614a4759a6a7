"""flan_jax: FLAN-style instruction tuning and zero-shot evaluation on JAX."""

import pathlib
import shutil

import setuptools
from setuptools.command.build_py import build_py


class BuildPyWithGin(build_py):
    """Copies the top-level gin/ folder into the wheel as flan_jax/gin_configs/.

    gin/ is not a Python package (a top-level `gin` package would shadow gin-config when the repo
    root is on sys.path); editable installs read it from the source tree instead.
    """

    def run(self):
        super().run()
        target = pathlib.Path(self.build_lib) / "flan_jax" / "gin_configs"
        for src in pathlib.Path("gin").rglob("*.gin"):
            dst = target / src.relative_to("gin")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


setuptools.setup(
    name="flan_jax",
    version="0.1.0",
    description="FLAN-style instruction tuning and held-out-cluster evaluation, JAX-native.",
    python_requires=">=3.11,<3.12",
    # `tasks/`, `mixtures/` and `gin/` live at the top of the repo (where users add their own), but
    # install inside the `flan_jax` namespace so no generic top-level name lands in site-packages.
    packages=[
        "flan_jax",
        "flan_jax.models",
        "flan_jax.cli",
        "flan_jax.conversion",
        "flan_jax.evaluation",
        "flan_jax.tasks",
        "flan_jax.tasks.flan2021",
        "flan_jax.mixtures",
    ],
    package_dir={
        "flan_jax": "flan_jax",
        "flan_jax.tasks": "tasks",
        "flan_jax.mixtures": "mixtures",
    },
    cmdclass={"build_py": BuildPyWithGin},
    install_requires=[
        "jax>=0.10,<0.11",
        "jaxlib>=0.10,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "seqio>=0.0.20",
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10,<5",
        "gin-config>=0.5,<0.6",
        "sentencepiece>=0.2,<0.3",
        "clu>=0.0.12",
        "sacrebleu>=2.4",
        "rouge-score>=0.1.2",
        "scikit-learn>=1.5",
        "scipy>=1.13",
        "matplotlib>=3.9",
        "tqdm>=4.66",
        "pyyaml>=6",
        "jinja2>=3.1",
        "safetensors>=0.4",
        "tensorboard>=2.21,<2.22",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.6", "ruff>=0.6", "import-linter>=2.1"],
        # torch (CPU) + transformers: the reference implementation for parity tests and benches.
        "reference": ["torch==2.13.0", "transformers>=4.46"],
    },
    entry_points={"console_scripts": ["flan-jax=flan_jax.cli:main"]},
)
