"""The house rules the folder tree promises: rooms only import rooms below them, no import
cycle between modules, and the stand-ins never import the product they stand in front of."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Lowest first. A room may import itself and the rooms before it, never one after it.
ROOMS = (
    "domain",       # Alert, Enrichment, Status, records, errors: the words every room shares
    "resilience",   # retry policy, circuit breaker, bounded TTL caches
    "store",        # Store contract + Redis / memory
    "expressions",  # safe expressions
    "enrich",       # Enricher contract, engine, providers
    "render",       # mrkdwn, templates, Block Kit
    "rules",        # rule schema, loader, compiled rule set
    "siem",         # Siem contract + Elastic / embedded
    "pipeline",     # match → dedup → enrich → decide → route → render
    "publish",      # Publisher contract + Slack / console
    "destinations", # PagerDuty, Jira, signed webhooks behind a durable outbox
    "intake",       # poller and hand-off (pipeline → publish → auto-close)
    "triage",       # status changes from Slack: authorize, SIEM, audit, edit
    "ask",          # asking the person involved by DM, answers, timeouts
    "respond",      # response actions (isolate, suspend, disable key) after approval
    "review",       # auto-close trust: shadow agreement, expiry, QA sampling
    "stats",        # alert statistics, charts, weekly report
    "commands",     # @SecBot commands
    "chat",         # the bolt app: events → triage / commands
    "runtime",      # settings, wiring, service, lease, health, metrics, logs
    "offline",      # rule tests, backtest
    "demo",         # the embedded-defaults demo
    "cli",          # console script
)


def _modules(package: str) -> dict[str, Path]:
    root = REPO / package
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    """Every module named by an import anywhere in the file (lazy imports included)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    return {
        name: {imp for imp in _imports(path, name) if imp in modules and imp != name}
        for name, path in modules.items()
    }


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else None


def test_every_module_lives_in_a_room() -> None:
    loose = [m for m in _modules("secbot") if m.count(".") == 1 and m.split(".")[1] not in
             {*ROOMS, "__main__"}]
    assert not loose, f"modules outside any room: {loose}"


def test_rooms_only_import_rooms_below_them() -> None:
    rank = {room: i for i, room in enumerate(ROOMS)}
    upward = []
    for module, imported in _graph("secbot").items():
        here = _room(module)
        for target in imported:
            there = _room(target)
            if here and there and rank[there] > rank[here]:
                upward.append(f"{module} → {target}")
    assert not upward, "rooms importing a room above them:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_modules() -> None:
    graph = _graph("secbot")
    graph = {m: {t for t in ts if not graph.get(m) or t not in _packages_of(m)}
             for m, ts in graph.items()}
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state[nxt] == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def _packages_of(module: str) -> set[str]:
    """A module's own parent packages: importing them is how Python loads it, not a cycle."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_stand_ins_never_import_the_product() -> None:
    leaks = sorted(
        f"{module} imports {imp}"
        for module, path in _modules("secbot_emulators").items()
        for imp in _imports(path, module)
        if imp == "secbot" or imp.startswith("secbot.")
    )
    assert not leaks, "a stand-in must restate the behaviour it fakes:\n" + "\n".join(leaks)


def test_modules_stay_small() -> None:
    """One concept per module: no god modules (≤ 400 lines)."""
    too_big = {str(p.relative_to(REPO)): n
               for package in ("secbot", "secbot_emulators")
               for p in (REPO / package).rglob("*.py")
               if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not too_big, too_big


def test_functions_stay_short() -> None:
    """A function does one thing a reader can hold in their head (≤ 50 lines, docstring
    included): longer ones hide the steps they should name."""
    too_long = sorted(
        f"{p.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)"
        for p in (REPO / "secbot").rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > 50
    )
    assert not too_long, "\n".join(too_long)
