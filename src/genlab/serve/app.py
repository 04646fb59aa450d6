"""The studio's web application: one page (``static/``: HTML, an ES module, CSS — no build step, no CDN), JSON
endpoints for actions, and one Server-Sent Events stream per page for progress and results. Everything passes
:class:`genlab.serve.security.Guard` first.

    GET  /                          the page          GET  /api/events             the event stream (SSE)
    GET  /api/jobs                  the queue         POST /api/jobs               {kind, params} → a queued job
    POST /api/jobs/ID/cancel        cancel a job      GET  /api/history?q=&fav=1   results, newest first
    POST /api/history/ID/favourite  {value}           POST /api/history/ID/delete  delete a result
    GET  /api/files/ID.png          a result's PNG    GET  /api/previews/ID.png    a running job's preview
    POST /api/upload[?for=segment]  an image (multipart "file") → {image, width, height, params}; for=segment
                                    also computes its segmentation embedding
    POST /api/segment               {image, points, labels, box} → three masks with their predicted IoU
    POST /api/segment/everything    {image} → every mask the automatic generator finds
    GET  /api/runs                  the run folders under --runs, each with its logged losses and latest samples
    GET  /api/runs/RUN/samples/step_NNNNNN.png   a run's sample grid
Jobs (POST /api/jobs): text, chat ({messages}), image ({prompt | class, …, init: an upload's or a result's id,
strength} — with init, img2img), the Edit tab's inpaint, retarget, reshuffle, texture and dip (each {image: an
upload's id, …}: genlab.serve.editing), train ({family, name, steps, set, resume}).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from genlab.errors import GenlabError
from genlab.serve.editing import EDITS, edit_params, run_edit
from genlab.serve.jobs import Queue
from genlab.serve.security import Guard
from genlab.serve.store import Store, new_id, read_parameters, valid_id
from genlab.serve.tasks import (
    Models,
    Segmenter,
    chat_params,
    image_params,
    run_chat,
    run_image,
    run_text,
    text_params,
)
from genlab.serve.training import list_runs, run_training, sample_file, train_params

STATIC = Path(__file__).parent / "static"
PAGES = {"index.html": "text/html", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
PAGES |= {f"{name}.js": "text/javascript" for name in ("app", "common", "segment", "edit", "train")}
MAX_UPLOAD = 16 * 2**20  # bytes
MAX_UPLOAD_PIXELS = 16_000_000
MAX_JSON = 64 * 2**10
KEEPALIVE_S = 15.0


def create_app(root: str | Path, *, runs_root: str | Path = "runs", bound: str = "127.0.0.1",
               token: str | None = None, device: str | None = None) -> Any:  # fmt: skip
    """The studio as an ASGI app (guarded): its history under ``root``, the Train tab's runs under ``runs_root``."""
    store, queue, models = Store(root), Queue(), Models(device)
    segmenter = Segmenter(models)
    uploads: dict[str, np.ndarray] = {}
    runs = Path(runs_root).expanduser()

    def plan(kind: str, raw: dict) -> tuple[dict, Any]:
        """A job's checked parameters and the function the worker runs."""
        if kind == "text":
            params = text_params(raw)
            return params, lambda job, emit: run_text(models, store, job, emit)
        if kind == "chat":
            params = chat_params(raw)
            return params, lambda job, emit: run_chat(models, store, job, emit)
        if kind == "image":
            params = image_params(raw)
            init = image_by_id(params["init"]) if "init" in params else None
            return params, lambda job, emit: run_image(models, store, job, emit, init)
        if kind in EDITS:
            params, inputs = edit_params(kind, raw, uploads)
            return params, lambda job, emit: run_edit(models, store, inputs, job, emit)
        if kind == "train":
            params = train_params(raw, runs)
            return params, lambda job, emit: run_training(runs, job, emit)
        raise GenlabError(f"kind: {kind!r}; the studio runs text, chat, image, {', '.join(EDITS)}, train")

    def image_by_id(item: str) -> np.ndarray:
        """An upload, or a result in the history (img2img from the gallery)."""
        if item in uploads:
            return uploads[item]
        path = store.file(item)
        if path is None:
            raise GenlabError("init: upload the image again, or pick a result in the history that has one")
        return _decode_image(path.read_bytes())

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in PAGES:
            return Response("not found", 404)
        return FileResponse(STATIC / name, media_type=PAGES[name])

    async def events(request: Request) -> Response:
        q = queue.subscribe()

        async def stream() -> Any:
            try:
                yield "event: hello\ndata: {}\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                    except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not yet TimeoutError)
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {json.dumps(event)}\n\n"
            finally:
                queue.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def jobs(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"jobs": queue.listing()})
        body = await _json(request)
        raw = body.get("params") or {}
        if not isinstance(raw, dict):
            raise GenlabError("params must be a JSON object")
        params, fn = plan(str(body.get("kind")), raw)
        job = queue.submit(str(body.get("kind")), params, fn)
        return JSONResponse({"job": job.public()})

    async def run_list(request: Request) -> Response:
        return JSONResponse({"runs": await asyncio.to_thread(list_runs, runs)})

    async def run_sample(request: Request) -> Response:
        path = sample_file(runs, request.path_params["run"], request.path_params["name"])
        return FileResponse(path, media_type="image/png") if path else Response("not found", 404)

    async def cancel(request: Request) -> Response:
        job = queue.cancel(request.path_params["job"])
        return JSONResponse({"job": job.public()}) if job else Response("no such job", 404)

    async def history(request: Request) -> Response:
        q = request.query_params.get("q", "")[:200]
        return JSONResponse({"items": store.items(q, favourites=request.query_params.get("fav") == "1")})

    async def favourite(request: Request) -> Response:
        body = await _json(request)
        ok = valid_id(request.path_params["item"]) and store.set_favourite(
            request.path_params["item"], bool(body.get("value"))
        )
        return JSONResponse({"ok": True}) if ok else Response("not found", 404)

    async def delete(request: Request) -> Response:
        return JSONResponse({"ok": True}) if store.delete(request.path_params["item"]) else Response("not found", 404)

    async def file(request: Request) -> Response:
        path = store.file(request.path_params["item"])
        return FileResponse(path, media_type="image/png") if path else Response("not found", 404)

    async def preview(request: Request) -> Response:
        data = store.preview(request.path_params["item"]) if valid_id(request.path_params["item"]) else None
        return Response(data, media_type="image/png") if data else Response("not found", 404)

    async def upload(request: Request) -> Response:
        data = await _body(request, MAX_UPLOAD)
        form_file = await _multipart_file(request, data)
        image = _decode_image(form_file)
        image_id = new_id()
        uploads[image_id] = image
        while len(uploads) > 16:
            uploads.pop(next(iter(uploads)))
        segmenter.add(image_id, image)
        if request.query_params.get("for") == "segment":  # the Segment tab: encode it now, not at the first click
            await asyncio.to_thread(segmenter.prepare, image_id)
        h, w = image.shape[:2]
        return JSONResponse({"image": image_id, "width": w, "height": h, "params": read_parameters(form_file)})

    async def segment(request: Request) -> Response:
        body = await _json(request)
        image = str(body.get("image", ""))
        if not valid_id(image):
            return Response("not found", 404)
        try:
            out = await asyncio.to_thread(segmenter.predict, image, body.get("points") or [],
                                          body.get("labels") or [], body.get("box"))  # fmt: skip
        except LookupError:
            return Response("not found (upload the image again)", 404)
        return JSONResponse(out)

    async def segment_all(request: Request) -> Response:
        image = str((await _json(request)).get("image", ""))
        if not valid_id(image):
            return Response("not found", 404)
        try:
            return JSONResponse(await asyncio.to_thread(segmenter.everything, image))
        except LookupError:
            return Response("not found (upload the image again)", 404)

    async def on_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", 400))

    routes = [
        Route("/", page),
        Route("/static/{name}", page),
        Route("/favicon.ico", lambda request: FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")),
        Route("/api/events", events),
        Route("/api/jobs", jobs, methods=["GET", "POST"]),
        Route("/api/jobs/{job}/cancel", cancel, methods=["POST"]),
        Route("/api/history", history),
        Route("/api/history/{item}/favourite", favourite, methods=["POST"]),
        Route("/api/history/{item}/delete", delete, methods=["POST"]),
        Route("/api/files/{item}.png", file),
        Route("/api/previews/{item}.png", preview),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/segment", segment, methods=["POST"]),
        Route("/api/segment/everything", segment_all, methods=["POST"]),
        Route("/api/runs", run_list),
        Route("/api/runs/{run}/samples/{name}", run_sample),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        queue.stop()
        store.close()

    app = Starlette(routes=routes, exception_handlers={GenlabError: on_error}, lifespan=lifespan)
    app.state.store, app.state.queue = store, queue
    return Guard(app, bound=bound, token=token)


class TooLarge(GenlabError):
    status = 413


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes — by its Content-Length, or while it streams."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request is {int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request) -> dict[str, Any]:
    data = await _body(request, MAX_JSON)
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        raise GenlabError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise GenlabError("the request body must be a JSON object")
    return body


async def _multipart_file(request: Request, data: bytes) -> bytes:
    """The bytes of the part named ``file`` of a multipart/form-data body already read (within its limit)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise GenlabError("upload an image as multipart/form-data, field 'file'")
    request._body = data  # Starlette parses the form from the body read above
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception:
        raise GenlabError("the upload is not a readable multipart/form-data body") from None
    part = form.get("file")
    if part is None or isinstance(part, str):
        raise GenlabError("upload an image as multipart/form-data, field 'file'")
    return await part.read()


def _decode_image(data: bytes) -> np.ndarray:
    """An uploaded image as ``H×W×3`` float in [0, 1]; its type judged by its content (never its name), its pixels
    capped before they are decoded."""
    from PIL import Image, UnidentifiedImageError

    from genlab.data.images import _to_float

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"):
                raise GenlabError(f"the upload is a {img.format} file; upload a PNG, JPEG, WebP, BMP, GIF or TIFF")
            w, h = img.size
            if w * h > MAX_UPLOAD_PIXELS:
                raise TooLarge(f"the image is {w}×{h} = {w * h:,} pixels; the limit is {MAX_UPLOAD_PIXELS:,}")
            img.load()
            arr = _to_float(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise GenlabError("the upload is not an image") from None
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
