"""File uploads for the Slack emulator: the three steps of ``files_upload_v2``.

Slack's external upload flow (docs.slack.dev, files.getUploadURLExternal and
files.completeUploadExternal):

1. ``files.getUploadURLExternal`` with ``filename`` and ``length`` (bytes; both required:
   ``invalid_arguments``) answers ``{"ok": true, "upload_url": …, "file_id": "F…"}``. The
   upload URL is served by this emulator (``POST /_upload/v1/<file id>/<secret>``), as Slack
   serves it from files.slack.com: no token, the secret in the URL is the credential.
2. The client POSTs the bytes there (raw body, or a multipart form with a ``file`` part);
   ``200`` with ``OK - <length>``. A wrong secret or an unknown id is a 404; a second upload
   to the same URL is refused (410).
3. ``files.completeUploadExternal`` with ``files`` (a JSON array of ``{"id", "title"}``) and
   optionally ``channel_id``, ``thread_ts``, ``initial_comment``: an id that was never
   uploaded is ``file_not_found``; a channel the bot is not in is ``not_in_channel``; an unknown
   thread ``thread_not_found`` (as chat.postMessage). With a channel, the files are shared
   there (or in the thread) as one message with ``files`` and ``upload: true``, and the answer
   lists ``files`` as ``[{"id", "title"}]``. Without one the files stay private.

``files.info`` returns a completed file. ``GET /_files/<id>/<name>`` serves its bytes (the
file's ``url_private``) so the demo page can show a chart. Test hook: :meth:`SlackFiles.shared`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from secbot_emulators.slack_state import JsonDict, SlackError

if TYPE_CHECKING:
    from secbot_emulators.slack import SlackEmulator
    from secbot_emulators.slack_methods import Params, TokenKind

_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
          "txt": "text/plain", "csv": "text/csv", "json": "application/json",
          "pdf": "application/pdf"}


@dataclass
class StoredFile:
    """One file: reserved by step 1, its bytes from step 2, shared by step 3."""

    id: str
    name: str
    length: int
    secret: str
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    completed: bool = False
    shares: list[tuple[str, str]] = field(default_factory=list)  # (channel, message ts)

    @property
    def filetype(self) -> str:
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else "binary"

    def to_api(self, host: str, team: str, user: str, created: int) -> JsonDict:
        mimetype = _TYPES.get(self.filetype, "application/octet-stream")
        url = f"http://{host}/_files/{self.id}/{self.name}"
        out: JsonDict = {
            "id": self.id, "created": created, "timestamp": created, "name": self.name,
            "title": self.title or self.name, "mimetype": mimetype, "filetype": self.filetype,
            "pretty_type": self.filetype.upper(), "user": user, "user_team": team,
            "mode": "hosted", "is_external": False, "is_public": bool(self.shares),
            "size": len(self.data or b""), "url_private": url,
            "url_private_download": url + "?download=1", "permalink": url,
            "channels": sorted({channel for channel, _ in self.shares}),
        }
        if self.alt_txt:
            out["alt_txt"] = self.alt_txt
        return out


class SlackFiles:
    """The files methods and the upload/download routes of one :class:`SlackEmulator`."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator
        self.files: dict[str, StoredFile] = {}
        self._host = "127.0.0.1"

    def methods(self) -> dict[str, tuple[Any, TokenKind]]:
        return {"files.getUploadURLExternal": (self.get_upload_url, "bot"),
                "files.completeUploadExternal": (self.complete_upload, "bot"),
                "files.info": (self.info, "bot")}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/_upload/v1/{file_id}/{secret}", self.upload),
                web.get("/_files/{file_id}/{name}", self.download)]

    # --- step 1 ------------------------------------------------------------------------------
    def get_upload_url(self, params: Params) -> JsonDict:
        name = params.opt("filename")
        raw_length = params.opt("length")
        if not name or not raw_length or not raw_length.isdigit():
            raise SlackError("invalid_arguments")
        file_id = "F" + secrets.token_hex(5).upper()
        stored = StoredFile(id=file_id, name=name, length=int(raw_length),
                            secret=secrets.token_urlsafe(12), alt_txt=params.opt("alt_txt"))
        self.files[file_id] = stored
        self._host = params.host
        return {"ok": True, "file_id": file_id,
                "upload_url": f"http://{params.host}/_upload/v1/{file_id}/{stored.secret}"}

    # --- step 2 ------------------------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None or not secrets.compare_digest(stored.secret,
                                                        request.match_info["secret"]):
            return web.Response(status=404, text="Not Found")
        if stored.data is not None:
            return web.Response(status=410, text="upload URL already used")
        if request.content_type.startswith("multipart/"):
            data = await _multipart_file(request)
        else:
            data = await request.read()
        stored.data = data
        self.emu.workspace.touch()
        return web.Response(text=f"OK - {len(data)}")

    # --- step 3 ------------------------------------------------------------------------------
    def complete_upload(self, params: Params) -> JsonDict:
        items = params.structured("files", "invalid_arguments")
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments")
        chosen: list[StoredFile] = []
        for item in items:
            stored = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if stored is None or stored.data is None:
                raise SlackError("file_not_found")
            chosen.append(stored)
        for item, stored in zip(items, chosen, strict=True):
            stored.title = item.get("title") or stored.title or stored.name
        channel = params.opt("channel_id") or params.opt("channels")
        if channel:
            self._share(params, channel, chosen)
        for stored in chosen:
            stored.completed = True
        return {"ok": True, "files": [{"id": f.id, "title": f.title} for f in chosen]}

    def _share(self, params: Params, channel_id: str, chosen: list[StoredFile]) -> None:
        ws = self.emu.workspace
        channel = ws.channel(channel_id.split(",")[0])
        if not channel.has_member(ws.bot.user_id):
            raise SlackError("not_in_channel")
        created = int(float(ws.clock.next()))
        message = ws.post(channel.id, ws.bot.user_id, params.opt("initial_comment") or "",
                          thread_ts=params.opt("thread_ts") or None, bot_id=ws.bot.bot_id,
                          app_id=ws.bot.app_id)
        for stored in chosen:
            stored.shares.append((channel.id, message.ts))
        message.files = [f.to_api(params.host, ws.team_id, ws.bot.user_id, created)
                         for f in chosen]
        message.upload = True

    def info(self, params: Params) -> JsonDict:
        stored = self.files.get(params.opt("file") or "")
        if stored is None or not stored.completed:
            raise SlackError("file_not_found")
        ws = self.emu.workspace
        return {"ok": True, "file": stored.to_api(params.host, ws.team_id, ws.bot.user_id, 0)}

    # --- serving and test hooks ----------------------------------------------------------------
    async def download(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if (stored is None or stored.data is None or not stored.completed
                or stored.name != request.match_info["name"]):
            return web.Response(status=404, text="Not Found")
        mimetype = _TYPES.get(stored.filetype, "application/octet-stream")
        return web.Response(body=stored.data, content_type=mimetype,
                            headers={"X-Content-Type-Options": "nosniff"})

    def shared(self, channel: str, thread_ts: str | None = None) -> list[StoredFile]:
        """Files shared in ``channel`` (in the thread of ``thread_ts`` when given)."""
        ws = self.emu.workspace
        out = []
        for stored in self.files.values():
            for share_channel, ts in stored.shares:
                message = ws.channels[share_channel].messages[ts]
                if share_channel == channel and (thread_ts is None
                                                 or message.thread_ts == thread_ts):
                    out.append(stored)
        return out


async def _multipart_file(request: web.Request) -> bytes:
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name in ("file", "filename"):
            return bytes(await part.read(decode=False))
    return b""


__all__ = ["SlackFiles", "StoredFile"]
