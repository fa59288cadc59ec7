"""A process that runs only the outbox worker, built from settings the way the service builds
it (``SECBOT_*`` environment), for the kill -9 test in ``tests/test_outbox.py``.

Every outcome is appended as one JSON line to the file named by ``OUTBOX_OUTCOMES``.
``python tests/outbox_process.py``; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import redis.asyncio as aioredis

from secbot.destinations.jobs import JobOutcome
from secbot.runtime.destinations import build_destinations, build_outbox, destination_client
from secbot.runtime.settings import load_settings


async def main() -> None:
    settings = load_settings()
    path = os.environ["OUTBOX_OUTCOMES"]

    async def sink(outcome: JobOutcome) -> None:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"key": outcome.job.key, "ok": outcome.ok,
                                  "error": outcome.error}) + "\n")

    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    async with destination_client(settings) as http:
        _, worker = build_outbox(settings, client, build_destinations(settings, http), sink)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
        print("ready", flush=True)
        await worker.run()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
