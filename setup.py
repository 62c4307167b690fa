import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.path.join(HERE, "funasr_lite", "bin")


def console_scripts():
    """One ``funasr-lite-<tool>`` command per entry point module funasr_lite/bin/<tool>.py (each
    has ``main()``), listed from the directory so that a new tool cannot be forgotten here."""
    names = sorted(f[:-3] for f in os.listdir(BIN_DIR) if f.endswith(".py") and not f.startswith("_"))
    return [f"funasr-lite-{name.replace('_', '-')} = funasr_lite.bin.{name}:main" for name in names]


setup(
    name="funasr_lite",
    version="0.1.0",
    description="Kaldi-style recipes for Paraformer (non-autoregressive ASR): data prep, "
    "features, training, decoding, AISHELL benchmarks",
    packages=find_packages(include=["funasr_lite", "funasr_lite.*"]),
    python_requires=">=3.10",
    # Compatible ranges (the APIs the code uses, up to the next major version). The exact,
    # tested versions are pinned in requirements.txt, which tools/setup.sh installs (it installs
    # this package with --no-deps).
    install_requires=[
        "torch>=2.1,<3",
        "torchaudio>=2.1,<3",
        "kaldiio>=2.17,<3",
        "numpy>=1.24,<3",
        "sentencepiece>=0.1.99,<1",
        "tensorboard>=2.10,<3",
        "jiwer>=3.0,<5",
        "soundfile>=0.12,<1",
        "PyYAML>=6.0,<7",
        "tqdm>=4.60,<5",
        "pypinyin>=0.49,<1",
        "matplotlib>=3.7,<4",
        "onnx>=1.14,<2",  # funasr_lite.bin.export
        "onnxruntime>=1.16,<2",  # infer --backend onnx
    ],
    entry_points={"console_scripts": console_scripts()},
)
