"""The base class every model family subclasses.

A family provides the five parts of a deep generative model (see docs/design.md): its formulation in
the module docstring and config dataclass, its networks built from ``genlab.nn``, the objective
``loss(batch)``, and inference through ``sample`` and, where tractable, ``log_prob``. The one
``Trainer`` does the optimization for every family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from genlab.data.images import MAX_PIXELS
from genlab.errors import GenlabError


@dataclass
class Part:
    """A trained checkpoint a family needs in order to train (``genlab train ... --NAME DIR``)."""

    task: str  # what the checkpoint must hold (a modality, e.g. "autoencoder", "clip", "features")
    help: str  # for --help: what the part is for
    default: str | None = None  # the shipped default (a task of genlab.assets) when none is given
    on_resume: bool = False  # loaded again on --resume (a part the checkpoint does not store)
    needed: Callable[[Any], bool] | None = None  # given the model config: is the part used at all?


@dataclass
class Flag:
    """A ``genlab train`` option a family adds (``--method ppo``): it sets a config field, or (``to_data``) names
    the run's ``--data`` under a name that says what it is (``--prompts FILE``)."""

    help: str
    key: str = ""  # the config field it sets ('' with to_data)
    to_data: bool = False
    metavar: str | None = None


@dataclass
class TrainOptions:
    """What ``genlab train`` hands every family's data hook; each family reads the fields it understands."""

    size: int | None = None  # --size: the training resolution, for families that draw images
    strict: bool = False  # an unreadable file is an error, not skipped
    max_pixels: int = MAX_PIXELS  # --max-pixels: the largest image a training folder may hold
    val_fraction: float | None = None  # held-out share (None: the family's ``val_fraction``)
    tokenizer: str = "char"  # text: char | bpe
    vocab_size: int = 1024  # text: BPE vocabulary
    seed: int = 0  # the run's seed (data splits that draw)
    explicit: frozenset[str] = frozenset()  # config keys the user set: data-derived values must not override them
    resume_from: Path | None = None  # the run directory when resuming (its tokenizer, ...)
    init_from: Path | None = None  # --init: the checkpoint a fine-tuning run starts from (its tokenizer, ...)
    init_model: Any = None  # that checkpoint loaded (also when a fine-tuning run resumes): its run record, figures


@dataclass
class TrainingData:
    """A family's training and held-out data, as its ``prepare_data`` hook made them."""

    train: Any
    val: Any
    describe: str  # one line for the user: what was loaded
    run: dict[str, Any] = field(default_factory=dict)  # recorded in config.json's "run" (e.g. the tokenizer kind)
    cache: dict[str, Any] = field(default_factory=dict)  # what a family derives once and reuses (encoded text, ...)
    size: int | None = None  # the side of the training images (None: not images); part of the recorded domain


@dataclass
class Optim:
    """One optimizer of a family's training step: its parameters and its learning rate as a share of ``lr``."""

    params: list[nn.Parameter]
    lr_scale: float = 1.0


class GenerativeModel(nn.Module):
    """A model of p(x | y).

    Class attributes a family sets:
        family:   registry name, e.g. ``"gpt"``.
        modality: what x is: ``"text"``, ``"image"``, ...
        Config:   the config dataclass; ``Config()`` is a valid default.
        presets:  ``{"tiny" | "small" | "base": {field: value}}``; a preset may set model-config
                  fields and trainer fields (``genlab.train.TrainConfig``) alike.
        trains_by_counting: True for families fit in closed form (n-gram), not by the Trainer.
        trains_on: the kind of ``--data`` it learns from (``text``, ``image``, ``segment``): ``genlab train KIND``;
                  ``data_help`` says what ``--data`` may be.
        condition: what ``sample``'s ``cond`` is: ``"class"``, ``"text"`` (a prompt) or ``""`` (none).
        sampling_controls: the keyword controls ``sample`` accepts beyond ``n, cond, generator``; the CLI passes
                  only these, and refuses a control the family does not take.
        parts:    trained checkpoints the family needs to train (see :class:`Part`), by option name.
        unit:     what training counts in its speed (``img``, ``tok``, ``ex``).
        val_fraction: the held-out share of ``--data`` by default.
        fine_tunes: ``genlab train --init DIR`` may start a run from a checkpoint (see ``init_families``).
        init_families: the families whose checkpoints ``--init`` accepts (default: the family itself); the model
                  config is taken from the checkpoint's fields this family shares, and ``init_from`` copies weights.
        init_keeps: config fields a run does not take from its ``--init`` checkpoint: they keep this family's
                  preset value (or ``--set``'s) — a training setting the source's training chose for itself.
        flags:    ``genlab train`` options the family adds (see :class:`Flag`), by option name.
        ddp_find_unused_parameters: some parameters get no gradient on some steps (a critic that starts late).

    Training hooks (what ``genlab.train.run.train`` calls, in order): ``prepare_data`` → ``build`` (or
    ``rebuild`` on --resume) → ``attach_parts`` → ``batches`` → the Trainer optimizes ``losses`` with
    ``optimizers``, calling ``evaluate`` and ``preview`` along the way → ``final_figures``. A family overrides
    what it needs; the modality base classes
    (:class:`genlab.models.lm.LanguageModel`, :class:`genlab.models.image.ImageModel`) supply the data hooks.
        no_samples: for a family that draws no samples (a classifier, an encoder), what it does instead.
    """

    family: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    Config: ClassVar[type] = object
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    trains_by_counting: ClassVar[bool] = False
    trains_on: ClassVar[str] = ""
    data_help: ClassVar[str] = ""
    condition: ClassVar[str] = ""
    sampling_controls: ClassVar[frozenset[str]] = frozenset()
    parts: ClassVar[dict[str, Part]] = {}
    unit: ClassVar[str] = "ex"
    val_fraction: ClassVar[float] = 0.1
    fine_tunes: ClassVar[bool] = False
    init_families: ClassVar[tuple[str, ...]] = ()
    init_keeps: ClassVar[tuple[str, ...]] = ()
    flags: ClassVar[dict[str, Flag]] = {}
    ddp_find_unused_parameters: ClassVar[bool] = False
    no_samples: ClassVar[str] = ""
    # where the domain comes from when --data does not say what the model knows (preference pairs, prompts): "init"
    # (the --init model's) or a part's name; "" — from --data (genlab.data.domain)
    domain_from: ClassVar[str] = ""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.run: dict[str, Any] = {}  # config.json's "run" record once loaded from a checkpoint
        self.path: Path | None = None  # the checkpoint folder it was loaded from (its MODEL_CARD.md, ...)

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        # The Trainer calls the module itself (so DDP and torch.compile wrap the objective).
        return self.losses(batch)

    def loss(self, batch: Any) -> torch.Tensor:
        """The scalar objective to minimize on ``batch``."""
        raise NotImplementedError

    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """One loss per optimizer of :meth:`optimizers` (default: ``loss`` for the one optimizer ``"model"``).

        The Trainer sums them for one backward pass, so each loss's gradient must reach only its own optimizer's
        parameters (freeze the critic while computing the generator's loss; detach fakes for the critic's)."""
        return {"model": self.loss(batch)}

    def sample(self, n: int, cond: Any = None, *, generator: torch.Generator | None = None, **controls: Any) -> Any:
        """Draw ``n`` samples, conditioned on ``cond`` where the family takes a condition."""
        article = "an" if self.family[:1] in tuple("aeiou") else "a"
        raise GenlabError(f"{article} {self.family} model draws no samples: {self.no_samples or 'not implemented'}")

    def log_prob(self, x: Any, cond: Any = None) -> torch.Tensor:
        """log p(x | cond) in nats, for families with a tractable density or bound."""
        raise NotImplementedError(f"{self.family} has no tractable log-likelihood")

    # --- training hooks ------------------------------------------------------------------------------
    @classmethod
    def prepare_data(
        cls, source: str, config: Any, options: TrainOptions, parts: dict[str, GenerativeModel]
    ) -> TrainingData:
        """Load ``--data``, split it into training and held-out parts, and set the config's data-dependent fields
        (channels, classes, vocabulary) unless the user set them or the run is resumed."""
        raise GenlabError(f"{cls.family} cannot be trained with genlab train (it has no data hook)")

    @classmethod
    def build(cls, config: Any, data: TrainingData, parts: dict[str, GenerativeModel]) -> GenerativeModel:
        """A fresh model for ``data`` (and the trained ``parts`` it is built from)."""
        config.validate()
        return cls(config)

    @classmethod
    def rebuild(cls, config: Any, directory: Path, parts: dict[str, GenerativeModel]) -> GenerativeModel:
        """The model of a run to resume in ``directory`` (its weights come from the training state)."""
        model = cls(config)
        model.load_extras(directory)
        return model

    @classmethod
    def parameter_bytes(cls, config: Any) -> int | None:
        """Bytes of the weights and buffers a model of ``config`` holds, found without allocating them: the model
        is built on the meta device. None where that fails (the real construction then reports why). A family
        whose constructor cannot run on meta overrides this."""
        try:
            with torch.device("meta"):
                model = cls(config)
        except Exception:  # noqa: BLE001 - only an estimate; building the model for real raises the same error
            return None
        tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}  # tied weights count once
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def attach_parts(self, parts: dict[str, GenerativeModel]) -> None:
        """Attach the loaded ``parts`` the checkpoint does not store (``Part.on_resume``), after build or rebuild."""

    def batches(self, data: TrainingData, *, batch_size: int, seed: int, rank: int) -> Callable[[int], Any]:
        """The i-th training micro-batch as a pure function of (seed, rank, i): exact resume needs no data state."""
        raise NotImplementedError

    def items_per_batch(self, batch_size: int) -> int:
        """How many ``unit`` one micro-batch holds (the progress bar's speed)."""
        return batch_size

    def evaluate(self, val: Any, *, batches: int = 20, batch_size: int = 64) -> dict[str, Any]:
        """Held-out figures, every ``eval_every`` steps and at the end (EMA weights, eval mode, no gradients), and
        for ``genlab eval``; families that estimate a loss by sampling use ``batches`` of ``batch_size``."""
        return {}

    def sampling_bytes(self, n: int, tokens: int = 0) -> int:
        """About how much memory drawing ``n`` samples at once takes (``tokens`` each, for text), so a request that
        cannot fit is refused before it allocates; 0: unknown (then only running out of memory stops it)."""
        return 0

    def preview(self, path: Path, val: Any, seed: int) -> Path | None:
        """Write a picture of what the model does now to ``path`` (every ``sample_every`` steps); None: nothing."""
        return None

    def final_figures(self, data: TrainingData, evals: dict[str, Any]) -> dict[str, Any]:
        """The held-out figures a finished run reports (default: the last evaluation's)."""
        return evals

    def fit_data(self, data: TrainingData) -> None:
        """Fit in closed form (families with ``trains_by_counting``)."""
        raise NotImplementedError

    def init_from(self, source: GenerativeModel) -> None:
        """Start a fine-tuning run (``--init``) from the loaded checkpoint ``source`` (default: all its weights)."""
        self.init_from_state({k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()})

    def init_from_state(self, state: dict[str, torch.Tensor]) -> None:
        load_state_strict(self, state, "--init: its weights do not fit this model (did --set change its shape?)")

    def train_metrics(self) -> dict[str, float]:
        """Figures the family measured in its training steps since the last call (a PPO rollout's reward, KL, ...);
        the Trainer logs them with the loss and shows them in the progress bar."""
        return {}

    def optimizers(self) -> dict[str, Optim]:
        """The optimizers of one training step, by name; each has its own schedule and state in the checkpoint."""
        return {"model": Optim([p for p in self.parameters() if p.requires_grad])}

    def prepare_export(self, dtype: torch.dtype) -> None:
        """Called by ``genlab export`` before the weights are cast to ``dtype`` (e.g. to record what they become)."""

    def replace_part(self, name: str, source: GenerativeModel, precision: torch.dtype) -> None:
        """Put part ``name`` of checkpoint ``source`` into this model (``genlab export --decoder``)."""
        raise GenlabError(f"--{name}: a {self.family} model takes no {name} from another checkpoint")

    # Checkpoint hooks: families with extra files (a tokenizer, ...) override these.
    def save_extras(self, directory: Path) -> None:
        """Write the family's extra files into a checkpoint directory."""

    def load_extras(self, directory: Path) -> None:
        """Read the family's extra files from a checkpoint directory."""

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load tensors read from ``model.safetensors``; strict, with a clear error on mismatch."""
        load_state_strict(self, state)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"family={self.family}"


def load_state_strict(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    what: str = "model.safetensors does not match config.json",
) -> None:
    """Load ``state`` into ``model``; tied aliases may be absent; any other mismatch is an error that starts
    with ``what``."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise GenlabError(f"{what}: {first}") from None
    params = model.state_dict()
    loaded = {(params[k].data_ptr(), tuple(params[k].shape)) for k in state if k in params}
    missing = [k for k in missing if (params[k].data_ptr(), tuple(params[k].shape)) not in loaded]
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + (
            [f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []
        )
        raise GenlabError(f"{what}: {'; '.join(parts)}")
