"""Hypothesis strategies shared by the kernel tests."""

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
