"""Export: this dashboard's samples pushed out to an engine built for many machines (#25).

- ``remote_write``: Prometheus remote write 1.0, encoded by hand: a ``WriteRequest`` in
  protobuf, framed as a snappy block of literals (pure functions, no state);
- ``writer``: ``RemoteWriter``, one thread per URL that takes each ``Sample`` without ever
  blocking the sampler, queues it (bounded), posts it, retries 5xx/429 with backoff and drops
  other 4xx with a counted reason; its state is read by ``/api/health``;
- ``queue``: ``TickQueue``, the ticks a writer has not sent, encoded once and kept in the data
  folder (a SQLite file per URL, apart from the history's) or in memory, bounded, oldest first out.

May import: the standard library, ``exposition`` (the one naming of series), ``sampler`` (the
``Sample`` it is handed), ``registry``, ``outbound`` (Retry-After), and each other; nothing of HTTP serving, alerting or
storage. No secret (a header, a password in the URL) is ever logged or put in its state.
"""
