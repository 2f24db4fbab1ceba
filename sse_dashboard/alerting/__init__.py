"""Alerting: turning samples and job check-ins into alerts, and telling people.

What this layer owns, one module each:

- ``alert``: the one alert shape rules and heartbeats share (``Alert``: ``to_dict()`` for the
  snapshot, the API and the kept state, ``for_notification()`` for the notifier), and the one
  step every change takes (``AlertOutlet``: post the ``alert.firing``/``alert.resolved`` event,
  then notify);
- ``rules``: threshold rules from the config file, checked against every sample;
- ``heartbeats``: jobs that say "I ran" (``/api/push/<name>``), and an alert when one goes quiet;
- ``schedule``: when a job is expected to run: a period, or a 5-field cron expression in a time
  zone (``next_after``), standard library only;
- ``jobs``: job monitors pinged on Healthchecks' URL shapes (start, success, fail, exit status,
  log), and one alert when a job hangs, runs late, fails, finishes too fast or runs too often;
- ``notify``: delivering each change to the notify targets, one queue and sender thread each,
  with retries, and the notifier's own clock;
- ``flood``: flood control, whether a change goes to a target now (``repeat``);
- ``status``: status pages (#26): what a page lists, each component's state, its incidents and
  maintenance notices, and the view built once a sample for the page and its stream;
- ``uptime``: a component's seconds up and down per hour and per UTC day (the page's windows
  and 90 daily bars);
- ``targets``: what a notify target is and the bytes it receives (JSON signed as Standard
  Webhooks, ntfy, Slack, Discord).

How a change flows, on the sampler's thread until it is queued: the sampler hands each
snapshot to ``AlertEngine.evaluate`` and ``Heartbeats.check``; what fires or resolves comes back
as ``AlertChange``s, is kept (``persist``), and goes to the ``AlertOutlet`` outside the engine's
lock: posted to the event log, then ``Notifier.alert_changed``, which asks flood control and
queues; each target's sender thread delivers; the notifier's clock thread sends the firings
that waited out ``repeat``.

What it may import: the standard library, ``outbound`` (Retry-After), the registry's and the sampler's data (the snapshot's
shape and series names), and the event log. Storage only through the callables ``build_app``
gives at construction (``persist``, ``state``), posting only through ``post``; never ``web/``
(HTTP status codes, routes and the server are above this layer).
"""
