"""Layer 6, dispatch: the one place where a batch's items meet their pipeline and an executor.

A batch resolves one :class:`~pocketcore._dispatch.plan.Plan` when it starts
(``plan.py``); each item then makes one trip through a stack of small
layers built from it (``stack.py``), each about one concern and in its own
module: the governor (``govern.py``), the report (``report.py``), the attempts and
their timeout (``attempts.py``), the cache (``cached.py``) and the collect
policy (``collect.py``). ``batch.py`` runs the batch, one path for local,
blocking (``threads.py``) and remote (``remote.py``) executors.
"""
