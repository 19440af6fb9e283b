"""Installed distributions made on disk, as pip lays them out, for real entry-point discovery."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path


def fake_distribution(
    root: Path,
    name: str,
    *,
    version: str = "1.2.3",
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
    modules: Mapping[str, str] | None = None,
    requires: Sequence[str] = (),
) -> None:
    """Write ``NAME-VERSION.dist-info`` (and top-level modules) into ``root``.

    Args:
        root: A folder that the test puts on ``sys.path``.
        name: The distribution's name.
        version: Its version.
        entry_points: Group -> entry-point name -> value.
        modules: Module name -> source (dedented) of modules it installs.
        requires: ``Requires-Dist`` lines (``'x>=1; extra == "y"'``).
    """
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    text = "".join(
        f"[{group}]\n" + "".join(f"{ep} = {value}\n" for ep, value in eps.items())
        for group, eps in (entry_points or {}).items()
    )
    (info / "entry_points.txt").write_text(text)
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


def executor_module(*names: str, raises: str | None = None) -> str:
    """Source of a plugin module registering toy executors ``names`` (then raising ``raises``)."""
    then = "" if raises is None else f"raise RuntimeError({raises!r})"
    return f"""
    import asyncio

    import pluggy

    class Toy:
        backend = None

        def __init__(self, name):
            self.name = name

        def run(self, fn):
            async def main():
                return await fn()
            return asyncio.run(main())

        async def map(self, fn, items, *, limit):
            return [await fn(item) for item in items]

    @pluggy.HookimplMarker("pocketcore")
    def pocketcore_register_executors(register):
        for name in {list(names)!r}:
            register(Toy(name))
        {then}
    """
