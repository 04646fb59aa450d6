"""The studio's Edit jobs (retarget, reshuffle, texture, Deep Image Prior), img2img from an upload or a history
result, and a training run's samples — through the HTTP API (no browser), each with the bad inputs it refuses."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from genlab.serve.app import create_app
from genlab.serve.editing import edit_params, run_edit
from genlab.serve.jobs import Cancelled, Job
from genlab.serve.store import Store
from genlab.serve.training import list_runs, sample_file

BASE = "http://127.0.0.1:7860"
ORIGIN = {"Origin": BASE}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-edit")
    with TestClient(create_app(root / "studio", runs_root=root / "runs"), base_url=BASE) as c:
        yield c


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth stripes with noise: texture for PatchMatch to copy, no flat area."""
    y, x = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(x / 3.0)[..., None] * np.array([1.0, 0.6, 0.2]) + 0.1 * np.cos(y / 5.0)[..., None]
    noise = np.random.default_rng(0).normal(0, 0.03, (h, w, 3))
    return (np.clip(base + noise, 0, 1) * 255).astype(np.uint8)


def _upload(client: TestClient, pixels: np.ndarray) -> str:
    r = client.post("/api/upload", files={"file": ("x.png", _png(pixels), "image/png")}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    return r.json()["image"]


def _run(client: TestClient, kind: str, params: dict, timeout: float = 120) -> dict:
    r = client.post("/api/jobs", json={"kind": kind, "params": params}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    job_id, deadline = r.json()["job"]["id"], time.monotonic() + timeout
    while True:
        job = next(j for j in client.get("/api/jobs").json()["jobs"] if j["id"] == job_id)
        if job["state"] in ("done", "failed", "cancelled"):
            assert job["state"] == "done", job
            return job
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _result(client: TestClient, job: dict) -> np.ndarray:
    r = client.get(f"/api/files/{job['result']['item']}.png")
    assert r.status_code == 200
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def test_retarget_gives_the_width_asked_and_keeps_the_height(client):
    image = _upload(client, _photo())
    out = _result(client, _run(client, "retarget", {"image": image, "width": 40}))
    assert out.shape == (48, 40, 3)
    assert abs(out.mean() - _photo().mean()) < 20  # made of the input's patches, not blank


def test_reshuffle_moves_the_box_exactly_and_fills_its_old_place(client):
    pixels = _photo()
    pixels[4:20, 4:20] = [255, 0, 0]  # a red square to move
    image = _upload(client, pixels)
    out = _result(client, _run(client, "reshuffle", {"image": image, "region": [4, 4, 20, 20], "to": [40, 26]}))
    assert out.shape == pixels.shape
    assert np.array_equal(out[26:42, 40:56], pixels[4:20, 4:20])  # the moved pixels are kept as they are
    red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)
    assert red[4:20, 4:20].mean() < 0.1  # its old place is re-synthesized from the rest, not copied from it


def test_texture_synthesis_grows_the_size_asked(client):
    image = _upload(client, _photo(32, 32))
    quilted = _result(client, _run(client, "texture", {"image": image, "width": 90, "height": 70}))
    assert quilted.shape == (70, 90, 3) and quilted.std() > 5
    params = {"image": image, "method": "efros-leung", "width": 20, "height": 20}
    grown = _result(client, _run(client, "texture", params))
    assert grown.shape == (20, 20, 3)


@pytest.mark.parametrize(
    ("kind", "params", "needle"),
    [("retarget", {"width": 0}, "width"), ("retarget", {"width": 500}, "width"), ("retarget", {"width": 40.5}, "width"),
     ("reshuffle", {}, "region"), ("reshuffle", {"region": [0, 0, 80, 10], "to": [0, 20]}, "region"),
     ("reshuffle", {"region": [0, 0, 10, 10], "to": [60, 0]}, "stay inside"),
     ("reshuffle", {"region": [0, 0, 10, 10], "to": [0, 0]}, "not moved"),
     ("texture", {"method": "wang"}, "method"), ("texture", {"width": 2000}, "width"),
     ("texture", {"method": "efros-leung", "width": 1000, "height": 1000}, "quilting"),
     ("dip", {"task": "colorize"}, "task"), ("dip", {"task": "inpaint"}, "paint"),
     ("dip", {"iterations": 0}, "iterations"), ("dip", {"task": "superres", "scale": 8}, "scale"),
     ("inpaint", {"mask": [1, 2]}, "add up"), ("retarget", {"seed": -1}, "seed")],
)  # fmt: skip
def test_bad_edit_input_is_a_clear_400(client, kind, params, needle):
    image = _upload(client, _photo())
    r = client.post("/api/jobs", json={"kind": kind, "params": {"image": image} | params}, headers=ORIGIN)
    assert r.status_code == 400 and needle in r.json()["error"], r.json()


def test_deep_image_prior_reports_progress_and_previews_and_stops_on_cancel(tmp_path):
    store, pixels = Store(tmp_path / "s"), _photo(32, 32).astype(np.float32) / 255
    params, inputs = edit_params("dip", {"image": "a" * 32, "iterations": 40}, {"a" * 32: pixels})
    events: list[tuple[str, dict]] = []
    job = Job("1", "dip", params, run_edit)
    result = run_edit(None, store, inputs, job, lambda kind, **data: events.append((kind, data)))
    steps = [d for k, d in events if k == "progress"]
    assert [d["done"] for d in steps] == list(range(1, 41)) and all(d["loss"] >= 0 for d in steps)
    previews = [d for k, d in events if k == "preview"]
    assert len(previews) >= 10 and all(store.preview(d["item"]) for d in previews)  # the output as it forms
    assert store.file(result["item"]) is not None

    events.clear()
    job = Job("2", "dip", params, run_edit)

    def emit(kind: str, **data: object) -> None:
        events.append((kind, data))
        if kind == "progress" and data["done"] == 5:
            job.cancel_event.set()

    with pytest.raises(Cancelled):
        run_edit(None, store, inputs, job, emit)
    assert max(d["done"] for k, d in events if k == "progress") == 5  # stopped at the next step


def test_img2img_from_an_upload_and_from_a_history_result(client):
    image = _upload(client, _photo(32, 32))
    params = {"prompt": "a red circle", "steps": 10, "n": 2, "seed": 3, "strength": 0.5}
    first = _run(client, "image", params | {"init": image})
    again = _run(client, "image", params | {"init": image})
    assert np.array_equal(_result(client, first), _result(client, again))  # the same seed, the same bytes
    drawn = _run(client, "image", params)  # no init: drawn from noise
    assert not np.array_equal(_result(client, first), _result(client, drawn))
    assert first["params"]["init"] == image and first["params"]["strength"] == 0.5
    from_history = _run(client, "image", params | {"init": first["result"]["item"]})  # a gallery image as init
    assert _result(client, from_history).shape == _result(client, first).shape
    photo = _upload(client, _photo(48, 64))
    digits = _run(client, "image", {"class": 3, "steps": 10, "n": 1, "init": photo, "strength": 0.3})
    assert "16×16" in digits["result"]["warning"]  # an init image outside the model's world is said so


@pytest.mark.parametrize(("params", "needle"), [({"init": "0" * 32}, "init"), ({"init": "../x"}, "init"),
                                                 ({"strength": 1.5}, "strength")])  # fmt: skip
def test_bad_img2img_input_is_a_clear_400(client, params, needle):
    r = client.post("/api/jobs", json={"kind": "image", "params": {"init": "f" * 32} | params}, headers=ORIGIN)
    assert r.status_code == 400 and needle in r.json()["error"], r.json()


def test_a_runs_samples_are_listed_and_served_by_checked_names_only(client, tmp_path):
    runs = tmp_path / "runs"
    (runs / "gan-1" / "samples").mkdir(parents=True)
    (runs / "gan-1" / "config.json").write_text('{"family": "gan", "step": 20}')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(runs / "gan-1" / "samples" / "step_000020.png")
    (runs / "gan-1" / "samples" / "notes.txt").write_text("not a sample")
    [run] = list_runs(runs)
    assert run["sample"] == "/api/runs/gan-1/samples/step_000020.png"
    assert sample_file(runs, "gan-1", "step_000020.png") == runs / "gan-1" / "samples" / "step_000020.png"
    for name, file in [("gan-1", "notes.txt"), ("..", "step_000020.png"), ("gan-1", "../config.json"),
                       ("gan-1", "step_000021.png")]:  # fmt: skip
        assert sample_file(runs, name, file) is None
    assert client.get("/api/runs/gan-1/samples/..%2Fconfig.json").status_code == 404
    assert client.get("/api/runs/../samples/step_000020.png").status_code == 404


def test_a_training_job_streams_its_samples(tmp_path):
    """The Train tab's run writes sample grids (sample_every from the steps) and each becomes a sample event."""
    from genlab.serve.training import run_training, train_params

    runs = tmp_path / "runs"
    params = train_params({"family": "gan", "name": "g", "steps": 20, "set": ["batch_size=16"]}, runs)
    events: list[tuple[str, dict]] = []
    result = run_training(runs, Job("1", "train", params, run_training), lambda k, **d: events.append((k, d)))
    samples = [d for k, d in events if k == "sample"]
    assert result["step"] == 20 and len(samples) >= 4
    assert [d["step"] for d in samples] == sorted(d["step"] for d in samples)
    assert all(sample_file(runs, "g", Path(d["url"]).name) for d in samples)


def test_a_run_resumes_on_its_own_data_and_a_run_on_a_folder_is_left_to_the_command(tmp_path):
    import json

    from genlab.errors import GenlabError
    from genlab.serve.training import train_params

    runs = tmp_path / "runs"
    for name, data in (("on-shapes", "shapes"), ("on-folder", "/home/me/photos")):
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text(json.dumps({"family": "vae", "step": 5, "run": {"data": data}}))
    params = train_params({"family": "gan", "data": "digits", "name": "on-shapes", "resume": True}, runs)
    assert (params["family"], params["data"]) == ("vae", "shapes")
    with pytest.raises(GenlabError, match="genlab train --resume"):
        train_params({"name": "on-folder", "resume": True}, runs)
    assert {r["name"]: r["data"] for r in list_runs(runs)} == {"on-shapes": "shapes", "on-folder": "/home/me/photos"}
