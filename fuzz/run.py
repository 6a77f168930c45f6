"""Run one fuzz target under atheris (libFuzzer): ``python fuzz/run.py TARGET [libFuzzer options] [corpus folders]``.

``make fuzz`` runs every target in turn for ``FUZZ_SECONDS`` each; for a long campaign, run this
directly (see docs/reliability.md). adatok's Python code is instrumented for coverage (the
compiled numba functions cannot be: their modules are imported plainly, then their Python
functions and methods instrumented one by one), and, for the ``image`` target, Pillow's. The
first corpus folder (where new inputs go) is made when it is missing. A failing input is written
where ``-artifact_prefix`` says; it becomes a regression input in ``fuzz/regressions/TARGET/``
(replayed by ``tests/test_fuzz.py``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent


def numba_modules() -> list[str]:
    """adatok's modules with numba-compiled functions, left out of the instrumentation: numba
    compiles from a function's bytecode, which instrumentation would change."""
    import importlib.util

    root = Path(importlib.util.find_spec("adatok").origin).parent
    return [".".join(("adatok", *p.relative_to(root).with_suffix("").parts)) for p in sorted(root.rglob("*.py"))
            if re.search(r"^(from|import) numba", p.read_text(encoding="utf-8"), re.M)]


def instrument_plain(modules: list[str]) -> int:
    """Instrument the plain Python functions and methods of the ``modules`` left out above (a
    tokenizer's header checks live beside its compiled kernels), leaving every numba-compiled
    function and the Python function it compiles from as they are. Returns how many were."""
    import importlib
    import types

    from numba.core.typing.templates import builtin_registry

    done = 0
    for name in modules:
        mod = importlib.import_module(name)
        # numba's @overload implementations stay plain too: they return the functions numba compiles
        # (instrumented ones fail to compile once the on-disk cache is cold); registered on import
        overloads = {id(getattr(t, "_overload_func", None)) for t in builtin_registry.functions}
        compiled = {id(getattr(v, "py_func", None)) for v in vars(mod).values()}

        def plain(f, name=name, compiled=compiled, overloads=overloads) -> bool:
            return isinstance(f, types.FunctionType) and f.__module__ == name and id(f) not in compiled | overloads

        for value in list(vars(mod).values()):
            found = [value]
            if isinstance(value, type) and value.__module__ == name:
                for member in vars(value).values():
                    member = getattr(member, "__func__", member)  # staticmethod, classmethod
                    found += [member.fget, member.fset] if isinstance(member, property) else [member]
            for f in found:
                if plain(f):
                    atheris.instrument_func(f)
                    done += 1
    return done


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit(f"usage: {argv[0]} TARGET [libFuzzer options] [corpus folders]")
    name = argv[1]
    sys.path.insert(0, str(HERE))
    include = ["adatok"] + (["PIL"] if name in ("image", "serve_image") else [])
    compiled = numba_modules()
    with atheris.instrument_imports(include=include, exclude=compiled):
        import adatok  # noqa: F401  (instrumented here, before the targets import it)
        import targets

        if name in ("image", "serve_image"):  # Pillow imports its plugins on first use: import them here
            from PIL import Image

            Image.init()
    instrument_plain(compiled)
    if name not in targets.TARGETS:
        sys.exit(f"unknown target {name!r}: one of {', '.join(targets.TARGETS)}")
    try:  # one thread for the learned tokenizer's model: a fuzzer is one process on one core
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    folders = [a for a in argv[2:] if not a.startswith("-")]
    if folders and not os.path.exists(folders[0]):  # libFuzzer writes new inputs to the first corpus folder,
        Path(folders[0]).mkdir(parents=True)          # and stops when it is missing (a file: an input to replay)
    with targets.limits():
        atheris.Setup([argv[0], *argv[2:]], targets.TARGETS[name])
        atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
