"""tfbio: biologically plausible credit assignment for TensorFlow / Keras 3.

TensorFlow itself is an extra so that one environment never holds both
``tensorflow`` and ``tensorflow-cpu``:

    pip install -e '.[cpu]'    # CPU-only machines: tensorflow-cpu
    pip install -e '.[gpu]'    # NVIDIA GPUs: tensorflow[and-cuda]
    pip install -e '.[tf]'     # plain tensorflow wheel (e.g. aarch64, macOS)
    pip install -e .           # bring your own TensorFlow 2.16–2.21

tensorflow-addons is deliberately absent (end-of-life; does not import with
Keras 3).
"""

from setuptools import find_packages, setup

TF_RANGE = ">=2.16,<2.22"

setup(
    name="tfbio",
    version="0.1.0",
    description=("Keras 3 layers, models and binaries for biologically "
                 "plausible credit assignment (sign-symmetry, feedback "
                 "alignment, updated random feedback, target propagation)."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfbio", "tfbio.*"]),
    # The console scripts' launcher: sets TensorFlow's logging before
    # `import tfbio` loads TensorFlow (tfbio_launcher.py).
    py_modules=["tfbio_launcher"],
    install_requires=[
        "keras>=3.0",
        "absl-py",
        "ml-collections",
        "tensorflow-datasets",
        "importlib_resources",  # tfds 4.9.10 imports it but does not require it
        "pycocotools",
        "numpy",
        "scikit-learn",  # the offline `digits` dataset of tfbio.data
        "matplotlib",  # tfbio.analysis plots
        "tensorboard",  # tf.summary in tfbio-train (not in tensorflow-cpu)
    ],
    entry_points={
        "console_scripts": [
            "tfbio-train=tfbio_launcher:train",
            "tfbio-eval=tfbio_launcher:evaluate",
            "tfbio-export=tfbio_launcher:export",
            "tfbio-sweep=tfbio_launcher:sweep",
        ],
    },
    extras_require={
        "cpu": [f"tensorflow-cpu{TF_RANGE}"],
        "gpu": [f"tensorflow[and-cuda]{TF_RANGE}"],
        "tf": [f"tensorflow{TF_RANGE}"],
        "test": ["pytest"],
    },
)
