from setuptools import find_packages, setup

setup(
    name="funasr_lite",
    version="0.1.0",
    description="Kaldi-style recipes for Paraformer (non-autoregressive ASR): data prep, "
    "features, training, decoding, AISHELL benchmarks",
    packages=find_packages(include=["funasr_lite", "funasr_lite.*"]),
    python_requires=">=3.10",
    # Pinned versions live in requirements.txt (tools/setup.sh installs them).
    install_requires=[],
    entry_points={"console_scripts": []},
)
