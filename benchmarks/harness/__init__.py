"""The benchmark harness behind benchmarks/run.py: each side's driver and each scenario.

`common` holds the work directory's layout and the timed subprocess; `imagewright`, `docker`
and `podman` drive each side (build, call, export), on top of `engines` (what a builder and a
caller must do, and the parts BuildKit and Podman share) and `dockerfile` (the Dockerfiles both
build); `registry` runs the private registries; `scenarios/` holds one module per group of
scenarios; `report` prints the tables and the machine's facts, with `units` writing the
numbers.
"""

import sys
from pathlib import Path

# The private dockerd and podman store are set up as the tests set them up
# (tests/integration/*_helpers.py): one recipe for both, importable once the repository is.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
