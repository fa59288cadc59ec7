"""Protocol-faithful local stand-ins for the services SecBot talks to (DESIGN.md §7).

Each emulator is a real HTTP server (aiohttp) that the production clients reach through their
base URLs only, plus a Python API for tests: seed data, inspect state, inject faults. Nothing
here imports ``secbot``: a stand-in restates the documented behaviour of the service it fakes,
so it can catch the product misreading that service (tests/test_architecture.py guards this).

- :mod:`secbot_emulators.elastic` — Elasticsearch (the endpoints SecBot uses) and Kibana's
  detection-engine alert status/tags API; ``python -m secbot_emulators.elastic``.
  ``_update_by_query`` scripts run through :mod:`secbot_emulators.painless`, a documented
  Painless subset.
- :mod:`secbot_emulators.slack` — Slack Web API, Socket Mode and a browser UI;
  ``python -m secbot_emulators.slack``.
- :mod:`secbot_emulators.providers` — enrichment providers for unit tests: an
  ``httpx.MockTransport`` script and a Resource Manager v3 server for the real GCP client.
- :mod:`secbot_emulators.providers_http` — every enrichment provider over real HTTP with
  failure modes (500, non-JSON body, slow, refused), for the enricher contract test.
"""
