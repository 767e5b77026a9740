"""The Studio's web app (Starlette): the page, the MJPEG stream, and a small JSON API.

Safety: requests from other hosts than this one need the token printed at start (as a
``?token=`` in the URL, then a cookie), else 403. Nothing reads a path from a request: every
file is named by an id the server made, so ``../`` and absolute paths have nothing to reach.
Uploads stream to a temporary folder up to ``upload_limit`` bytes and are checked by content
(decoded as a picture or a video); anything else is refused with a message and deleted.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

from ..errors import StylizeError
from .core import VIDEO_SUFFIXES

STATIC = Path(__file__).parent / "static"
LOCAL = {"127.0.0.1", "::1", "localhost"}
COOKIE = "stylize_token"


def create_app(studio, token: str | None = None, upload_limit: int = 150 * 1024 * 1024):
    """The ASGI app over a started ``Studio``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    token = token or secrets.token_urlsafe(16)
    api = _Api(studio, upload_limit)
    routes = [Route("/", api.page("index.html")), Route("/view", api.page("view.html")),
              Route("/static/{name}", api.static), Route("/stream.mjpg", api.stream),
              Route("/api/state", api.state), Route("/api/settings", api.settings, methods=["POST"]),
              Route("/api/styles/{sid}/thumb", api.thumb), Route("/api/upload", api.upload, methods=["POST"]),
              Route("/api/snapshot", api.snapshot, methods=["POST"]), Route("/api/stills/{name}", api.still),
              Route("/api/record", api.record, methods=["POST"]), Route("/api/outputs", api.outputs, methods=["POST"]),
              Route("/api/files/{fid}/preview", api.preview), Route("/api/sheet", api.sheet),
              Route("/api/frame/{which}", api.frame), Route("/api/jobs", api.jobs, methods=["GET", "POST"]),
              Route("/api/jobs/events", api.job_events), Route("/api/jobs/{jid}/cancel", api.cancel, methods=["POST"]),
              Route("/api/jobs/{jid}/download", api.download)]
    app = Starlette(routes=routes, middleware=[Middleware(_TokenGate, token=token)])
    app.state.token = token
    return app


class _TokenGate:
    """403 for other hosts unless they bring the token (query, then cookie)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        request = Request(scope)
        host = request.client.host if request.client else ""
        given = request.query_params.get("token") or request.cookies.get(COOKIE)
        if host not in LOCAL and not (given and secrets.compare_digest(given, self.token)):
            return await PlainTextResponse("forbidden: open the URL with the token that `stylize studio` printed",
                                           status_code=403)(scope, receive, send)
        if request.query_params.get("token"):
            async def send_with_cookie(message):
                if message["type"] == "http.response.start":
                    message.setdefault("headers", []).append(
                        (b"set-cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()))
                await send(message)
            return await self.app(scope, receive, send_with_cookie)
        return await self.app(scope, receive, send)


def _error(message: str, status: int = 400):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _jpeg(rgb) -> bytes:
    import cv2

    return cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


class _Api:
    def __init__(self, studio, upload_limit: int):
        self.studio, self.limit = studio, upload_limit

    def page(self, name: str):
        async def handler(request):
            from starlette.responses import FileResponse

            return FileResponse(STATIC / name, media_type="text/html")
        return handler

    async def static(self, request):
        from starlette.responses import FileResponse

        name = request.path_params["name"]
        known = {p.name: p for p in STATIC.iterdir() if p.suffix in (".js", ".css", ".svg")}
        if name not in known:  # only files this package ships: no path is ever joined from a request
            return _error("not found", 404)
        return FileResponse(known[name])

    async def stream(self, request):
        from starlette.responses import StreamingResponse

        hub = self.studio.hub

        async def frames():
            seq = 0
            while not await request.is_disconnected():
                seq, jpeg = await asyncio.to_thread(hub.wait, seq, 1.0)
                if jpeg:
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode()
                           + b"\r\n\r\n" + jpeg + b"\r\n")
        return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    async def state(self, request):
        from starlette.responses import JSONResponse

        return JSONResponse(self.studio.state())

    async def settings(self, request):
        from starlette.responses import JSONResponse

        try:
            self.studio.apply(await request.json())
        except (KeyError, ValueError, TypeError) as e:
            return _error(f"bad setting: {e}")
        return JSONResponse({"ok": True})

    async def thumb(self, request):
        from starlette.responses import Response

        sid = request.path_params["sid"]
        if sid not in self.studio.gallery.paths:
            return _error("no such style", 404)
        return Response(await asyncio.to_thread(self.studio.gallery.thumb, sid), media_type="image/jpeg")

    async def upload(self, request):
        """The raw file as the body; ?kind=style|file&name=NAME (the name only picks a suffix)."""
        from starlette.responses import JSONResponse

        kind = request.query_params.get("kind", "file")
        if kind not in ("style", "file"):
            return _error("kind must be style or file")
        suffix = Path(request.query_params.get("name", "upload")).suffix.lower()
        suffix = suffix if suffix in (".jpg", ".jpeg", ".png", ".webp", ".bmp", *VIDEO_SUFFIXES) else ".bin"
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.limit:
            return _error(f"the file is {declared / 2**20:.0f} MB, over the studio's {self.limit / 2**20:.0f} MB upload "
                          f"limit (stylize studio --upload-limit-mb N)", 413)
        _, path = self.studio.work.new_path("styles" if kind == "style" else "files", suffix)
        size = 0
        with open(path, "wb") as f:
            async for block in request.stream():
                size += len(block)
                if size > self.limit:
                    f.close()
                    path.unlink(missing_ok=True)
                    return _error(f"the file is over the studio's {self.limit / 2**20:.0f} MB limit", 413)
                f.write(block)
        try:
            info = await asyncio.to_thread(self.studio.add_upload, path, kind, request.query_params.get("name", ""))
        except StylizeError as e:
            path.unlink(missing_ok=True)
            return _error(str(e), 415)
        return JSONResponse(info)

    async def snapshot(self, request):
        from starlette.responses import JSONResponse

        path = self.studio.snapshot()
        if path is None:
            return _error("no frame yet", 409)
        return JSONResponse({"url": f"/api/stills/{path.name}"})

    async def still(self, request):
        from starlette.responses import FileResponse

        name = request.path_params["name"]
        stills = {p.name: p for p in (self.studio.work.root / "stills").iterdir()}
        return FileResponse(stills[name], media_type="image/png") if name in stills else _error("not found", 404)

    async def record(self, request):
        from starlette.responses import JSONResponse

        body = await request.json()
        seconds = body.get("seconds")
        starting = self.studio.record(float(seconds) if seconds else None)
        return JSONResponse({"recording": starting})

    async def outputs(self, request):
        from starlette.responses import JSONResponse

        body = await request.json()
        try:
            await asyncio.to_thread(self.studio.set_output, body.get("kind"), bool(body.get("on")), body.get("target"))
        except StylizeError as e:
            return _error(str(e))
        return JSONResponse({"outputs": self.studio.state()["outputs"]})

    async def preview(self, request):
        from starlette.responses import Response

        fid = request.path_params["fid"]
        styles = [s for s in request.query_params.get("styles", self.studio.current).split(",") if s]
        if fid not in self.studio.files or any(s not in self.studio.gallery.paths for s in styles):
            return _error("no such file or style", 404)
        img = await asyncio.to_thread(self.studio.preview, fid, styles, float(request.query_params.get("alpha", 1)))
        return Response(_jpeg(img), media_type="image/jpeg")

    async def sheet(self, request):
        from starlette.responses import Response

        fid = request.query_params.get("file")
        if fid is not None and fid not in self.studio.files:
            return _error("no such file", 404)
        try:
            img = await asyncio.to_thread(self.studio.sheet, fid)
        except StylizeError as e:
            return _error(str(e), 409)
        return Response(_jpeg(img), media_type="image/jpeg")

    async def frame(self, request):
        """The live frame as PNG: 'input' (what the camera gave) or 'output' (what was shown)."""
        import cv2
        from starlette.responses import Response

        which = request.path_params["which"]
        img = {"input": self.studio.last_input, "output": self.studio.controller.last_output}.get(which)
        if img is None:
            return _error("no such frame (yet)", 404)
        return Response(cv2.imencode(".png", img[..., ::-1])[1].tobytes(), media_type="image/png")

    async def jobs(self, request):
        from starlette.responses import JSONResponse

        if request.method == "POST":
            body = await request.json()
            fid, styles = body.get("file"), body.get("styles") or [self.studio.current]
            if fid not in self.studio.files or any(s not in self.studio.gallery.paths for s in styles):
                return _error("no such file or style", 404)
            job = self.studio.submit_job(fid, styles, body.get("settings", {}))
            return JSONResponse(job.public())
        return JSONResponse([j.public() for j in self.studio.jobs.values()])

    async def job_events(self, request):
        """Server-sent events: the job list whenever it changes (progress pushed, not polled)."""
        from starlette.responses import StreamingResponse

        async def events():
            last = None
            while not await request.is_disconnected():
                now = json.dumps([j.public() for j in self.studio.jobs.values()])
                if now != last:
                    last = now
                    yield f"data: {now}\n\n"
                await asyncio.sleep(0.25)
        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def cancel(self, request):
        from starlette.responses import JSONResponse

        job = self.studio.jobs.get(request.path_params["jid"])
        if job is None:
            return _error("no such job", 404)
        job.cancel.set()
        return JSONResponse(job.public())

    async def download(self, request):
        from starlette.responses import FileResponse

        job = self.studio.jobs.get(request.path_params["jid"])
        if job is None or job.output is None or not job.output.exists():
            return _error("no such render (yet)", 404)
        return FileResponse(job.output, filename=job.name)
