"""The tree is the architecture: which package may import which, read from the source itself."""
import ast
import os

import pytest

from tests.conftest import REPO_ROOT

# package prefix -> prefixes (of our own packages) it must never import
FORBIDDEN = {
    "edge.inference": ("edge.service", "edge.config", "edge.bench", "edge.cli", "monitor"),
    "edge.service": ("edge.bench", "edge.cli", "monitor"),
    "edge.config": ("edge.bench", "edge.cli", "monitor"),
    "edge.bench": ("edge.cli", "monitor"),
    "monitor": ("edge.inference", "edge.service", "edge.bench", "edge.cli", "convert"),
}
CONVERT_MAY_IMPORT = ("edge.inference", "edge.errors", "edge.paths")
# The central monitor runs apart from the daemon: of edge/ it shares only the errors, the settings
# helpers, the strict YAML loader and the broker section (the daemon's payload schemas it reads
# as files).
MONITOR_MAY_IMPORT = ("edge.errors", "edge.settings", "edge.config.loader", "edge.config.mqtt",
                      "edge.systemd_notify", "edge.mqtt_client", "edge.machine")
# modules that mean network, GPIO, storage or TensorFlow: not in the inference core
NOT_IN_INFERENCE = ("socket", "paho", "gpiozero", "picamera2", "sqlite3", "tensorflow")


def _modules():
    """{module name: file} for every module of edge/, convert/ and monitor/."""
    found = {}
    for top in ("edge", "convert", "monitor"):
        for folder, _, files in os.walk(os.path.join(REPO_ROOT, top)):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, name), REPO_ROOT)[:-3].replace(os.sep, ".")
                    found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = \
                        os.path.join(folder, name)
    return found


def _tree(path):
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read())


def _imports(module, path):
    """Absolute names of every module the file imports (also inside functions)."""
    tree = _tree(path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


MODULES = _modules()
GRAPH = {m: [n for n in _imports(m, p) if n in MODULES and n != m] for m, p in MODULES.items()}


def _under(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_downwards(package):
    bad = [(m, n) for m, targets in GRAPH.items() if _under(m, package)
           for n in targets for f in FORBIDDEN[package] if _under(n, f)]
    assert not bad, f"{package} must not import these: {bad}"


def test_convert_imports_only_the_inference_core_errors_and_paths():
    bad = [(m, n) for m, targets in GRAPH.items() if _under(m, "convert") for n in targets
           if _under(n, "edge") and not any(_under(n, ok) for ok in CONVERT_MAY_IMPORT)]
    assert not bad, bad


def test_the_monitor_imports_only_the_errors_settings_and_config_loader_of_edge():
    bad = [(m, n) for m, targets in GRAPH.items() if _under(m, "monitor") for n in targets
           if _under(n, "edge") and n != "edge" and not any(_under(n, ok) for ok in MONITOR_MAY_IMPORT)]
    assert not bad, bad


def test_the_monitor_loads_neither_the_inference_core_nor_opencv():
    """What the monitor imports of edge/ really stays light (a package's __init__ could pull in
    more than the graph above shows)."""
    import subprocess
    import sys

    code = ("import sys, monitor.config, monitor.payloads; "
            "print(sorted(m for m in sys.modules if m.startswith(('edge.inference', 'edge.service', "
            "'cv2', 'numpy'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_only_the_command_line_imports_the_monitor():
    assert not [(m, n) for m, targets in GRAPH.items() if not _under(m, "monitor") and m != "edge.cli"
                for n in targets if _under(n, "monitor")]


def test_nothing_imports_the_command_line():
    assert not [m for m, targets in GRAPH.items() if "edge.cli" in targets]


def test_the_inference_core_has_no_threads_network_or_gpio():
    bad = [(m, n) for m, p in MODULES.items() if _under(m, "edge.inference")
           for n in _imports(m, p) if n.split(".")[0] in NOT_IN_INFERENCE]
    assert not bad, bad


def test_the_inference_core_starts_no_thread():
    """A lock is fine (the runtime guards its stderr capture); a thread of its own is not: the
    core runs in its caller's thread (the Edge TPU worker is a process, supervised from it)."""
    starts = []
    for module, path in MODULES.items():
        if _under(module, "edge.inference"):
            tree = _tree(path)
            starts += [(module, node.lineno) for node in ast.walk(tree)
                       if isinstance(node, (ast.Attribute, ast.Name))
                       and getattr(node, "attr", getattr(node, "id", None)) in ("Thread", "Timer")]
    assert not starts, starts


def test_there_is_no_import_cycle():
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for target in GRAPH[node]:
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def help_and_loaded(cli_module, argv, packages):
    """A command line's --help text, run in a fresh interpreter, and the modules of `packages`
    (top-level names or prefixes) that building its options loaded."""
    import subprocess
    import sys

    code = (f"import sys; from {cli_module} import main\n"
            f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted(m for m in sys.modules if m.startswith({tuple(packages)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text, _, loaded = proc.stdout.rpartition("LOADED ")
    return text, loaded.strip()


def test_maskdet_monitor_builds_its_options_without_the_inference_core():
    text, loaded = help_and_loaded("edge.cli", ["monitor", "--help"], ["edge.inference", "cv2"])
    assert "--config" in text and loaded == "[]", loaded


def test_maskdet_convert_builds_its_options_without_numpy_opencv_or_tensorflow():
    """`maskdet-convert` parses every command's options with the recipe's defaults from
    convert/recipe.py, without loading the modules that train."""
    text, loaded = help_and_loaded("convert.cli", ["scene-faces", "--help"],
                                   ["cv2", "numpy", "tensorflow"])
    assert "--framing" in text and loaded == "[]", loaded
