"""The seams between top-level packages, read from the source with `ast` (lazy imports included).

- Role packages (actors, learner, serve) never import one another, nor the bundled task, nor
  the packages that compose them: they talk through the protocol layer (`wire`), and reach one
  another's remote surfaces through typed handles (`coordination`), which import no role either.
- The top-level packages import one another without a cycle. The CLI (`driver.cli` and the
  command modules, `driver.commands`) counts as a node of its own, `cli`: it is the composition
  root, which may import the benchmarks that compose the rest of `driver`.
- No two modules import each other, at any depth of the code: a factory lives apart from the
  interface its implementations import.
- The protocol's messages import nothing heavier than numpy and msgpack.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROLES = ("actors", "learner", "serve")
# What composes the roles, or is a client of them: never imported by a role.
COMPOSERS = ("task", "evaluation", "benchmarks", "supervisor", "driver", "cli", "launch")
# What every role may import to reach the others: the staleness gate, the handles, their reports.
SHARED_BY_ROLES = ("coordination",)
CLI_MODULES = ("driver.cli", "driver.commands")
# Every module of the protocol layer: it holds messages only (how they travel is `transport`).
PROTOCOL_MESSAGES = tuple(f"wire.{p.stem}" for p in sorted((REPO / "wire").glob("*.py")) if p.stem != "__init__")
PROTOCOL_MAY_IMPORT = {
    "__future__",
    "dataclasses",
    "typing",
    "math",
    "bisect",
    "collections",
    "numpy",
    "msgpack",
    "wire",
}


def project_packages() -> list[str]:
    packages = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")
    return [*packages, "launch"]


def graph_nodes() -> list[str]:
    return [*project_packages(), "cli"]


def node_of(module: str) -> str:
    """The graph node a dotted module belongs to: its top-level package, or `cli`."""
    return "cli" if module.startswith(CLI_MODULES) else module.split(".")[0]


def source_files(node: str) -> list[Path]:
    if node == "launch":
        return [REPO / "launch.py"]
    files = sorted((REPO / ("driver" if node == "cli" else node)).rglob("*.py"))
    return [f for f in files if node_of(".".join(f.relative_to(REPO).with_suffix("").parts)) == node]


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(dotted module, line) of every import in `path`, at any depth of the code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """node (a package, or `cli`) -> imported node -> where ("file:line")."""
    nodes = graph_nodes()
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in nodes}
    for package in nodes:
        for path in source_files(package):
            for module, line in imported_modules(path):
                top = node_of(module)
                if top in graph and top != package:
                    graph[package].setdefault(top, []).append(f"{path.relative_to(REPO)}:{line}")
    return graph


def crossings(packages) -> list[str]:
    """Where one of `packages` imports a role package or one that composes them."""
    graph = package_graph()
    return [
        f"{package} imports {other} at {', '.join(where)}"
        for package in packages
        for other, where in graph[package].items()
        if other in ROLES or other in COMPOSERS
    ]


def test_role_packages_import_no_other_role_nor_their_composers():
    assert crossings(ROLES) == []


def test_what_roles_share_imports_no_role_nor_their_composers():
    assert crossings(SHARED_BY_ROLES) == []


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for successor in graph[node]:
            if state.get(successor) == "open":
                return path[path.index(successor) :] + [successor]
            if successor not in state and (cycle := visit(successor, [*path, successor])):
                return cycle
        state[node] = "done"
        return None

    for start in graph:
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_top_level_packages_import_one_another_without_a_cycle():
    assert find_cycle(package_graph()) is None


def module_imports() -> dict[str, set[str]]:
    """Every project module (tests aside) -> the project modules it imports, lazily or not."""
    files = {}
    for node in graph_nodes():
        for path in source_files(node):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            files[name] = path
    imports: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from package import module` imports the module too.
                named = [f"{node.module}.{alias.name}" for alias in node.names]
                imports[name] |= {m for m in (node.module, *named) if m in files}
            elif isinstance(node, ast.Import):
                imports[name] |= {alias.name for alias in node.names if alias.name in files}
    return imports


def test_no_two_modules_import_each_other():
    imports = module_imports()
    mutual = sorted(
        {tuple(sorted((a, b))) for a, targets in imports.items() for b in targets if a != b and a in imports[b]}
    )
    assert mutual == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}
    assert find_cycle(graph) in (["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert find_cycle({"a": {"b": []}, "b": {}}) is None


def test_protocol_messages_import_only_numpy_and_msgpack():
    for module in PROTOCOL_MESSAGES:
        path = REPO / (module.replace(".", "/") + ".py")
        heavy = {name.split(".")[0] for name, _ in imported_modules(path)} - PROTOCOL_MAY_IMPORT
        assert not heavy, f"{module} imports {sorted(heavy)}"
    # And transitively, as Python actually loads them.
    probe = f"import sys; import {', '.join(PROTOCOL_MESSAGES)}; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not loaded & {"torch", "zmq", "ray", "transformers", "vllm", "deepspeed", "PIL"}


def test_every_package_is_installed():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    subpackages = [
        ".".join(p.parent.relative_to(REPO).parts) for p in REPO.glob("*/*/__init__.py") if p.parts[-3] != "tests"
    ]
    assert sorted(declared) == sorted([*(p for p in project_packages() if p != "launch"), *subpackages])
