"""The images benchmarks/run.py builds with imagewright; harness/dockerfile.py writes the
matching Dockerfiles for BuildKit and Podman.

run.py builds these from a scratch copy of this directory, because `config.yaml` is relative
to the working directory and the harness edits it. The harness also reads the constants below,
so every builder installs the same packages with the same commands.
"""

import os

import imagewright as modal

PYTHON_VERSION = "3.11"
# The seed's data-processing image (examples/complete.py::data_image).
APT_PACKAGES = ("postgresql-client", "libpq-dev")
UV_PACKAGES = (
    "pandas==2.1.0",
    "numpy==1.24.0",
    "sqlalchemy==2.0.0",
    "psycopg2-binary==2.9.9",
    "pyarrow==13.0.0",
    "duckdb==0.9.0",
)
CONFIG_FILE = ("config.yaml", "/app/config.yaml")
# The uv-warm scenario adds one small package; the harness sets a different one per rebuild.
EXTRA_PACKAGE = os.environ.get("BENCH_EXTRA_PACKAGE", "idna==3.10")
# The small 6-step image: base, apt, uv, env and two run_commands.
SMALL_APT_PACKAGES = ("jq",)
SMALL_UV_PACKAGES = ("six==1.16.0",)
SMALL_ENV = {"BENCH_IMAGE": "small"}
SMALL_COMMANDS = ("echo one > /one", "echo two > /two")

base = modal.Image.debian_slim(python_version=PYTHON_VERSION)

data = base.apt_install(*APT_PACKAGES).uv_pip_install(*UV_PACKAGES)

data_config = data.copy_local_file(*CONFIG_FILE)

data_extra = base.apt_install(*APT_PACKAGES).uv_pip_install(*UV_PACKAGES, EXTRA_PACKAGE)

small = (
    base.apt_install(*SMALL_APT_PACKAGES)
    .uv_pip_install(*SMALL_UV_PACKAGES)
    .env(SMALL_ENV)
    .run_commands(SMALL_COMMANDS[0])
    .run_commands(SMALL_COMMANDS[1])
)
