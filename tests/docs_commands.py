"""The commands of the documentation, read from its Markdown, for ``test_docs_commands.py``.

A console block (```` ```console ````) holds commands, either after a ``$ ``
prompt with their output below them, or one per line when no line has a
prompt. Install commands (``pip install``) are also read from inline code in
the prose. What a command needs from the repository (the folders it installs,
the nox sessions it names, the files it runs) is worked out here from the
repository's own files; running them is the test module's business.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

REPO = Path(__file__).resolve().parents[1]


def doc_files() -> list[Path]:
    """Every page a reader follows: the README files and the documentation site's pages."""
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
    return [*pages, *sorted(REPO.glob("examples/*/README.md"))]


@dataclass
class Command:
    """One command of a console block, with the output the page shows below it."""

    text: str
    where: str  # "docs/cli.md:276"
    block: int  # which block of its page
    section: str  # the heading above it
    output: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


@dataclass
class Page:
    """A page's console-block commands and the install commands of its inline code."""

    path: Path
    commands: list[Command]
    inline_installs: list[Command]


FENCE = re.compile(r"^( *)```(\w*)")
HEADING = re.compile(r"^#+ ")
INLINE_INSTALL = re.compile(r"`((?:\S*/)?pip install [^`]+)`")


def read_page(path: Path) -> Page:
    """The commands of ``path``."""
    where = path.relative_to(REPO).as_posix()
    commands: list[Command] = []
    inline: list[Command] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    section, block, i = "", 0, 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence is None:
            if HEADING.match(line):
                section = line
            inline.extend(
                Command(m.group(1), f"{where}:{i + 1}", -1, section)
                for m in INLINE_INSTALL.finditer(line)
            )
            i += 1
            continue
        indent, lang = fence.group(1), fence.group(2)
        end = i + 1
        while not lines[end].startswith(f"{indent}```"):
            end += 1
        if lang == "console":
            block += 1
            body = [text[len(indent) :] for text in lines[i + 1 : end]]
            commands += _commands(body, where, i + 2, block, section)
        i = end + 1
    return Page(path, commands, inline)


def _commands(body: list[str], where: str, first: int, block: int, section: str) -> list[Command]:
    prompted = any(line.startswith("$ ") for line in body)
    found: list[Command] = []
    j = 0
    while j < len(body):
        line, number = body[j], first + j
        if prompted and not line.startswith("$ "):
            if found:
                found[-1].output.append(line)
            j += 1
            continue
        text = line[2:] if prompted else line
        while text.endswith("\\") and j + 1 < len(body):  # a command continued on the next line
            j += 1
            text = text[:-1] + " " + body[j].strip()
        if text.strip():
            found.append(Command(text.strip(), f"{where}:{number}", block, section))
        j += 1
    return found


def words(text: str) -> list[str]:
    """The shell words of ``text``, comments left out."""
    return shlex.split(text, comments=True)


def parts(text: str) -> list[str]:
    """The commands of ``a && b && c``."""
    return [part.strip() for part in text.split("&&")]


# --- installing ----------------------------------------------------------------------


#: Distributions asked for, each with its extras.
Wanted = list[tuple[str, frozenset[str]]]


@dataclass(frozen=True)
class Distribution:
    """A distribution of this repository: its folder, and the in-repository ones it needs."""

    name: str
    folder: str  # "." or "plugins/pocketcore-otel"
    needs: frozenset[str]
    extras: dict[str, frozenset[str]]


def _name(requirement: str) -> tuple[str, frozenset[str]]:
    """``"pocketcore[otel,trio]>=0.1"`` -> ``("pocketcore", {"otel", "trio"})``."""
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", requirement)
    if m is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    extras = frozenset(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
    return m.group(1).lower().replace("_", "-"), extras


def distributions() -> dict[str, Distribution]:
    """Every distribution of the repository, by name."""
    folders = [REPO, *sorted(REPO.glob("plugins/*")), *sorted(REPO.glob("examples/*"))]
    found: dict[str, Distribution] = {}
    raw: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {}
    for folder in folders:
        pyproject = folder / "pyproject.toml"
        if not pyproject.is_file():
            continue
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        name = _name(project["name"])[0]
        rel = folder.relative_to(REPO).as_posix()
        raw[name] = (rel, project.get("dependencies", []), project.get("optional-dependencies", {}))
    for name, (rel, deps, optional) in raw.items():

        def ours(reqs: list[str]) -> frozenset[str]:
            return frozenset(n for n in (_name(r)[0] for r in reqs) if n in raw)

        extras = {extra: ours(reqs) for extra, reqs in optional.items()}
        found[name] = Distribution(name, rel, ours(deps), extras)
    return found


@dataclass(frozen=True)
class Install:
    """What one ``pip install`` asks for: folders of this repository, and names."""

    folders: tuple[tuple[str, frozenset[str]], ...]  # (folder, extras)
    names: tuple[tuple[str, frozenset[str]], ...]  # (name, extras)


def pip_install(text: str) -> Install | None:
    """The requirements of ``text`` when it is a ``pip install`` command, else ``None``."""
    args = words(text)
    while args and "=" in args[0] and not args[0].startswith("-"):
        args = args[1:]  # VAR=value before the command
    try:
        at = args.index("install")
    except ValueError:
        return None
    head = args[:at]
    if not head or not (head[-1].endswith("pip") or head[-2:] == ["-m", "pip"]):
        return None
    folders, names = [], []
    for arg in args[at + 1 :]:
        if arg.startswith("-"):  # -e marks the next one editable; -q, -U and the like
            continue
        base, _, rest = arg.partition("[")
        extras = frozenset(e for e in rest.rstrip("]").split(",") if e) if rest else frozenset()
        if base.startswith((".", "/")) or "/" in base:
            folders.append((base, extras))
        else:
            names.append((_name(arg)[0], _name(arg)[1]))
    return Install(tuple(folders), tuple(names))


def closure(wanted: Wanted, dists: dict[str, Distribution]) -> set[str]:
    """The distributions of this repository that installing ``wanted`` needs."""
    needed: set[str] = set()
    todo = list(wanted)
    while todo:
        name, extras = todo.pop()
        if name not in dists:
            continue
        dist = dists[name]
        more = set(dist.needs).union(*(dist.extras.get(e, frozenset()) for e in extras))
        if name not in needed:
            needed.add(name)
        todo += [(n, frozenset()) for n in more if n not in needed]
    return needed


def folder_names(
    install: Install, dists: dict[str, Distribution]
) -> list[tuple[str, frozenset[str]]]:
    """The distributions the folders of ``install`` hold, with their extras.

    Raises:
        LookupError: A folder is not a distribution of this repository.
    """
    by_folder = {d.folder: d.name for d in dists.values()}
    found = []
    for folder, extras in install.folders:
        key = Path(folder).as_posix().removeprefix("./") or "."
        if key not in by_folder:
            raise LookupError(folder)
        found.append((by_folder[key], extras))
    return found


def is_checkout_install(install: Install) -> bool:
    """Whether the command installs folders of this repository (``.``, ``./plugins/...``)."""
    return any(
        Path(folder).as_posix().removeprefix("./") in ("", ".")
        or Path(folder).as_posix().removeprefix("./").split("/")[0] in ("plugins", "examples")
        for folder, _ in install.folders
    )


# --- nox ------------------------------------------------------------------------------


def nox_sessions() -> set[str]:
    """The sessions ``noxfile.py`` defines (its functions decorated with ``nox.session``)."""
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("session" in ast.unparse(d) for d in node.decorator_list)
    }


def nox_constant(name: str) -> object:
    """The literal value of a module-level constant of ``noxfile.py``."""
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(name)


def named_sessions(text: str) -> list[str] | None:
    """The sessions ``... nox -s a b`` names, or ``None`` when ``text`` does not run nox."""
    args = words(text)
    if "nox" not in args:
        return None
    rest = args[args.index("nox") + 1 :]
    if "-s" not in rest:
        return []
    after = rest[rest.index("-s") + 1 :]
    sessions = []
    for arg in after:
        if arg.startswith("-"):
            break
        sessions.append(arg)
    return sessions


def iter_commands() -> Iterator[tuple[Page, Command]]:
    """Every console-block command of every page."""
    for path in doc_files():
        page = read_page(path)
        for command in page.commands:
            yield page, command
