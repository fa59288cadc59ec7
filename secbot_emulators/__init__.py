"""Protocol-faithful local stand-ins for the services SecBot talks to (DESIGN.md §7).

Each emulator is a real HTTP server (aiohttp) that the production clients reach through their
base URLs only, plus a Python API for tests: seed data, inspect state, inject faults.

- :mod:`secbot_emulators.elastic` — Elasticsearch (the endpoints SecBot uses) and Kibana's
  detection-engine alert status/tags API.
"""
