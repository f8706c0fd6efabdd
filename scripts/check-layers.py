#!/usr/bin/env python3
"""Fails when a module of src/ uses a layer above its own.

The layers, lowest first (docs/ARCHITECTURE.md has the map):

    core -> config -> policy -> exec -> pool -> runtime
    core -> tensor (named tensors and the input check; used by the backends)
    core, config, tensor -> openvino, remote (the backends; used by pool)
    core -> metrics (Prometheus exposition of the snapshot; used by pool)

A file's layer is its top folder under src/. Every `crate::<module>` path
in code (comments and strings are skipped) must name its own layer or one
it may use; a path through a root re-export (`crate::Pool`) counts as a use
of the root, which no layer may make. `super::` may not leave a layer.

    scripts/check-layers.py          # check src/
    scripts/check-layers.py --list   # also print what each layer uses
"""

import pathlib
import re
import sys

MAY_USE = {
    "core": {"core"},
    "config": {"core", "config"},
    "policy": {"core", "config", "policy"},
    "tensor": {"core", "tensor"},
    "openvino": {"core", "config", "tensor", "openvino"},
    "remote": {"core", "config", "tensor", "remote"},
    "metrics": {"core", "metrics"},
    "exec": {"core", "config", "policy", "exec"},
    "pool": {"core", "config", "policy", "exec", "tensor", "openvino", "remote", "metrics", "pool"},
    "runtime": {"core", "config", "policy", "exec", "tensor", "openvino", "remote", "metrics", "pool", "runtime"},
}


def code_only(text: str) -> str:
    """The text with comments, string and char literals blanked out."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 8]) and not text[i - 1:i].isalnum():
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            i = text.index("'", i + 2) + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def uses(code: str):
    """Top-level module names used through `crate::`, braces expanded."""
    found = set()
    for m in re.finditer(r"\bcrate::(\{|[A-Za-z_][A-Za-z0-9_]*)", code):
        if m.group(1) != "{":
            found.add(m.group(1))
            continue
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        inner = code[m.end():j - 1]
        # Only the top level of the group names modules.
        level, item = 0, ""
        for ch in inner + ",":
            if ch == "{":
                level += 1
            elif ch == "}":
                level -= 1
            elif ch == "," and level == 0:
                name = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", item)
                if name:
                    found.add(name.group(1))
                item = ""
                continue
            if level == 0 or ch not in "{}":
                item += ch
    return found


def main() -> int:
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    problems, seen = [], {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if len(rel.parts) == 1:
            continue  # lib.rs: the root wires and re-exports every layer
        layer = rel.parts[0]
        if layer not in MAY_USE:
            problems.append(f"src/{rel}: folder `{layer}` is no known layer; add it to MAY_USE")
            continue
        code = code_only(path.read_text())
        for name in sorted(uses(code)):
            seen.setdefault(layer, set()).add(name)
            if name == "self":
                continue
            if name not in MAY_USE[layer]:
                what = "a higher layer" if name in MAY_USE else "a root re-export"
                problems.append(
                    f"src/{rel}: layer `{layer}` uses `crate::{name}` ({what}); "
                    f"it may use only {', '.join(sorted(MAY_USE[layer]))}"
                )
        at_layer_root = rel.name == "mod.rs" and len(rel.parts) == 2
        if at_layer_root and re.search(r"\bsuper::", code):
            problems.append(f"src/{rel}: `super::` here leaves layer `{layer}`; name the layer with `crate::`")
    if "--list" in sys.argv:
        for layer, names in sorted(seen.items()):
            print(f"{layer}: {', '.join(sorted(names))}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"layer check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("layer check: every module uses only its own layer and those below")
    return 0


if __name__ == "__main__":
    sys.exit(main())
