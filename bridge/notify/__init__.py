"""Operator notifications: what happened that a person should know, and the channels that tell them.

* :mod:`.events`: the typed operator events (a pool stopped, a rollover done,
  drift found at reconcile, a venue down and up again, a follower position
  closed by its venue) and :class:`~.events.OperatorEvents`, the in-process
  stream the daemon's services emit them on;
* :mod:`.outage`: :class:`~.outage.VenueWatch`, which turns each venue's
  connection state into ``VenueDown``/``VenueUp`` after a grace period;
* :mod:`.config`: the ``[notify]`` and ``[notify.email]`` tables of ``bridge.toml``;
* :mod:`.mail`: :class:`~.mail.MailNotifier`, e-mail over SMTP (``twisted.mail.smtp``).

A channel never holds up the order path: emitting an event only hands it to
the subscribers, which send in the background and swallow their own failures.
"""
