import json

import pytest
import torch

import genlab
from genlab.checkpoint import export_checkpoint, load_model, save_model
from genlab.errors import GenlabError
from genlab.io import atomic_path, write_json


@pytest.mark.parametrize("family", ["gpt", "lstm", "ngram", "gpt-bpe"])
def test_round_trip_gives_identical_outputs(trained, tmp_path, family):
    model = genlab.load(trained[family])
    genlab.save(model, tmp_path / "copy")
    again = genlab.load(tmp_path / "copy")
    ids = torch.tensor(model.tokenizer.encode("the quick brown fox jumps"))
    assert torch.equal(model.token_logprobs(ids), again.token_logprobs(ids))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert model.sample(2, "the ", max_tokens=30, generator=g1) == again.sample(2, "the ", max_tokens=30, generator=g2)


def test_checkpoint_layout(trained):
    cfg = json.loads((trained["gpt"] / "config.json").read_text())
    assert cfg["family"] == "gpt" and cfg["modality"] == "text" and cfg["genlab_version"] == genlab.__version__
    assert cfg["run"]["data"] and cfg["run"]["train"]["steps"] == 30
    for name in ("model.safetensors", "tokenizer.json", "metrics.jsonl", "train_state.pt"):
        assert (trained["gpt"] / name).is_file()


def test_export_half_precision_is_smaller_and_close(trained, tmp_path):
    out = export_checkpoint(trained["gpt"], tmp_path / "half", dtype="float16")
    assert not (out / "train_state.pt").exists()
    full, half = load_model(trained["gpt"]), load_model(out)
    assert (out / "model.safetensors").stat().st_size < 0.6 * (trained["gpt"] / "model.safetensors").stat().st_size
    ids = torch.tensor(full.tokenizer.encode("the lazy dog"))
    torch.testing.assert_close(full.token_logprobs(ids), half.token_logprobs(ids), atol=2e-2, rtol=0)
    with pytest.raises(GenlabError, match="must differ"):
        export_checkpoint(out, out)


def test_task_mismatch_is_named(trained):
    with pytest.raises(GenlabError, match="holds a gpt model .text.; this needs a image model"):
        load_model(trained["gpt"], task="image")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_save_model_without_a_run(trained, tmp_path):
    model = genlab.load(trained["lstm"])
    save_model(model, tmp_path / "bare")
    assert json.loads((tmp_path / "bare" / "config.json").read_text()).get("run") is None
