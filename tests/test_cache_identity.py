"""What a cached result belongs to: a node's class, code and configuration, as a user meets it.

The property that a result is reused by its node alone (any difference in
the class's code, an attribute, params, ``cache_version``, the input or the
program is a miss; every import spelling of one node is a hit) is in
``pocketcore.testing``'s store suite, which ``test_stores.py`` runs on the
SQLite and memory stores. Here are the cases of issue 19 as a user meets
them: two instances of one class in one flow; two programs sharing a cache
file, and one program started three ways, each in real processes; the
README's loader after its folder changed, and an edited ``exec``; entries
of the old key scheme; ``cache_ttl``; attributes that do not pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import CacheWarning
from pocketcore._runtime import cache as cache_module
from pocketcore._runtime.stores import close_stores
from pocketcore._stores.memory import MemoryStore
from pocketcore._stores.sqlite import SqliteStore
from tests.cli.support import shell

ROOT = Path(__file__).resolve().parent.parent
ran: Counter[Any] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    ran.clear()
    yield
    close_stores()


def stores(tmp_path: Path) -> dict[str, Any]:
    return {"memory": MemoryStore(), "sqlite": SqliteStore(tmp_path / "cache.db")}


# --- 1. two instances of one class ---------------------------------------------------------


class Translate(pocketcore.BatchNode):
    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang

    def prep(self, shared: Any) -> Any:
        return shared["words"]

    def exec(self, word: str) -> str:
        ran[self.lang, word] += 1
        return f"{word}->{self.lang}"

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        shared.setdefault("out", []).append(exec_res)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_two_instances_of_one_class_keep_their_own_results(tmp_path: Path, kind: str) -> None:
    store = stores(tmp_path)[kind]
    for _ in range(2):
        french = Translate("fr")
        french >> Translate("de")
        shared: dict[str, Any] = {"words": ["cat", "dog"]}
        pocketcore.run(pocketcore.Flow(start=french), shared, cache=store)
        assert shared["out"] == [["cat->fr", "dog->fr"], ["cat->de", "dog->de"]]
    assert set(ran.values()) == {1}  # each computed once, then served its own


# --- 2. and 3. programs, and how they are started: real processes ---------------------------

STYLE = """
import pocketcore

STYLE = {style!r}


def note(what):
    with open("calls.txt", "a") as f:
        f.write(what + "\\n")


class Style(pocketcore.BatchNode):
    def prep(self, shared):
        return ["a", "b"]

    def exec(self, text):
        note(f"{{STYLE}} {{text}}")
        return apply(text)

    def post(self, shared, prep_res, exec_res):
        shared["styled"] = exec_res


def apply(text):
    return text.upper() if STYLE == "loud" else text + "..."


node = Style()

if __name__ == "__main__":
    shared = {{}}
    pocketcore.run(node, shared)
    print(shared["styled"])
"""


def command(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd``, which must succeed."""
    done = shell([sys.executable], *args, cwd=cwd, **env)
    assert done.returncode == 0, done.stderr
    return done


def noted(folder: Path) -> list[str]:
    path = folder / "calls.txt"
    found = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return found


def test_two_programs_sharing_a_cache_file_keep_their_own_results(tmp_path: Path) -> None:
    # Two scripts in two folders, each with its own Style class and its own
    # module-level helper: alike in name and in the code of their classes.
    for name, style in (("a", "loud"), ("b", "quiet")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "flow.py").write_text(STYLE.format(style=style))
    cache = str(tmp_path / "shared.db")
    for _ in range(2):
        first = command("-m", "pocketcore", "run", "a/flow.py:node", "--cache", cache, cwd=tmp_path)
        second = command("b/flow.py", cwd=tmp_path, POCKETCORE_CACHE=cache)
        assert json.loads(first.stdout.split("\n\naction")[0][len("shared:\n") :]) == {
            "styled": ["A", "B"]
        }
        assert second.stdout == "['a...', 'b...']\n"
    assert noted(tmp_path) == ["loud a", "loud b", "quiet a", "quiet b"]  # once each


def test_one_program_started_three_ways_is_one_node(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "summarize.py").write_text(STYLE.format(style="loud"))
    cache = str(tmp_path / "cache.db")
    command("pkg/summarize.py", cwd=tmp_path, POCKETCORE_CACHE=cache)
    assert noted(tmp_path) == ["loud a", "loud b"]
    command("-m", "pocketcore", "run", "pkg/summarize.py:node", "--cache", cache, cwd=tmp_path)
    command("-m", "pocketcore", "run", "pkg.summarize:node", "--cache", cache, cwd=tmp_path)
    command("-m", "pkg.summarize", cwd=tmp_path, POCKETCORE_CACHE=cache)
    assert noted(tmp_path) == []  # every later start found the first one's results
    info = command("-m", "pocketcore", "cache", "info", cache, "--json", cwd=tmp_path)
    assert sum(json.loads(info.stdout)["entries"].values()) == 3  # two items, one whole batch


# --- 4. the README's loader, and an edited exec --------------------------------------------


def test_the_readme_example_reads_its_folder_afresh_after_it_changed(tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "ants.txt").write_text("Ants march. In lines.")
    (texts / "bees.txt").write_text("Bees buzz. All day.")
    target = str(ROOT / "examples" / "parallel_summaries" / "target.py") + ":flow"
    args = ("-m", "pocketcore", "run", target, "--cache", "cache.db", "--output", "json")
    shared = json.dumps({"folder": str(texts)})
    env = {"SUMMARY_DELAY": "0"}

    def summaries() -> dict[str, str]:
        done = command(*args, "--shared", shared, cwd=tmp_path, **env)
        found: dict[str, str] = json.loads(done.stdout)["shared"]["summaries"]
        return found

    assert summaries() == {"ants": "Ants march.", "bees": "Bees buzz."}
    (texts / "bees.txt").write_text("Bees sleep. At night.")
    (texts / "zebra.txt").write_text("Zebras graze. On grass.")
    assert summaries() == {"ants": "Ants march.", "bees": "Bees sleep.", "zebra": "Zebras graze."}


def test_an_edited_exec_misses_without_a_new_cache_version(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(STYLE.format(style="loud"))
    cache = str(tmp_path / "cache.db")
    assert command("flow.py", cwd=tmp_path, POCKETCORE_CACHE=cache).stdout == "['A', 'B']\n"
    edited = STYLE.format(style="loud").replace("return apply(text)", "return apply(text) * 2")
    script.write_text(edited)
    assert command("flow.py", cwd=tmp_path, POCKETCORE_CACHE=cache).stdout == "['AA', 'BB']\n"
    # Editing post leaves exec's results in place: only exec's code is in the key.
    posted = 'shared["styled"] = exec_res + ["!"]'
    script.write_text(edited.replace('shared["styled"] = exec_res', posted))
    noted(tmp_path)
    done = command("flow.py", cwd=tmp_path, POCKETCORE_CACHE=cache)
    assert done.stdout == "['AA', 'BB', '!']\n"
    assert noted(tmp_path) == []


# --- old cache files ---------------------------------------------------------------------


def old_key(node: Any, item: Any) -> bytes:
    """The key the first key scheme (KEY_FORMAT 1) gave ``item`` of ``node``."""
    cls = type(node)
    base = hashlib.blake2b(b"pocketcore-cache-key-1\0", digest_size=20)
    base.update(f"{cls.__module__}.{cls.__qualname__}".encode() + b"\0")
    base.update(cache_module.fingerprint(None) + b"\0")
    base.update(cache_module.fingerprint(node.params) + b"\0")
    return b"\x01" + base.digest() + cache_module.fingerprint(item)


def test_entries_of_the_old_key_scheme_are_never_served(tmp_path: Path) -> None:
    # Translate("de") keyed like Translate("fr") under the old scheme: a file
    # holding "fr" results under those keys (unframed pickles, as then) must
    # not answer for "de".
    store = SqliteStore(tmp_path / "old.db")
    german = Translate("de")
    for word in ("cat", "dog"):
        store.put(old_key(german, word), pickle.dumps(f"{word}->fr"), "tests.Translate")
    shared: dict[str, Any] = {"words": ["cat", "dog"]}
    pocketcore.run(german, shared, cache=store)
    assert shared["out"] == [["cat->de", "dog->de"]]
    assert ran == Counter({("de", "cat"): 1, ("de", "dog"): 1})


# --- cache_ttl ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["node", "run"])
def test_entries_older_than_the_ttl_are_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    store = SqliteStore(tmp_path / "cache.db")
    run_level = {} if where == "node" else {"cache_ttl": 60.0}

    class Expiring(Translate):
        cache_ttl = 60.0  # a setting is read from the class, never from instance state

    def run_at(offset: float) -> None:
        monkeypatch.setattr(cache_module.time, "time", lambda: real() + offset)
        node = Expiring("fr") if where == "node" else Translate("fr")
        pocketcore.run(node, {"words": ["cat", "dog"]}, cache=store, **run_level)

    real = time.time
    run_at(0)
    run_at(30)  # within the ttl: served
    assert ran == Counter({("fr", "cat"): 1, ("fr", "dog"): 1})
    run_at(120)  # past it: computed again, and stored anew
    run_at(150)
    assert ran == Counter({("fr", "cat"): 2, ("fr", "dog"): 2})


def test_a_bad_ttl_names_its_source() -> None:
    with pytest.raises(pocketcore.ConfigError, match="cache_ttl must be a positive"):
        pocketcore.run(Translate("fr"), {"words": []}, cache="memory", cache_ttl=0)


# --- attributes that do not pickle ----------------------------------------------------------


class Client:
    """Stands for an API client: it holds a lock, so it does not pickle."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.lock = threading.Lock()


class Ask(pocketcore.BatchNode):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.client = Client(model)

    def prep(self, shared: Any) -> Any:
        return shared["questions"]

    def exec(self, question: str) -> str:
        ran[self.client.model, question] += 1
        return f"{self.client.model}: {question}"


class AskByModel(Ask):
    def cache_key(self, question: str) -> Any:
        return (self.client.model, question)


def test_a_node_whose_attributes_do_not_pickle_runs_uncached_with_one_warning() -> None:
    store = MemoryStore()
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pocketcore.run(Ask("small"), {"questions": ["why", "how"]}, cache=store)
        said = [str(w.message) for w in caught if w.category is CacheWarning]
        assert said == [
            "Ask is not cached: its attribute client cannot be pickled (TypeError: cannot "
            "pickle '_thread.lock' object); give it a cache_key method (which replaces its "
            "attributes and params in the key), or cache=False"
        ]
    assert ran == Counter({("small", "why"): 2, ("small", "how"): 2})


def test_a_cache_key_stands_for_attributes_that_do_not_pickle() -> None:
    store = MemoryStore()
    for model in ("small", "small", "large"):
        pocketcore.run(AskByModel(model), {"questions": ["why"]}, cache=store)
    assert ran == Counter({("small", "why"): 1, ("large", "why"): 1})


def test_a_factory_made_class_is_keyed_by_what_it_closes_over() -> None:
    def make(suffix: str) -> type[pocketcore.BatchNode]:
        class Suffixed(pocketcore.BatchNode):
            def prep(self, shared: Any) -> Any:
                return ["x"]

            def exec(self, item: str) -> str:
                return item + suffix

            def post(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
                shared["out"] = exec_res

        return Suffixed

    store = MemoryStore()
    for suffix in ("!", "?"):
        shared: dict[str, Any] = {}
        pocketcore.run(make(suffix)(), shared, cache=store)
        assert shared["out"] == ["x" + suffix]


def test_the_identity_of_a_node_ignores_its_bookkeeping() -> None:
    from pocketcore._runtime.identity import node_identity

    a, b = Translate("fr"), Translate("fr")
    b >> Translate("de")
    b.cur_retry = 3
    b.set_params({})
    assert node_identity(a, instance=True) == node_identity(b, instance=True)
    b.lang = "de"
    assert node_identity(a, instance=True) != node_identity(b, instance=True)


# --- the README's kill-and-resume story ---------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL")
def test_the_readme_story_a_killed_run_resumes_with_what_it_stored(tmp_path: Path) -> None:
    target = str(ROOT / "examples" / "parallel_summaries" / "target.py") + ":flow"
    args = [sys.executable, "-m", "pocketcore", "run", target, "--max-concurrency", "2"]
    args += ["--cache", "summaries.db"]
    env = {**os.environ, "SUMMARY_DELAY": "0.5"}
    killed = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stored = 0
    deadline = time.monotonic() + 60
    try:
        while stored < 2 and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.05)
            stored = entries(tmp_path / "summaries.db")
    finally:
        killed.kill()
        killed.wait()
    stored = entries(tmp_path / "summaries.db")
    assert 2 <= stored < 8, "the run finished before it was killed, or stored nothing"
    done = command(*args[1:], "--output", "json", cwd=tmp_path, SUMMARY_DELAY="0.5")
    assert done.stderr == f"pocketcore: SummarizeAll: {stored} from cache, {8 - stored} computed\n"
    again = command(*args[1:], "--output", "json", cwd=tmp_path, SUMMARY_DELAY="0.5")
    assert json.loads(again.stdout) == json.loads(done.stdout)
    assert again.stderr == "pocketcore: SummarizeAll: 8 from cache, 0 computed\n"


def entries(path: Path) -> int:
    """The summaries the cache file holds (not its whole-batch entry), read as another process."""
    if not path.exists():
        return 0
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            (count,) = con.execute(
                "SELECT count(*) FROM entries WHERE node NOT LIKE '%[whole batches]'"
            ).fetchone()
    except sqlite3.Error:
        return 0  # not made yet
    con.close()
    return int(count)


def test_slots_are_attributes_too() -> None:
    from pocketcore._runtime.identity import node_identity

    class Slotted(pocketcore.BatchNode):
        __slots__ = ("lang",)

        def __init__(self, lang: str) -> None:
            super().__init__()
            self.lang = lang

    assert node_identity(Slotted("fr"), instance=True) != node_identity(
        Slotted("de"), instance=True
    )
    assert node_identity(Slotted("fr"), instance=True) == node_identity(
        Slotted("fr"), instance=True
    )
