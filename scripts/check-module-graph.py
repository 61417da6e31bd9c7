#!/usr/bin/env python3
"""Module dependency guard for src/ (docs/architecture.md, "Dependencies").

Builds the file-level graph of `crate::…` / `super::…` references between the modules of
src/ and fails when
  * two modules depend on each other, directly or through others (an import cycle), or
  * a layer reaches upward: `oauth` must not use anything but small helpers, `store` must not
    use `routes`, `config`, `state` or `startup`, and nothing but `startup`/`main` uses
    `routes`.

Usage: scripts/check-module-graph.py [--print]
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# Layers: module prefix -> module prefixes it must never reference.
FORBIDDEN = {
    "oauth": ["routes", "store", "config", "state", "startup", "telemetry", "signing", "playground"],
    "store": ["routes", "config", "state", "startup", "playground"],
    "signing": ["routes", "store", "config", "state", "startup"],
    "telemetry": ["routes", "store", "state", "startup"],
    "config": ["routes", "state", "startup"],
}


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return parts[0]
    return "::".join(parts)


def modules() -> dict:
    return {module_of(p): p for p in SRC.rglob("*.rs")}


PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\}", re.S)


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod tests { … }` blocks: tests may use anything."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def resolve(base: list, rest: list, mods: dict):
    """Longest prefix of base+rest that names a module."""
    full = base + rest
    for n in range(len(full), 0, -1):
        name = "::".join(full[:n])
        if name in mods:
            return name
    return None


def edges(mods: dict) -> dict:
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        if mod in ("lib", "main"):
            continue
        text = strip_tests(strip_comments(path.read_text()))
        own = mod.split("::")
        parent = own[:-1]
        refs = []
        for m in GROUP_RE.finditer(text):
            head = [p for p in m.group(2).split("::") if p]
            for item in re.split(r",", m.group(3)):
                item = item.strip().split(" as ")[0]
                if item and item not in ("self",):
                    refs.append((m.group(1), head + [p for p in item.split("::") if p and p != "{"]))
                elif item == "self":
                    refs.append((m.group(1), head))
        for m in PATH_RE.finditer(text):
            refs.append((m.group(1), [p for p in m.group(2).split("::") if p]))
        # Paths relative to this module (`use error::StoreError;`, `memory::MemoryStore`,
        # `self::x`): a child module of this one.
        children = {c.split("::")[-1] for c in mods if c.startswith(mod + "::") and c.count("::") == mod.count("::") + 1}
        for m in re.finditer(r"(?<![:\w])(self::)?([a-z_][a-z0-9_]*)::", text):
            if m.group(2) in children:
                refs.append(("self", [m.group(2)]))
        for root, rest in refs:
            base = {"crate": [], "super": parent, "self": own}[root]
            while rest and rest[0] == "super":
                base = base[:-1]
                rest = rest[1:]
            target = resolve(base, rest, mods)
            if target and target != mod:
                graph[mod].add(target)
    return graph


def cycles(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    mods = modules()
    graph = edges(mods)
    if "--print" in sys.argv:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m]))}")
    bad = 0
    for comp in cycles(graph):
        print("import cycle: " + " <-> ".join(comp))
        bad += 1
    for mod, targets in graph.items():
        top = mod.split("::")[0]
        for t in targets:
            t_top = t.split("::")[0]
            if t_top in FORBIDDEN.get(top, []):
                print(f"layer violation: {mod} -> {t}")
                bad += 1
            if t_top == "routes" and top not in ("routes", "startup", "main"):
                print(f"layer violation: {mod} -> {t} (only startup uses routes)")
                bad += 1
    if bad:
        return 1
    print(f"module graph ok: {len(mods)} modules, no cycles, layers respected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
