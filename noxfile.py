"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``.

Every session installs what it needs into its own virtualenv, so a fresh
machine with Python 3.10+ and nox is enough. ``tests`` runs the kernel suite
and then each plugin's suite, each against a (non-editable) install of that
distribution, the way a downstream user would have it.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = True

PLUGINS = ("sequential", "asyncio", "trio")
# The kernel depends on these two; they are not on PyPI yet, so pip is given
# their folders together with the kernel's.
KERNEL = ("./plugins/pocketcore-sequential", "./plugins/pocketcore-asyncio", ".")
TEST_DEPS = ("pytest>=8", "hypothesis>=6.100")


def plugin_path(name: str) -> str:
    return f"./plugins/pocketcore-{name}"


@nox.session
@nox.parametrize("suite", ["kernel", *PLUGINS])
def tests(session: nox.Session, suite: str) -> None:
    """The kernel's tests, then each plugin's tests against its own install."""
    if suite == "kernel":
        # pocketflow 0.0.3 is the reference the compatibility tests compare with.
        session.install(*KERNEL, plugin_path("trio"), *TEST_DEPS, "pocketflow==0.0.3")
        session.run("pytest", *session.posargs)
    else:
        # dict.fromkeys: the kernel's own plugins are already in KERNEL.
        session.install(*dict.fromkeys((*KERNEL, plugin_path(suite))), *TEST_DEPS)
        session.chdir(plugin_path(suite))
        session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the kernel and every plugin."""
    session.install("mypy>=1.10", *KERNEL, *(plugin_path(p) for p in PLUGINS), *TEST_DEPS)
    session.run("mypy", "--strict", "src", *(f"plugins/pocketcore-{p}/src" for p in PLUGINS))


@nox.session
def demo(session: nox.Session) -> None:
    """The parallel-summaries example with every executor, and each one's wall time."""
    session.install(*KERNEL, plugin_path("trio"))
    session.run("python", "-m", "examples.parallel_summaries.flow", *session.posargs)
