"""Layer 1, errors and protocols: what every layer above may rely on.

The exceptions, the executor protocol with its capabilities, the store
protocol and :class:`BaseStore`, and what the lower layers know of a node
(``NodeLike``, ``NodeClass``) and of a limiter (``LimiterLike``). Imports
nothing of pocketcore's.
"""
