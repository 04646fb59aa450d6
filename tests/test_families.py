"""The family contract, checked for every registered family (diffusers' shared model tests are the model), and the
proof that a family is one file plus one registry line: a toy family, defined in tests/toy_family.py, trained,
sampled and evaluated through the CLI with no other file of genlab knowing it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from genlab.assets import default_model
from genlab.checkpoint import load_model, save_model
from genlab.config import apply_overrides
from genlab.errors import GenlabError
from genlab.models import FAMILIES, family_class
from genlab.models.base import GenerativeModel, TrainOptions
from genlab.train.config import TrainConfig
from genlab.train.runs import resolve_configs

from .test_cli import one_line_error

CORPUS = "In the beginning God created the heaven and the earth. And the earth was without form, and void.\n" * 40
#: bundled data for families of each kind (shapes carries captions and attributes too)
DATA = {"text": None, "image": "digits", "segment": "shapes", "chat": "chatterbot", "rlhf": "prompts:train"}
PAIRS = [
    {"prompt": "How are you?", "chosen": "Very well, thank you.", "rejected": "Bad."},
    {"prompt": "How are you?", "chosen": "Very well, thank you.", "rejected": "Not so good."},
    {"prompt": "Do you like tea?", "chosen": "I love it.", "rejected": "No."},
] * 10


def _data(cls: type, tmp: Path) -> str:
    if cls.family in DATA:
        return DATA[cls.family]
    if cls.trains_on == "text":
        path = tmp / "corpus.txt"
        path.write_text(CORPUS, encoding="utf-8")
        return str(path)
    if cls.trains_on == "pairs":
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / "pairs.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
        return str(path)
    return "shapes" if getattr(cls, "needs", "") in ("captions", "attributes") or cls.parts else DATA[cls.trains_on]


def build_tiny(
    name: str, tmp: Path, init: Path | None = None
) -> tuple[GenerativeModel, object, object, dict[str, GenerativeModel]]:
    """A fresh model of family ``name`` from its smallest preset, built by its own hooks from bundled data (its
    trained parts built the same way, untrained, and saved; a part that fine-tunes from an earlier part, as a reward
    model from the policy, starts from it: ``init``), its first training batch, its held-out data and its parts."""
    cls = family_class(name)
    mcfg, tcfg = resolve_configs(cls, "tiny", {})
    parts = {}
    for part_name, part in cls.parts.items():
        if part.needed is not None and not part.needed(mcfg):
            continue
        if part.default is not None:
            parts[part_name] = load_model(default_model(part.default))
        else:
            sub_cls = family_class(part.task)
            start = next((tmp / n for n, p in parts.items() if p.family in sub_cls.init_families), None)
            sub, _, _, _ = build_tiny(part.task, tmp / part_name, start)
            save_model(sub, tmp / part_name)
            parts[part_name] = load_model(tmp / part_name)
    options = TrainOptions(init_from=init, init_model=load_model(init) if init else None)
    data = cls.prepare_data(_data(cls, tmp), mcfg, options, parts)
    model = cls.build(mcfg, data, parts)
    model.attach_parts(parts)
    if cls.trains_by_counting:
        model.fit_data(data)
        return model, None, data.val, parts
    batch = model.batches(data, batch_size=4, seed=0, rank=0)(0)
    return model, batch, data.val, parts


def _outputs(model: GenerativeModel, batch: object, val: object) -> list[torch.Tensor]:
    """What a model computes, repeatable for a seed: its weights, its held-out figures, its loss on ``batch`` (unless
    the loss needs a part the checkpoint does not store) and, where it draws samples, two samples."""
    state = model.state_dict()
    out = [torch.tensor([hash(k) for k in sorted(state)])] + [state[k].float() for k in sorted(state)]
    torch.manual_seed(0)
    figures = model.evaluate(val, batches=2, batch_size=8).values()  # numbers, and labels such as a likelihood's kind
    out.append(torch.tensor([v for v in figures if isinstance(v, int | float)], dtype=torch.float64))
    out.append(torch.tensor([hash(v) for v in figures if isinstance(v, str)]))
    if batch is not None and not any(part.on_resume for part in model.parts.values()):
        torch.manual_seed(0)
        out.append(model.loss(batch).detach())
    if type(model).sample is not GenerativeModel.sample:
        controls = {k: v for k, v in {"steps": 2, "max_tokens": 5}.items() if k in model.sampling_controls}
        cond = "a red circle" if model.condition == "text" else None
        got = model.sample(2, cond, generator=torch.Generator().manual_seed(0), **controls)
        out.append(got if isinstance(got, torch.Tensor) else torch.tensor([ord(c) for c in "".join(got)]))
    return out


@pytest.mark.parametrize("name", list(FAMILIES))
def test_presets_name_only_real_fields(name):
    cls = family_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)} | {f.name for f in dataclasses.fields(TrainConfig)}
    assert "tiny" in cls.presets
    for preset, values in cls.presets.items():
        assert set(values) <= fields, (name, preset, set(values) - fields)
        resolve_configs(cls, preset, {})  # and every preset validates


@pytest.mark.parametrize("name", list(FAMILIES))
def test_an_unknown_set_key_lists_the_valid_ones(name):
    cls = family_class(name)
    mcfg, tcfg = cls.Config(), TrainConfig()
    with pytest.raises(GenlabError) as err:
        apply_overrides([mcfg, tcfg], {"no_such_key": "1"})
    message = str(err.value)
    assert "no_such_key" in message and "valid keys" in message
    assert all(f.name in message for f in dataclasses.fields(cls.Config))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_family_contract(name, tmp_path):
    model, batch, val, parts = build_tiny(name, tmp_path)
    if batch is not None:
        # the loss is finite, and each optimizer's loss reaches every parameter of that optimizer and no other
        model.train()
        losses = model.losses(batch)
        specs = model.optimizers()
        assert set(losses) <= set(specs) and "model" in losses
        owner = {id(p): n for n, spec in specs.items() for p in spec.params}
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert trainable == set(owner), "every trainable parameter belongs to one optimizer"
        for loss_name, loss in losses.items():
            assert torch.isfinite(loss), (loss_name, loss)
            model.zero_grad(set_to_none=True)
            loss.backward(retain_graph=True)
            reached = {id(p) for p in model.parameters() if p.grad is not None}
            assert reached <= {i for i, n in owner.items() if n == loss_name}, f"{loss_name} leaks into another"
            if not model.ddp_find_unused_parameters:
                mine = [(n, p) for n, p in model.named_parameters() if owner.get(id(p)) == loss_name]
                missed = [n for n, p in mine if p.grad is None]
                assert not missed, f"{name}: {loss_name} gives no gradient to {missed[:5]}"
        model.zero_grad(set_to_none=True)
    # save → load gives the same weights and the same outputs
    model.eval()
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert type(loaded) is type(model)
    loaded.attach_parts(parts)  # what the checkpoint does not store comes back as on --resume
    for a, b in zip(_outputs(model, batch, val), _outputs(loaded, batch, val), strict=True):
        assert torch.equal(a, b), name


def test_the_critic_steps_with_its_own_optimizer():
    """The autoencoder's PatchGAN critic: once it has started, its loss reaches the critic alone and the
    reconstruction loss the autoencoder alone (each optimizer clips and steps its own parameters)."""
    from genlab.models.autoencoder import Autoencoder, AutoencoderConfig

    model = Autoencoder(AutoencoderConfig(image_size=16, base_channels=8, perceptual_weight=0.0, disc_start=0))
    model.train()
    losses = model.losses((torch.rand(2, 3, 16, 16) * 2 - 1,))
    assert set(losses) == {"model", "critic"}
    critic = {id(p) for p in model.critic.parameters()}
    for name, loss in losses.items():
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        reached = {id(p) for p in model.parameters() if p.grad is not None}
        assert (reached <= critic) if name == "critic" else not (reached & critic), name
        assert reached, name


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", "tests.toy_family:PixelGaussian")
    return "toy"


def test_a_new_family_is_one_file_and_one_registry_line(cli, toy, tmp_path):
    run = tmp_path / "toy"
    r = cli("train", "image", "--model", toy, "--data", "digits", "--size", "8", "--out", run, "--quiet", "--json")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert summary["family"] == "toy" and summary["step"] == 30
    assert summary["held_out"]["val_nats_per_dim"] < 1.0  # a Gaussian per pixel beats N(0, 1) (1.42 nats)
    assert (run / "samples" / "step_000010.png").is_file()
    r = cli("generate", "image", "--model", run, "--n", "4", "--seed", "1", "--out", tmp_path / "s.png", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["images"] == 4 and (tmp_path / "s.png").is_file()
    one_line_error(cli("generate", "image", "--model", run, "--guidance", "2", "--out", tmp_path / "g.png"),
                   "--guidance", "toy")  # fmt: skip
    r = cli("eval", "image", run, "--data", "digits", "--json")
    assert r.code == 0, r
    figures = json.loads(r.out)
    assert figures["val_nats_per_dim"] == pytest.approx(summary["held_out"]["val_nats_per_dim"], abs=1e-5)
    r = cli("train", "image", "--out", run, "--resume", "--steps", "40", "--quiet", "--json")
    assert r.code == 0 and json.loads(r.out)["step"] == 40, r
    r = cli("train", "image", "--model", toy, "--help")
    assert r.code == 0 and "min_log_std: float = -4.0" in r.out and "presets: tiny" in r.out


def test_train_help_is_generated_from_the_registry(cli):
    r = cli("train", "--help")
    assert r.code == 0
    for name in FAMILIES:
        assert f"  {name}: " in r.out, name  # every family's --set keys
    assert "lr: float = 0.001" in r.out and "--text-encoder DIR" in r.out
    r = cli("train", "text", "--model", "gpt", "--help")
    assert r.code == 0 and "n_layer: int" in r.out and "image_size" not in r.out
