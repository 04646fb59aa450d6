"""The studio without a browser: the guard's refusals (each a hostile request the issue names), upload limits, ids,
the queue (positions, cancelling queued and running jobs, jobs added while one runs), the history and PNG chunks."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from genlab.serve.app import MAX_UPLOAD, create_app
from genlab.serve.jobs import CANCELLED, DONE, FAILED, Queue
from genlab.serve.security import host_name
from genlab.serve.store import Store, a1111_parameters, png_bytes, read_parameters

BASE = "http://127.0.0.1:7860"


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(tmp_path / "studio", runs_root=tmp_path / "runs"), base_url=BASE) as c:
        yield c


def _png(w: int = 8, h: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_the_page_and_its_headers(client):
    r = client.get("/")
    assert r.status_code == 200 and "genlab studio" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert r.headers["x-content-type-options"] == "nosniff" and "access-control-allow-origin" not in r.headers
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../pyproject.toml").status_code == 404


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7860", "127.0.0.1.evil.example", "192.168.1.5"])
def test_a_foreign_host_is_refused_before_routing(client, host):
    assert client.get("/", headers={"Host": host}).status_code == 403
    assert client.get("/api/events", headers={"Host": host}).status_code == 403  # the event stream too


@pytest.mark.parametrize("host", ["localhost:7860", "127.0.0.1", "[::1]:7860"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Origin": "null"}, {},
     {"Origin": BASE, "Sec-Fetch-Site": "cross-site"}, {"Origin": "http://127.0.0.1:9999"}],
)  # fmt: skip
def test_a_state_changing_request_needs_the_pages_own_origin(client, headers):
    r = client.post("/api/jobs", json={"kind": "text", "params": {}}, headers=headers)
    assert r.status_code == 403
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued


def test_an_oversized_upload_is_413_and_a_non_image_is_refused(client):
    origin = {"Origin": BASE}
    big = b"\x89PNG" + b"0" * (MAX_UPLOAD + 10)
    assert client.post("/api/upload", files={"file": ("x.png", big)}, headers=origin).status_code == 413
    r = client.post("/api/upload", files={"file": ("cat.png", b"<script>alert(1)</script>")}, headers=origin)
    assert r.status_code == 400 and "not an image" in r.json()["error"]
    r = client.post("/api/upload", files={"file": ("photo.txt", _png())}, headers=origin)  # judged by content
    assert r.status_code == 200 and r.json()["width"] == 8


def test_an_uploaded_png_made_here_gives_back_its_settings(client):
    params = {"class": 3, "steps": 30, "seed": 9, "model": "diffusion-digits"}
    r = client.post("/api/upload", files={"file": ("made-here.png", png_bytes(np.zeros((8, 8, 3)), params))},
                    headers={"Origin": BASE})  # fmt: skip
    assert r.status_code == 200 and r.json()["params"] == params  # what the page restores on a drop
    r = client.post("/api/upload", files={"file": ("other.png", _png())}, headers={"Origin": BASE})
    assert r.json()["params"] is None


def test_a_huge_image_is_refused_from_its_header(client):
    buf = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buf, format="PNG")  # small file, 25 M pixels
    r = client.post("/api/upload", files={"file": ("big.png", buf.getvalue())}, headers={"Origin": BASE})
    assert r.status_code == 413 and "pixels" in r.json()["error"]


@pytest.mark.parametrize(
    "path", ["/api/files/..%2F..%2Fetc%2Fpasswd.png", "/api/files/../history.db", "/api/files/ABC.png",
             "/api/previews/..%2Fx.png", "/api/files/" + "0" * 32 + ".png"],
)  # fmt: skip
def test_ids_never_reach_the_filesystem(client, path):
    assert client.get(path).status_code == 404


def test_bad_job_input_is_a_clear_400(client):
    origin = {"Origin": BASE}
    r = client.post("/api/jobs", json={"kind": "shell", "params": {}}, headers=origin)
    assert r.status_code == 400 and "runs text, chat, image" in r.json()["error"]
    r = client.post("/api/jobs", json={"kind": "image", "params": {"steps": 0}}, headers=origin)
    assert r.status_code == 400 and "steps" in r.json()["error"]
    r = client.post("/api/jobs", content=b"not json", headers=origin | {"Content-Type": "application/json"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("params", "needle"),
    [({}, "messages"), ({"messages": [{"role": "user", "content": "hi <|end|>"}]}, "template token"),
     ({"messages": [{"role": "assistant", "content": "hi"}]}, "last one"),
     ({"messages": [{"role": "root", "content": "hi"}]}, "role"),
     ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens")],
)  # fmt: skip
def test_bad_chat_input_is_a_clear_400(client, params, needle):
    r = client.post("/api/jobs", json={"kind": "chat", "params": params}, headers={"Origin": BASE})
    assert r.status_code == 400 and needle in r.json()["error"]


@pytest.mark.parametrize(
    ("kind", "params", "needle"),
    [("inpaint", {"image": "0" * 32}, "upload the image first"), ("train", {"family": "sam"}, "trains gan"),
     ("train", {"name": "../evil"}, "name"), ("train", {"steps": 0}, "steps"),
     ("train", {"set": ["lr=1 ; rm -rf /"]}, "key=value"),
     ("train", {"name": "fresh", "resume": True}, "no checkpoint"), ("train", {"data": "kjv"}, "digits or shapes"),
     ("train", {"family": "gpt", "data": "digits"}, "kjv"), ("train", {"data": "/etc"}, "data"),
     ("train", {"preset": "huge"}, "preset")],
)  # fmt: skip
def test_bad_edit_and_train_input_is_a_clear_400(client, kind, params, needle):
    r = client.post("/api/jobs", json={"kind": kind, "params": params}, headers={"Origin": BASE})
    assert r.status_code == 400 and needle in r.json()["error"], r.json()


def test_a_token_is_required_when_bound_beyond_loopback(tmp_path):
    app = create_app(tmp_path / "s", bound="192.168.1.5", token="sesame")
    with TestClient(app, base_url="http://192.168.1.5:7860") as c:
        assert c.get("/").status_code == 401
        assert c.get("/", headers={"X-Genlab-Token": "wrong"}).status_code == 401
        first = c.get("/?token=sesame")
        assert first.status_code == 200 and "SameSite=Strict" in first.headers["set-cookie"]
        assert c.get("/api/jobs").status_code == 200  # the cookie from now on


def test_host_names_parse():
    assert host_name("127.0.0.1:7860") == "127.0.0.1" and host_name("[::1]:80") == "[::1]"
    assert host_name("LOCALHOST") == "localhost" and host_name("evil.example") == "evil.example"


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_queue_runs_in_order_cancels_queued_and_running_jobs_and_takes_new_ones():
    q = Queue()
    gate, order = threading.Event(), []

    def slow(job, emit):  # noqa: ANN001, ANN202
        order.append(job.id)
        while not gate.is_set():
            job.check()
            time.sleep(0.01)
        return {"ok": True}

    def quick(job, emit):  # noqa: ANN001, ANN202
        order.append(job.id)
        emit("text", text="hi")
        return {"ok": True}

    first = q.submit("t", {}, slow)
    _wait(lambda: first.state == "running")
    second, third = q.submit("t", {}, quick), q.submit("t", {}, quick)  # added while one runs
    positions = {j["id"]: j["position"] for j in q.listing()}
    assert positions[second.id] == 1 and positions[third.id] == 2 and positions[first.id] is None
    q.cancel(second.id)
    assert second.state == CANCELLED
    gate.set()
    _wait(lambda: third.state == DONE)
    assert first.state == DONE and order == [first.id, third.id]
    fourth = q.submit("t", {}, slow)
    gate.clear()
    _wait(lambda: fourth.state == "running")
    q.cancel(fourth.id)
    _wait(lambda: fourth.state == CANCELLED)  # a running job stops at its next step
    failing = q.submit("t", {}, lambda job, emit: 1 / 0)
    _wait(lambda: failing.state == FAILED)
    assert "ZeroDivisionError" in failing.error
    q.stop()


def test_history_persists_and_pngs_carry_their_parameters(tmp_path):
    params = {"prompt": "a red circle", "negative_prompt": "blue", "steps": 20, "seed": 3}
    store = Store(tmp_path)
    item = store.add("image", params, image=np.zeros((4, 4, 3), np.float32))
    text = store.add("text", {"prompt": "In the beginning"}, text="God created")
    store.set_favourite(item, True)
    store.close()
    store = Store(tmp_path)  # a restart
    assert [i["id"] for i in store.items()] == [text, item]
    assert [i["id"] for i in store.items("created")] == [text] and [i["id"] for i in store.items(favourites=True)] == [
        item
    ]
    data = store.file(item).read_bytes()
    assert read_parameters(data) == params and data == png_bytes(np.zeros((4, 4, 3)), params)
    assert Image.open(io.BytesIO(data)).info["parameters"] == a1111_parameters(params)
    assert a1111_parameters(params).splitlines() == ["a red circle", "Negative prompt: blue", "Steps: 20, Seed: 3"]
    assert read_parameters(b"not a png") is None
    assert store.delete(item) and store.file(item) is None and not store.delete(item)
    store.close()


def test_the_printed_address_already_accepts_connections(tmp_path, monkeypatch, capsys):
    """``genlab serve`` prints its address only once the socket listens: a client that connects the moment it reads
    the line (the browser tests do) waits in the backlog while uvicorn starts, never meets a refusal."""
    import socket

    import uvicorn

    from genlab.cli import main

    seen = {}

    def fake_run(self, sockets):  # noqa: ANN001 — stands in for uvicorn: connect before anything else happens
        url = capsys.readouterr().out.split()[2]
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            seen["connected"] = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    argv = ["serve", "--port", "0", "--no-browser", "--root", str(tmp_path / "s"), "--runs", str(tmp_path / "r")]
    assert main(argv) == 0
    assert seen == {"connected": True}
