"""Seed, "Python Package Installation": uv_pip_install in its forms.

    imagewright build examples/python_packages.py::single
    imagewright build examples/python_packages.py::from_requirements
(`pinned` downloads about 3 GB: torch 2.1.0 with CUDA.)
"""

from pathlib import Path

import imagewright as modal

HERE = Path(__file__).parent

single = modal.Image.debian_slim().uv_pip_install("requests")

multiple = modal.Image.debian_slim().uv_pip_install("numpy", "pandas", "scikit-learn")

pinned = modal.Image.debian_slim().uv_pip_install(
    "torch==2.1.0", "transformers==4.35.0", "accelerate==0.24.0"
)

from_requirements = modal.Image.debian_slim().uv_pip_install_from_requirements(
    str(HERE / "requirements.txt")
)
