"""The quick-start image: Debian slim with Python 3.11, git, numpy and an env var.

imagewright build examples/quickstart.py
imagewright shell examples/quickstart.py --cmd 'python -c "import numpy; print(numpy.__version__)"'
"""

import imagewright as modal

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("git")
    .uv_pip_install("numpy")
    .env({"GREETING": "hello from imagewright"})
)
