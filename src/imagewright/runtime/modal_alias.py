"""`import modal` in programs imagewright runs: the name resolves to imagewright.

Modal's own programs say `import modal`, `from modal import App` or `import modal.queue`. When
imagewright runs one (`imagewright run`, `build`, ... on the host, and the bootstrap inside its
containers), `modal` and each `modal.X` are imagewright and `imagewright.X`: the same module
objects, so `modal.App is imagewright.App`. A Modal client installed next to it is not used
there: the program runs on imagewright either way, on both sides.

Nothing changes for other code: the alias is a finder consulted first for names under
`modal`, installed only by those two entry points. Imported inside containers: standard
library only, Python 3.9 syntax.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["install"]

_ALIAS, _TARGET = "modal", "imagewright"


class _ModalAlias:
    """Finds `modal[.X]` as `imagewright[.X]`, and loads it as that very module (a finder and
    loader by their protocols; importlib.abc would cost every container start an import)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        real = _TARGET + fullname[len(_ALIAS) :]
        if real not in sys.modules and importlib.util.find_spec(real) is None:
            return None  # `modal.nothing`: a plain ModuleNotFoundError
        # (typeshed's loader protocol asks for the legacy load_module too; imports don't)
        return importlib.util.spec_from_loader(fullname, self)  # type: ignore[arg-type]

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # the real module, not a copy: its attributes (__name__, __spec__) stay its own
        return importlib.import_module(_TARGET + spec.name[len(_ALIAS) :])

    def exec_module(self, module: ModuleType) -> None:
        """Already executed, as imagewright's own module."""


def install() -> None:
    """Make `modal` mean imagewright in this interpreter, ahead of any installed Modal."""
    if not any(isinstance(finder, _ModalAlias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ModalAlias())
    for name in [n for n in sys.modules if n == _ALIAS or n.startswith(_ALIAS + ".")]:
        if not getattr(sys.modules[name], "__name__", "").startswith(_TARGET):
            del sys.modules[name]  # a real Modal imported earlier: the program gets ours
