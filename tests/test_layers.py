"""The layers of ``docs/design.md`` are the layers of the code.

The layers table of ``docs/design.md`` says which adatok layers each layer may import. Two checks:

* every ``import`` of every module under ``src/adatok`` (parsed with ``ast``, so imports inside
  functions count too) goes to the module's own layer or one the table allows;
* every module is imported, lowest layer first, in a fresh interpreter: the adatok modules each
  import loads belong to layers the table allows, and ``import adatok``, the wavelet path
  (encoding and decoding), the evaluation and the command line load no torch and no Ray.

A layer of the code missing from the table, or a planned layer that exists by now, fails the test:
the page must say what is there.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "adatok"
DESIGN = ROOT / "docs" / "design.md"

#: Layers whose modules must import without torch (the neural layer's package ``__init__`` too).
TORCH_FREE = ("adatok", "core", "datasets", "wavelet", "eval", "cli")


def layers_table() -> dict[str, tuple[set[str], bool]]:
    """Layer -> (the layers it may import, whether it is only planned), from ``docs/design.md``."""
    section = DESIGN.read_text(encoding="utf-8").split("\n## Layers\n", 1)[1].split("\n#", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        table[cells[0].strip("`")] = (set(re.findall(r"`(\w+)`", cells[2])), "(planned)" in cells[1])
    assert table, f"no layers table under '## Layers' in {DESIGN}"
    return table


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``adatok.cli.__main__`` left out: it runs the app)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def layer_of(module: str) -> str:
    """``adatok`` for the package itself, else its first part below it (``adatok.eval.runner`` -> eval)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The adatok modules ``module`` imports anywhere in its source (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "adatok"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "adatok":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known  # from X import a_module
            found |= subs if len(subs) == len(node.names) else subs | {target}
    return found


def test_every_layer_of_the_code_is_in_the_table():
    table = layers_table()
    present = {layer_of(m) for m in modules()}
    missing = present - set(table)
    assert not missing, f"layers of src/adatok missing from the layers table of docs/design.md: {sorted(missing)}"
    arrived = sorted(name for name, (_, planned) in table.items() if planned and name in present)
    assert not arrived, f"docs/design.md calls these layers planned, but they exist: {arrived}"
    unknown = {dep for deps, _ in table.values() for dep in deps} - set(table)
    assert not unknown, f"the layers table allows imports of layers it does not list: {sorted(unknown)}"


def test_imports_follow_the_layers():
    table = layers_table()
    mods = modules()
    wrong = []
    for module, path in mods.items():
        layer = layer_of(module)
        allowed = table[layer][0] | {layer}
        for target in sorted(imports_of(module, path, set(mods))):
            if layer_of(target) not in allowed:
                wrong.append(f"{module} imports {target} (layer {layer_of(target)!r}; {layer!r} may import "
                             f"{', '.join(sorted(table[layer][0])) or 'nothing'})")
    assert not wrong, "imports against the layers of docs/design.md:\n" + "\n".join(wrong)


def test_the_import_parser_sees_relative_lazy_and_from_imports(tmp_path):
    """The checker itself: a relative import, one inside a function, ``from adatok import module``."""
    src = tmp_path / "runner.py"
    src.write_text("from ..core.budget import Tokens\nfrom . import report\nimport numpy\n"
                   "def f():\n    import adatok.cli\n    from adatok import AdatokError, wavelet\n")
    found = imports_of("adatok.eval.runner", src, {"adatok.eval.report", "adatok.wavelet"})
    assert found == {"adatok.core.budget", "adatok.eval.report", "adatok.cli", "adatok", "adatok.wavelet"}


_PROBE = r"""
import importlib, json, sys
torch_free, rest = json.loads(sys.argv[1]), json.loads(sys.argv[2])

def loaded():
    return {m for m in sys.modules if m == "adatok" or m.startswith("adatok.")}

def load(names):
    for name in names:
        before = loaded()
        importlib.import_module(name)
        new[name] = sorted(loaded() - before)
        for heavy in ("torch", "ray"):
            assert name in rest or heavy not in sys.modules, f"importing {name} imported {heavy}"

before, new = loaded(), {}
import adatok
new["adatok"] = sorted(loaded() - before)
load(torch_free)
import numpy as np
for tok_name in ("wavelet", "wavelet-lossless"):  # the wavelet path, run
    tok = adatok.load(tok_name)
    img = (np.arange(12 * 10 * 3) % 251).astype(np.uint8).reshape(12, 10, 3)
    seq = adatok.TokenSequence.from_bytes(tok.encode([img], adatok.Tokens(300))[0].to_bytes())
    tok.decode([seq.prefix(100)])
assert "torch" not in sys.modules and "ray" not in sys.modules, "the wavelet path imported torch or ray"
load(rest)
print(json.dumps(new))
"""


def test_importing_each_module_loads_only_allowed_layers_and_no_torch():
    table = layers_table()
    mods = sorted(modules())
    rank = {name: i for i, name in enumerate(table)}  # the table lists layers lowest first
    torch_free = [m for m in mods if layer_of(m) in TORCH_FREE or m == "adatok.neural"]
    order = sorted((m for m in torch_free if m != "adatok"), key=lambda m: (rank[layer_of(m)], m))
    rest = [m for m in mods if m not in torch_free] if importlib.util.find_spec("torch") is not None else []
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(order), json.dumps(rest)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout.splitlines()[-1])
    assert set(new) == {"adatok", *order, *rest}
    wrong = []
    for module, loaded in new.items():
        layer = layer_of(module)
        allowed = table[layer][0] | {layer}
        wrong += [f"importing {module} loads {m}" for m in loaded if layer_of(m) not in allowed]
    assert not wrong, "imports against the layers of docs/design.md:\n" + "\n".join(wrong)

