"""Hypothesis strategies for the kernel tests, all in one place.

Executor names and limits (good and bad, as arguments and as environment
text), item lists, node attributes (``test_flows``), random PocketFlow
programs (``test_compat_properties``), ``pocketcore.run``'s inputs
(``test_run``) and what ``pocketcore cache`` shows (``cli/test_cache``).
"""

from __future__ import annotations

from hypothesis import strategies as st

executor_names = st.sampled_from(["sequential", "asyncio", "trio"])
limits = st.one_of(st.none(), st.integers(min_value=1, max_value=8))
bad_limits = st.one_of(
    st.integers(max_value=0),
    st.booleans(),
    st.floats(allow_nan=False),
    st.text(max_size=3),
)
env_limit_text = st.one_of(
    st.integers(min_value=1, max_value=10**6).map(str),
)
bad_env_limit_text = st.one_of(
    st.integers(max_value=0).map(str),
    st.sampled_from(["x", "1.5", "ten", "1e3", "-", "0x10"]),
)
item_lists = st.lists(st.integers(min_value=-1000, max_value=1000), max_size=20)

# Attribute values a user may set on a node before a flow copies it (test_flows).
node_attribute_dicts = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=4),
    st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.none()),
    max_size=5,
)


# --------------------------------------------------------------------------
# Programs for the PocketFlow differential properties (test_compat_properties):
# specs that build_sync_graph / build_async_graph there turn into programs.
# --------------------------------------------------------------------------

ACTIONS = ("default", "a", "b")  # edge labels
RESULTS = (None, "default", "a", "b", "stop")  # what post may return ("stop": no edge)


@st.composite
def sync_graphs(draw):
    n = draw(st.integers(1, 4))
    nodes = [
        {
            "kind": draw(st.sampled_from(["Node", "BatchNode"])),
            "retries": draw(st.integers(0, 3)),
            "fails": draw(st.integers(0, 3)),
            "fallback": draw(st.booleans()),
            "actions": draw(st.lists(st.sampled_from(RESULTS), min_size=1, max_size=3)),
            "items": draw(st.none() | st.lists(st.integers(0, 3), max_size=3)),
            "params": draw(st.none() | st.dictionaries(st.sampled_from("pq"), st.integers(0, 2))),
        }
        for _ in range(n)
    ]
    edges = draw(
        st.lists(
            st.tuples(
                st.integers(0, n - 1),
                st.sampled_from(ACTIONS),
                st.integers(0, n - 1),
                st.sampled_from(["next", "op"]),
            ),
            max_size=6,
        )
    )
    return {
        "nodes": nodes,
        "edges": edges,
        "start": draw(st.integers(0, n - 1)),
        "flow": draw(st.sampled_from(["Flow", "BatchFlow", "nested"])),
        "flow_params": draw(st.dictionaries(st.sampled_from("pqr"), st.integers(0, 2), max_size=2)),
        "passes": draw(
            st.lists(
                st.dictionaries(st.sampled_from("pqr"), st.integers(0, 2), max_size=2), max_size=3
            )
        ),
        "budget": draw(st.integers(1, 8)),
    }


ASYNC_KINDS = ("AsyncNode", "AsyncBatchNode", "AsyncParallelBatchNode", "Node")


@st.composite
def async_graphs(draw):
    flow = draw(st.sampled_from(["AsyncFlow", "AsyncBatchFlow", "AsyncParallelBatchFlow"]))
    n = draw(st.integers(1, 4))
    nodes = []
    for _ in range(n):
        kind = draw(st.sampled_from(ASYNC_KINDS))
        retries = draw(st.integers(1, 3))
        # items: (index, ticks to wait, attempts that fail)
        item = st.tuples(st.integers(0, 3), st.integers(0, 3))
        if kind in ("AsyncNode", "Node"):
            items = (0, *draw(item))  # prep's result is a single pseudo-item
        else:
            items = [(i, *draw(item)) for i in range(draw(st.integers(0, 4)))]
        nodes.append(
            {
                "kind": kind,
                "retries": retries,
                "items": items,
                # A failing parallel item (or pass) would leave siblings running on
                # PocketFlow (intended fix c, see test_compat_fixes): always fall back there.
                "fallback": (
                    kind == "AsyncParallelBatchNode"
                    or flow == "AsyncParallelBatchFlow"
                    or draw(st.booleans())
                ),
                "actions": draw(st.lists(st.sampled_from(RESULTS), min_size=1, max_size=3)),
            }
        )
    edges = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.sampled_from(ACTIONS), st.integers(0, n - 1)),
            max_size=5,
        )
    )
    return {
        "nodes": nodes,
        "edges": edges,
        "start": draw(st.integers(0, n - 1)),
        "flow": flow,
        "passes": draw(st.lists(st.fixed_dictionaries({"pass": st.integers(0, 3)}), max_size=3)),
        "budget": draw(st.integers(1, 6)),
    }


# --------------------------------------------------------------------------
# pocketcore.run (test_run)
# --------------------------------------------------------------------------

# An executor choice for a run or a node: a name, or None for "not chosen here".
executor_choices = st.none() | executor_names
# What a target's post may return: run must hand back the very same object.
run_results = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.builds(object))
# Shared stores a caller may pass, the empty one included (it must not be replaced).
shared_stores = st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)


# --------------------------------------------------------------------------
# The result cache's command line (tests/cli/test_cache.py).

# Dotted names as a store labels node classes (module.Qualname): few parts,
# from a small alphabet, so that tails are often shared.
_name_parts = st.text(alphabet="abAB", min_size=1, max_size=2)
node_labels = st.lists(_name_parts, min_size=2, max_size=4).map(".".join)
node_label_sets = st.lists(node_labels, min_size=1, max_size=6, unique=True)
store_sizes = st.integers(min_value=0, max_value=10**27 - 10**23)  # below 999.95 YB
