"""Seed, "Complete Examples": ML, data-processing and web-scraping images.

    imagewright build examples/complete.py::data_image     (about 150 MB of wheels)
(`ml_image` downloads several GB.)
"""

import imagewright as modal

ml_image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("git", "wget", "libsm6", "libxext6")
    .uv_pip_install(
        "torch==2.1.0",
        "torchvision==0.16.0",
        "transformers==4.35.0",
        "accelerate==0.24.0",
        "bitsandbytes==0.41.0",
        "datasets==2.14.0",
        "evaluate==0.4.1",
        "tensorboard==2.15.0",
    )
    .env({"HF_HOME": "/cache/huggingface", "TORCH_HOME": "/cache/torch"})
)

data_image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("postgresql-client", "libpq-dev")
    .uv_pip_install(
        "pandas==2.1.0",
        "numpy==1.24.0",
        "sqlalchemy==2.0.0",
        "psycopg2-binary==2.9.9",
        "pyarrow==13.0.0",
        "duckdb==0.9.0",
    )
)

scraping_image = (
    modal.Image.debian_slim()
    .apt_install("chromium", "chromium-driver")
    .uv_pip_install("selenium==4.15.0", "beautifulsoup4==4.12.0", "requests==2.31.0", "lxml==4.9.0")
)
