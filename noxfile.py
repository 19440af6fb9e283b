"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``demo``, ``bench``,
``browser``, ``pictures``, ``dev``.

Every session installs what it needs into its own virtualenv, so a fresh
machine with Python 3.10+ and nox is enough. ``tests`` runs the kernel suite
and then each plugin's suite, each against a (non-editable) install of that
distribution, the way a downstream user would have it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nox
import nox.command

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.error_on_missing_interpreters = True

PLUGINS = ("sequential", "asyncio", "trio", "dask", "ray", "uvloop", "otel")
# The example executor plugin of docs/writing-an-executor-plugin.md: tested
# like the real ones, so the walkthrough stays true.
EXAMPLE_PLUGIN = "./examples/executor-plugin"
# The example node plugin (docs/writing-a-node-plugin.md): its own suite, and
# installed for the kernel's so the command line sees real node entry points.
EXAMPLE_NODES = "./examples/node-plugin"
# The kernel depends on these two; they are not on PyPI yet, so pip is given
# their folders together with the kernel's.
KERNEL = ("./plugins/pocketcore-sequential", "./plugins/pocketcore-asyncio", ".")
TEST_DEPS = ("pytest>=8", "hypothesis>=6.100", "tomli-w>=1.0")
# The plugin uses the OpenTelemetry API only; its tests record spans with the SDK.
OTEL_TEST_DEPS = ("opentelemetry-sdk>=1.20",)


def plugin_path(name: str) -> str:
    return f"./plugins/pocketcore-{name}"


@nox.session
@nox.parametrize("suite", ["kernel", *PLUGINS, "example-plugin", "example-nodes"])
def tests(session: nox.Session, suite: str) -> None:
    """The kernel's tests, then each plugin's tests against its own install."""
    if suite == "kernel":
        # pocketflow 0.0.3 is the reference the compatibility tests compare with;
        # the openai SDK drives the fake provider of tests/provider.py.
        session.install(
            *KERNEL,
            plugin_path("trio"),
            EXAMPLE_NODES,
            *TEST_DEPS,
            "pocketflow==0.0.3",
            "openai>=1.40",
        )
        session.run("pytest", *session.posargs)
        return
    path = {"example-plugin": EXAMPLE_PLUGIN, "example-nodes": EXAMPLE_NODES}.get(
        suite, plugin_path(suite)
    )
    # dict.fromkeys: the kernel's own plugins are already in KERNEL. trio is
    # there for the executors that run on any backend (checked on both); the
    # example nodes are also run with the trio executor, and the OpenTelemetry
    # plugin is checked on every executor, with the SDK its tests record with,
    # and with dask (the trace context sent to its workers); the ray suite
    # checks that context on Ray's workers, with the same two.
    extra = [plugin_path("trio")] if suite in ("example-nodes", "otel") else []
    if suite == "otel":
        extra.append(plugin_path("dask"))
    if suite == "ray":  # its tests check that an item's trace context reaches the worker
        extra.append(plugin_path("otel"))
    traced = suite in ("otel", "ray")
    deps = [*TEST_DEPS, "trio", *(OTEL_TEST_DEPS if traced else ())]
    session.install(*dict.fromkeys((*KERNEL, *extra, path)), *deps)
    session.chdir(path)
    try:
        session.run("pytest", *session.posargs)
    except nox.command.CommandFailed:
        if suite == "ray":
            show_ray_driver_logs(session)
        raise


def show_ray_driver_logs(session: nox.Session) -> None:
    """Print the end of Ray's driver logs: a crash inside Ray's own code is written only there.

    Ray aborts the driver (the pytest process) on a failed internal check,
    writing the reason to a stderr pytest has captured: the run just stops.
    """
    logs = Path(tempfile.gettempdir(), "ray", "session_latest", "logs")
    drivers = sorted(logs.glob("python-core-driver-*.log"), key=lambda log: log.stat().st_mtime)
    for log in drivers[-3:]:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        session.log(f"--- the end of {log.name} ---\n" + "\n".join(tail))


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint rules and formatting) and import-linter (the kernel's layers)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the kernel and the plugins it checks from the
    # environment; their code is all it needs, not their dependencies.
    session.install("import-linter>=2.1")
    session.install("--no-deps", ".", *(plugin_path(p) for p in PLUGINS))
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the kernel, every plugin and the example plugins."""
    dists = [*(plugin_path(p) for p in PLUGINS), EXAMPLE_PLUGIN, EXAMPLE_NODES]
    # exceptiongroup: mypy checks as Python 3.10, where the trio plugin imports
    # the backport; pip installs it only on 3.10, so it is asked for here.
    session.install("mypy>=1.10", "exceptiongroup>=1.0.2", *KERNEL, *dists, *TEST_DEPS)
    session.run("mypy", "--strict", "src", *(f"{d}/src" for d in dists))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs (material), failing on any warning."""
    session.install("mkdocs>=1.6", "mkdocs-material>=9.5")
    # Material prints a notice about MkDocs 2.0 on every build unless told not to.
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        "site",
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session(venv_backend="none")
def dev(session: nox.Session) -> None:
    """Put the kernel and every plugin into ``.venv`` (editable), to try the docs' commands.

    ``.venv`` is the folder README.md's two commands make; it is created if
    missing. Then ``. .venv/bin/activate`` puts ``pocketcore`` on PATH. Not
    part of the default sessions.
    """
    venv = Path(".venv")
    if not venv.is_dir():
        session.run(sys.executable, "-m", "venv", str(venv))
    bindir = "Scripts" if sys.platform == "win32" else "bin"
    python = str(venv / bindir / ("python.exe" if sys.platform == "win32" else "python"))
    dists = dict.fromkeys([*KERNEL, *dev_plugins(sys.platform), EXAMPLE_NODES])
    editable = [arg for dist in dists for arg in ("-e", dist)]
    session.run(python, "-m", "pip", "install", *editable, external=True)


def dev_plugins(platform: str) -> list[str]:
    """The plugin folders ``nox -s dev`` installs on ``platform`` (uvloop has no Windows build)."""
    return [plugin_path(p) for p in PLUGINS if not (p == "uvloop" and platform == "win32")]


@nox.session
def demo(session: nox.Session) -> None:
    """The README demo: both examples with every executor, and each one's wall time."""
    session.install(*KERNEL, plugin_path("trio"))
    session.run("pocketcore", "demo", *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """Timelines in headless Chromium: they load without console errors and draw their bars.

    Needs a Chromium on PATH (``apt-get install -y chromium``) or named by
    ``CHROMIUM``. Not part of the default sessions.
    """
    session.install(*KERNEL, plugin_path("trio"), "pillow>=10")
    session.run("python", "tests/browser/check_timeline.py", *session.posargs)


@nox.session
def pictures(session: nox.Session) -> None:
    """The docs' screenshots and generated samples, made from the commands shown next to them.

    ``nox -s pictures`` remakes them in place; ``nox -s pictures -- --check``
    (what CI runs) makes them aside and fails where the committed ones no
    longer match their commands. Screenshots are taken in headless Chromium
    (see the ``browser`` session). What is installed is what the docs say the
    samples were made with: pocketcore, its three executor plugins and the
    example node plugin.
    """
    session.install(*KERNEL, plugin_path("trio"), EXAMPLE_NODES, "pillow>=10")
    session.run("python", "tests/browser/pictures.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks: pocketcore vs PocketFlow, raw asyncio/trio/uvloop, anyio, LangGraph.

    With no options, a full run that saves its measurements in
    ``benchmarks/results.json`` and draws the charts of docs/performance.md
    from them (``docs/performance-*.svg``). Options go after ``--`` and replace
    that: ``nox -s bench -- --quick``, ``-- --json bench.json`` (see ``python -m
    benchmarks --help``); ``-- --from-json benchmarks/results.json --charts docs``
    redraws the charts from the saved run without measuring. Not part of the
    default sessions.
    """
    session.install(*KERNEL, plugin_path("trio"), "pocketflow==0.0.3", "anyio", "trio")
    if sys.platform != "win32":  # uvloop is not built for Windows: its rows are skipped there
        session.install(plugin_path("uvloop"))
    try:
        session.install("langgraph")
    except nox.command.CommandFailed:
        session.warn("LangGraph could not be installed: the benchmarks run without it.")
    saved = ("--json", "benchmarks/results.json", "--charts", "docs")
    session.run("python", "-m", "benchmarks", *(session.posargs or saved))
