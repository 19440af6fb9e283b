"""The settings table: one row per run-level setting, each rule of a setting written once.

A setting can be given in many places: a node's or flow's keyword or class
attribute, an argument of :func:`pocketcore.run`, an environment variable, a
configuration file, a flow file, an option of ``pocketcore run``. Every one
of them is derived from the row of the setting in :data:`SETTINGS`: its name
(the keyword, the attribute, the file key), its environment variable, how
text is read (the environment, the command line), how a value is checked (in
code, in a file), the nodes it applies to and its help line.

A new setting is one row here, plus one key in :class:`SettingKeywords` (the
constructor keywords as type checkers and IDEs see them), plus the place
that uses it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Executor
from pocketcore._core.store import Store
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.values import check_count, check_rate

__all__ = [
    "CACHE_OFF",
    "GIVEN",
    "ON_ERROR",
    "SETTINGS",
    "STEP_SETTINGS",
    "SettingKeywords",
    "Spec",
    "check_cache_value",
    "check_executor_value",
    "check_limiter_value",
    "check_on_error",
    "configure",
    "refuse_cache_true",
    "step_settings",
]

#: The error policies: fail fast, or collect failures as ``pocketcore.Failed``.
ON_ERROR = ("raise", "collect")

#: The strings that turn the cache off (in the environment, a file, the CLI, code).
CACHE_OFF = ("off", "false")


class SettingKeywords(TypedDict, total=False):
    """The settings as keyword arguments of nodes, flows and :func:`pocketcore.run`.

    One key per row of :data:`SETTINGS` (a test holds them equal), typed as
    the node attribute of the same name.
    """

    executor: str | Executor | None
    max_concurrency: int | None
    max_per_second: float | None
    limiter: str | Limiter | None
    on_error: str | None
    timeout: float | None
    cache: str | os.PathLike[str] | Store | bool | None
    cache_ttl: float | None


# --- the rules -----------------------------------------------------------------------


def _name_of(what: str) -> Callable[[object, str], str]:
    """The check of a name given as plain data (a file, the environment): a non-empty string."""

    def check(value: object, source: str) -> str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{what} must be a non-empty string, got {value!r} from {source}")
        return value

    return check


def check_executor_value(value: object, source: str) -> str | Executor | None:
    """Check that ``value`` can name an executor: ``None``, a name, or an executor object."""
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, type):
        raise ConfigError(
            f"executor {value.__name__} (from {source}) is a class; pass an instance of it"
        )
    if isinstance(value, Executor):
        return value
    raise ConfigError(
        f"executor must be an executor name (str) or an executor object, got "
        f"{value!r} ({type(value).__name__}) from {source}"
    )


def check_on_error(value: object, source: str) -> str | None:
    """Return ``value`` as an error policy, ``"raise"`` or ``"collect"``, or raise ConfigError."""
    if value is None or value in ON_ERROR:
        return value
    raise ConfigError(
        f"on_error must be one of {', '.join(map(repr, ON_ERROR))}, got {value!r} from {source}"
    )


def check_limiter_value(value: object, source: str) -> str | Limiter | None:
    """Check that ``value`` can name a limiter: ``None``, a declared name, or a ``Limiter``."""
    if value is None or isinstance(value, Limiter) or (isinstance(value, str) and value):
        return value
    raise ConfigError(
        f"limiter must be a limiter name (str) or a pocketcore.Limiter, got {value!r} "
        f"({type(value).__name__}) from {source}"
    )


def _check_timeout(value: object, source: str) -> float | None:
    return check_rate(value, source, "timeout")


def check_cache_value(value: object, source: str) -> str | Store | bool | None:
    """Check a cache setting: a store specification, a :class:`~pocketcore.Store`, or a bool.

    ``None`` leaves it unset; ``False`` (or the string ``"off"``) turns the
    cache off; a path (``str`` or ``os.PathLike``) or ``"NAME:..."`` names a
    store. ``True`` opts a node in to the store in force (a plain node is
    cached only so); it names no store, so a run or a flow refuses it when
    it looks for one (see :func:`refuse_cache_true`). The store itself is
    opened when a node first needs it.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.strip():
        return False if value.strip().lower() in CACHE_OFF else value
    if isinstance(value, bytes):
        raise ConfigError(
            f"cache must be a str path or store specification, got bytes from {source}"
        )
    if isinstance(value, Store):
        return value
    raise ConfigError(
        f"cache must be a store specification (a path, 'memory', 'NAME:...'), a "
        f"pocketcore.Store, or False; got {value!r} ({type(value).__name__}) from {source}"
    )


def refuse_cache_true(source: str) -> ConfigError:
    """The error for ``cache=True`` where a store must be named: a run's, a flow's."""
    return ConfigError(
        f"cache=True (from {source}) does not say where to keep results: name a store "
        "('memory', a file path such as 'cache.db', 'sqlite:///cache.db'), or False for none "
        "(True opts one node in to the store the run names)"
    )


def _check_ttl(value: object, source: str) -> float | None:
    return check_rate(value, source, "cache_ttl")


def _check_cache_text(value: object, source: str) -> str | bool | None:
    if value is False or (isinstance(value, str) and value.strip()):
        return check_cache_value(value, source)  # type: ignore[return-value]
    raise ConfigError(
        f"cache must be a store specification (a path, 'memory', 'NAME:...') or false, "
        f"got {value!r} from {source}"
    )


def _parallel_or_flow(cls: type[Any]) -> bool:
    # A plain node's one input, or a sequential batch's items, have nothing to
    # pace, share or collect: the controls of a batch's items apply where items fan out.
    return bool(cls.fans_out or cls.holds_nodes)


def _async_or_flow(cls: type[Any]) -> bool:
    # A timeout stops an awaited exec_async; a blocking exec cannot be stopped.
    return bool(cls.async_exec or cls.holds_nodes)


# --- the descriptor ------------------------------------------------------------------


@attrs.frozen
class Spec:
    """One setting: its names, how it is read and checked, and where it applies.

    Attributes:
        name: The keyword, node attribute, ``pocketcore.run`` argument and
            configuration (and flow) file key.
        check: Checks a value given in code (a keyword, an attribute, an
            argument); returns it as used, or raises :class:`ConfigError`
            naming the source it is given.
        help: What the setting does, as ``pocketcore run --help`` says it.
        expects: What a value must be, as a flow file's problem says it
            (``"expected <expects>, got ..."``).
        unset: What it means when nothing sets it, as ``--verbose`` says it.
        metavar: The value of its command-line option, as ``--help`` shows it.
        plain: Checks a value of plain data (a configuration or flow file, or
            text): no objects. ``check`` when not given.
        convert: Turns text (the environment, the command line) into the
            value ``plain`` checks; ``None`` keeps the text.
        usage: What text must be (``"must be an integer >= 1"``): what the
            environment's and the command line's errors say of text that
            does not convert or check. ``""``: the option takes any text.
        choices: The only values there are, when they are a few words.
        claims: The types of a class attribute taken as this setting. A
            program may keep an attribute of the same name for its own
            purposes (a ``ThreadPoolExecutor`` as ``executor``, a method
            ``on_error``); a value of another type is left alone.
        applies: Whether the setting can do anything for a node class;
            ``None``: for every class. Given to the constructor of a class
            it cannot apply to, it is refused (:func:`configure`); a class
            attribute of such a class is left alone.
        applies_to: Where the setting applies, in words, for that refusal.
    """

    name: str
    check: Callable[[object, str], Any]
    help: str
    expects: str
    unset: str
    metavar: str | None = None
    plain: Callable[[object, str], Any] = attrs.field(
        default=attrs.Factory(lambda self: self.check, takes_self=True)
    )
    convert: Callable[[str], object] | None = None
    usage: str = ""
    choices: tuple[str, ...] | None = None
    claims: tuple[type, ...] = (object,)
    applies: Callable[[type[Any]], bool] | None = None
    applies_to: str = ""

    @property
    def env(self) -> str:
        """The environment variable: ``POCKETCORE_`` and the name in capitals."""
        return f"POCKETCORE_{self.name.upper()}"

    @property
    def option(self) -> str:
        """The option of ``pocketcore run``: ``--`` and the name with dashes."""
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str, source: str) -> Any:
        """The value of ``text`` (from the environment or the command line), checked.

        Raises:
            ConfigError: The text does not convert, or its value is unusable;
                the message names ``source``.
        """
        value: object = text
        if self.convert is not None:
            try:
                value = self.convert(text)
            except ValueError:
                raise ConfigError(f"{self.name} {self.usage}, got {text!r} from {source}") from None
        return self.plain(value, source)

    def own(self, node: object) -> Any:
        """The node's (or flow's) own value of this setting, unchecked; ``None`` when it has none.

        The rule that tells pocketcore's settings from a node's own
        attributes: a setting is read from what was given to pocketcore's
        constructor (:func:`configure`), else from a class attribute of a
        class it applies to, whose value is of a type it :attr:`claims`.
        Never from the instance's own attributes: ``self.timeout = 30`` in
        a PocketFlow program's ``__init__`` is that program's business.
        """
        given = getattr(node, "__dict__", _NOTHING).get(GIVEN)
        if given is not None:
            found = given.get(self.name)
            if found is not None:
                return found
        return self.declared(type(node))

    def declared(self, cls: type[Any]) -> Any:
        """The value a node class declares for this setting (a class attribute), unchecked.

        ``None`` when it declares none, when the setting does not apply to
        the class, or when the attribute is not of a type :attr:`claims`.
        """
        if self.applies is not None and not self.applies(cls):
            return None
        value = getattr(cls, self.name, None)
        return value if isinstance(value, self.claims) else None


#: The key, in a node's ``__dict__``, of the settings given to pocketcore's constructor
#: (in the instance dict, so that the copy of a node a flow runs at each step has them too).
GIVEN = "_pocketcore_given"
_NOTHING: Mapping[str, Any] = {}


def _table(*specs: Spec) -> Mapping[str, Spec]:
    return {spec.name: spec for spec in specs}


_BATCHES = (
    "the items of the parallel batch classes (AsyncParallelBatchNode, ParallelBatchNode, "
    "and the nodes inside a flow or parallel batch flow that sets it); a plain node's one "
    "input and a sequential batch's items have nothing to pace, share or collect"
)

#: Every run-level setting, in the order ``--verbose`` and ``--help`` list them.
SETTINGS: Mapping[str, Spec] = _table(
    Spec(
        "executor",
        check_executor_value,
        help="the executor for the run (see 'pocketcore executors'); overrides the flow "
        "file's [config] and the environment",
        expects="an executor name (str)",
        unset="the default: asyncio, or trio when the flow runs on trio",
        metavar="NAME",
        plain=_name_of("executor"),
        claims=(str, Executor),
    ),
    Spec(
        "max_concurrency",
        check_count,
        help="the most items of a parallel batch in flight at once (an integer >= 1)",
        expects="an integer >= 1",
        unset="no limit",
        metavar="N",
        convert=int,
        usage="must be an integer >= 1",
        claims=(int,),
    ),
    Spec(
        "max_per_second",
        check_rate,
        help="the most items of a parallel batch started per second, spaced evenly "
        "(a positive number)",
        expects="a positive number of items per second",
        unset="no pacing",
        metavar="RATE",
        convert=float,
        usage="must be a positive number",
        claims=(int, float),
        applies=_parallel_or_flow,
        applies_to=_BATCHES,
    ),
    Spec(
        "limiter",
        check_limiter_value,
        help="a limiter declared under [tool.pocketcore.limiters.NAME] in pyproject.toml "
        "(or [limiters.NAME] in pocketcore.toml), shared by every parallel batch item",
        expects="the name of a declared limiter (str)",
        unset="none",
        metavar="NAME",
        plain=_name_of("limiter"),
        claims=(str, Limiter),
        applies=_parallel_or_flow,
        applies_to=_BATCHES,
    ),
    Spec(
        "on_error",
        check_on_error,
        help="raise (default): the first failing item fails the run; collect: failed items "
        "become pocketcore.Failed in their slot, and post gets the whole list",
        expects="'raise' or 'collect'",
        unset="the default: raise",
        choices=ON_ERROR,
        claims=(str,),
        applies=_parallel_or_flow,
        applies_to=_BATCHES,
    ),
    Spec(
        "timeout",
        _check_timeout,
        help="the most seconds each attempt of an async node's exec_async (or of each item "
        "of an async batch) may take; a longer one fails with TimeoutError, and retries apply",
        expects="a positive number of seconds",
        unset="none",
        metavar="SECONDS",
        convert=float,
        usage="must be a positive number of seconds",
        claims=(int, float),
        applies=_async_or_flow,
        applies_to="the async nodes (an AsyncNode's exec_async, each item of an async batch) "
        "and the flows: a blocking exec runs on until it returns, and no timeout can stop "
        "it; make exec async, or bound the call inside exec itself (most clients take a "
        "timeout)",
    ),
    Spec(
        "cache",
        check_cache_value,
        help="keep the results of exec in the store SPEC names, and use them on later runs: "
        "a file path (an SQLite file, such as cache.db), sqlite:///PATH, or NAME:... for a "
        "store a plugin registers ('off' is --no-cache); the items of batch nodes are cached "
        "unless a node says cache=False, plain nodes only when they say cache=True",
        expects="a store specification (a file path, 'sqlite:///PATH', 'NAME:...') or false",
        unset="off",
        metavar="SPEC",
        plain=_check_cache_text,
        usage="must name a store (a path, NAME:...)",
        claims=(str, bool, os.PathLike, Store),
    ),
    Spec(
        "cache_ttl",
        _check_ttl,
        help="the most seconds a cached result is used after it was computed; an older one "
        "is computed again",
        expects="a positive number of seconds",
        unset="no expiry",
        metavar="SECONDS",
        convert=float,
        usage="must be a positive number of seconds",
        claims=(int, float),
    ),
)


def configure(node: object, given: Mapping[str, object], *, source: str | None = None) -> None:
    """Give a node or flow the settings given to its constructor (or its flow file), each checked.

    They are kept where :meth:`Spec.own` reads them first, and set as the
    node's attributes too, so that ``node.timeout`` reads back what was given.

    Args:
        node: The node or flow.
        given: Setting name -> value; ``None`` values are skipped.
        source: How an error names where a value came from; the
            constructor's keyword by default.

    Raises:
        TypeError: A keyword is not a setting, as for any unknown keyword.
        ConfigError: A value has the wrong type or is out of range, or the
            setting cannot apply to the node's class; the message names the
            keyword and the class.
    """
    cls = type(node)
    name = cls.__name__
    found: dict[str, Any] = {}
    for key, value in given.items():
        spec = SETTINGS.get(key)
        if spec is None:
            raise TypeError(f"{name}.__init__() got an unexpected keyword argument {key!r}")
        if value is None:
            continue
        where = f"argument {key}= of {name}()" if source is None else source.format(key=key)
        if spec.applies is not None and not spec.applies(cls):
            raise ConfigError(
                f"{key} (from {where}) does nothing for {name}: it applies to {spec.applies_to}"
            )
        found[key] = spec.check(value, where)
    if found:
        d = node.__dict__
        d[GIVEN] = {**d.get(GIVEN, _NOTHING), **found}
        d.update(found)
        if _steps_look_up(found):
            d[STEP_SETTINGS] = True


#: The attribute (of a node class, or of a node's ``__dict__``) that tells a node
#: step whether the node has settings of its own that the step must look up: a
#: result cache, a timeout. Set per class as it is defined (:func:`step_settings`)
#: and per node by :func:`configure`, so that a step without them asks nothing.
STEP_SETTINGS = "_step_settings"


def _steps_look_up(values: Mapping[str, Any]) -> bool:
    cache = values.get("cache")
    return (cache is not None and cache is not False) or values.get("timeout") is not None


def step_settings(cls: type[Any]) -> bool:
    """Whether ``cls`` declares a setting its nodes' steps must look up (a cache, a timeout)."""
    return _steps_look_up({key: SETTINGS[key].declared(cls) for key in ("cache", "timeout")})
