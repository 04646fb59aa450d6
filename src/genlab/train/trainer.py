"""The one training loop every family shares.

AdamW with decoupled weight decay on matrices only; linear warmup then cosine decay to ``min_lr``;
gradient clipping and accumulation; an optional EMA of the weights; autocast (bf16/fp16) and
``torch.compile`` on a GPU; periodic evaluation; a progress bar with loss, speed and ETA; metrics
appended to ``metrics.jsonl``; whole checkpoints (written beside, swapped in) every ``ckpt_every``
steps; exact ``--resume``; a step or time budget; a clean stop on Ctrl-C (checkpoint saved) or on a
non-finite loss (nothing saved). Unchanged under ``torchrun`` (DDP).

Exact resume: batch ``i`` is a pure function of (seed, rank, i) — the data source is stateless — and
the weights, optimizer moments and torch RNG states are saved together in one file, so a run
stopped at step k and resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genlab.checkpoint import (
    EMA_FILE,
    load_train_state,
    save_model,
    save_tensors,
    save_train_state,
    unique_state,
)
from genlab.config import to_dict
from genlab.errors import GenlabError
from genlab.io import append_jsonl, write_text
from genlab.models.base import GenerativeModel, Optim, load_state_strict
from genlab.train import distributed
from genlab.train.config import TrainConfig, lr_at
from genlab.train.ema import EMA

METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainResult:
    step: int
    loss: float
    seconds: float
    stopped: str  # "done" | "time" | "interrupted"
    evals: dict[str, float]

    def summary(self, out: Path, family: str) -> dict[str, Any]:
        """What ``genlab train --json`` prints for a finished run."""
        return {
            "out": str(out),
            "family": family,
            "stopped": self.stopped,
            "step": self.step,
            "loss": self.loss,
            "held_out": self.evals,
        }


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def make_optimizer(spec: Optim, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on ≥2-D tensors (matrices, embeddings), none on biases and norms."""
    params = spec.params
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


class Trainer:
    """Optimizes ``model.loss`` on ``batches(i)`` (the i-th micro-batch) and writes into ``out_dir``.

    ``evaluate(model)`` returns figures (e.g. ``{"val_loss": ...}``) every ``eval_every`` steps and at
    the end; ``on_sample(model, step)`` writes samples every ``sample_every`` steps. Both see the EMA
    weights when the run keeps an EMA. ``items_per_batch`` and ``unit`` name the speed shown (e.g.
    tokens). ``run`` is recorded in config.json.
    """

    def __init__(
        self,
        model: GenerativeModel,
        config: TrainConfig,
        *,
        batches: Callable[[int], Any],
        out_dir: str | Path,
        evaluate: Callable[[GenerativeModel], dict[str, Any]] | None = None,
        on_sample: Callable[[GenerativeModel, int], None] | None = None,
        items_per_batch: int = 0,
        unit: str = "ex",
        run: dict[str, Any] | None = None,
        device: torch.device | None = None,
        dist: distributed.DistInfo | None = None,
        quiet: bool = False,
    ) -> None:
        config.validate()
        self.model = model
        self.cfg = config
        self.batches = batches
        self.out = Path(out_dir)
        self.evaluate = evaluate
        self.on_sample = on_sample
        self._ema: EMA | None = None
        self.items_per_batch = items_per_batch or config.batch_size
        self.unit = unit
        self.run = run or {}
        self.device = device or torch.device("cpu")
        self.dist = dist or distributed.DistInfo()
        self.quiet = quiet
        self._interrupted = False

    # --- files ---------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            append_jsonl(self.out / METRICS_FILE, record)

    def _trim_metrics(self, step: int) -> None:
        """On resume, forget records logged after the checkpoint (they will be logged again)."""
        path = self.out / METRICS_FILE
        if self.dist.is_main and path.is_file():
            keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if _step_of(ln) <= step]
            write_text(path, "".join(ln + "\n" for ln in keep))  # a new file renamed in: a crash keeps the old

    def _save(self, step: int, elapsed: float, opts: dict[str, torch.optim.Optimizer], ema: EMA | None) -> None:
        if self.dist.is_main:
            run = self.run | {"train": to_dict(self.cfg), "elapsed_s": round(elapsed, 2)}
            state = {
                "step": step,
                "elapsed": elapsed,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizers": {name: opt.state_dict() for name, opt in opts.items()},
                "ema": ema.state_dict() if ema is not None else None,
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            }

            def extra(d: Path) -> None:  # written with the model, swapped in as one checkpoint
                if ema is not None:
                    save_tensors(unique_state(self.model, params=ema.shadow), d / EMA_FILE, {"step": str(step)})
                save_train_state(d, state)

            save_model(self.model, self.out, step=step, run=run, extra=extra)
        distributed.barrier(self.dist)

    # --- the loop ------------------------------------------------------------------------------
    def _precision(self) -> tuple[torch.dtype | None, bool]:
        """(autocast dtype or None, use a GradScaler)."""
        p = self.cfg.precision
        if p == "auto":
            if self.device.type != "cuda":
                return None, False
            p = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if p == "fp32":
            return None, False
        if p == "fp16" and self.device.type != "cuda":
            raise GenlabError("precision=fp16 needs a CUDA GPU; use bf16 or fp32 on this device")
        return (torch.bfloat16 if p == "bf16" else torch.float16), p == "fp16"

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    def fit(self, *, resume: bool = False) -> TrainResult:
        cfg, model, device = self.cfg, self.model, self.device
        self.out.mkdir(parents=True, exist_ok=True)
        model.to(device)
        specs = model.optimizers()
        opts = {name: make_optimizer(spec, cfg, device) for name, spec in specs.items()}
        ema = self._ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
        step, elapsed = 0, 0.0
        if resume:
            state = load_train_state(self.out)
            load_state_strict(model, state["model"])
            saved = state.get("optimizers") or {"model": state.get("optimizer")}  # one optimizer before 0.2
            if set(saved) != set(opts):
                raise GenlabError(
                    f"{self.out}: the training state has optimizers {', '.join(saved)}, this {model.family} model "
                    f"trains with {', '.join(opts)}; start a new run"
                )
            for name, opt in opts.items():
                opt.load_state_dict(saved[name])
            if ema is not None and state.get("ema"):
                ema.load_state_dict(state["ema"])
            torch.set_rng_state(state["rng_cpu"])
            if state.get("rng_cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng_cuda"])
            step, elapsed = int(state["step"]), float(state["elapsed"])
            self._trim_metrics(step)
        amp_dtype, use_scaler = self._precision()
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        net: torch.nn.Module = model
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            unused = getattr(model, "ddp_find_unused_parameters", False)  # e.g. a critic that starts late
            net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
        if cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda"):
            net = torch.compile(net)
        unbounded = cfg.steps >= 10**9
        bar = tqdm(
            total=None if unbounded else cfg.steps,
            initial=step,
            disable=self.quiet or not self.dist.is_main,
            desc=f"train {model.family}",
            unit="step",
            dynamic_ncols=True,
        )
        previous = signal.signal(signal.SIGINT, self._on_sigint) if _main_thread() else None
        stopped, loss_value, evals = "done", float("nan"), {}
        window_t, window_items, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0
        start = time.perf_counter() - elapsed
        last_saved = step
        saved_any, log_existed = resume, (self.out / METRICS_FILE).exists()
        try:
            model.train()
            while step < cfg.steps:
                elapsed = time.perf_counter() - start
                progress = step / cfg.steps
                if cfg.time_budget > 0:
                    progress = max(progress, elapsed / cfg.time_budget)
                lr = lr_at(cfg, step, progress)
                for name, opt in opts.items():
                    for group in opt.param_groups:
                        group["lr"] = lr * specs[name].lr_scale
                total = torch.zeros((), device=device)
                parts: dict[str, float] = {}
                for micro in range(cfg.accumulate):
                    batch = to_device(self.batches(step * cfg.accumulate + micro), device)
                    sync = micro == cfg.accumulate - 1 or not self.dist.enabled
                    with contextlib.nullcontext() if sync else net.no_sync(), _autocast(device, amp_dtype):
                        losses = net(batch)
                        loss = sum(losses.values())
                    scaled = loss / cfg.accumulate
                    (scaler.scale(scaled) if scaler else scaled).backward()
                    total += loss.detach().float()
                    if len(losses) > 1:  # several optimizers: show each one's loss too
                        parts = {k: parts.get(k, 0.0) + v.item() / cfg.accumulate for k, v in losses.items()}
                loss_value = total.item() / cfg.accumulate
                if not math.isfinite(loss_value):
                    if self.dist.is_main and not saved_any and not log_existed:  # nothing of this run stays
                        (self.out / METRICS_FILE).unlink(missing_ok=True)
                    raise GenlabError(
                        f"the loss became {loss_value} at step {step + 1}; stopped without saving it "
                        + (f"(last checkpoint: step {last_saved})" if saved_any else "(no checkpoint saved)")
                        + ". Try a lower learning rate (--set lr=...)."
                    )
                grad_norm = self._step(opts, specs, scaler)
                if ema is not None:
                    ema.update(model)
                step += 1
                window_items += self.items_per_batch * cfg.accumulate * self.dist.world_size
                window_loss, window_steps = window_loss + loss_value, window_steps + 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    now = time.perf_counter()
                    speed = window_items / max(now - window_t, 1e-9)
                    mean_loss = window_loss / window_steps
                    window_t, window_items, window_loss, window_steps = now, 0, 0.0, 0
                    measured = {k: round(v, 6) for k, v in model.train_metrics().items()}  # e.g. PPO's reward, KL
                    shown = {k: f"{v:.3g}" for k, v in list(measured.items())[:3]}
                    bar.set_postfix(
                        loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", **shown, **{f"{self.unit}/s": f"{speed:,.0f}"}
                    )
                    self._log(
                        measured
                        | {
                            "step": step,
                            "loss": round(mean_loss, 6),
                            "lr": lr,
                            "grad_norm": round(grad_norm, 4),
                            f"{self.unit}_per_s": round(speed, 1),
                            "elapsed_s": round(now - start, 2),
                        }
                        | {f"loss_{k}": round(v, 6) for k, v in parts.items()}
                    )
                if self.evaluate is not None and step % cfg.eval_every == 0 and step < cfg.steps:
                    evals = self._run_eval(step)
                if self.on_sample is not None and cfg.sample_every and step % cfg.sample_every == 0:
                    self._run_sample(step)
                elapsed = time.perf_counter() - start
                out_of_time = cfg.time_budget > 0 and elapsed >= cfg.time_budget
                stop = distributed.any_true(self._interrupted or out_of_time, self.dist, device)
                if stop or step % cfg.ckpt_every == 0 or step == cfg.steps:
                    self._save(step, elapsed, opts, ema)
                    last_saved, saved_any = step, True
                if stop:
                    stopped = "interrupted" if self._interrupted else "time"
                    break
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if self.evaluate is not None and stopped != "interrupted":
            evals = self._run_eval(step)
        if self.on_sample is not None and cfg.sample_every and step % cfg.sample_every and stopped != "interrupted":
            self._run_sample(step)
        return TrainResult(step, loss_value, time.perf_counter() - start, stopped, evals)

    def _step(
        self, opts: dict[str, torch.optim.Optimizer], specs: dict[str, Optim], scaler: torch.amp.GradScaler | None
    ) -> float:
        """Clip each optimizer's gradients (its own global norm) and step it; the first one's norm is logged."""
        norms = []
        for name, opt in opts.items():
            if scaler:
                scaler.unscale_(opt)
            if self.cfg.grad_clip > 0:
                norms.append(torch.nn.utils.clip_grad_norm_(specs[name].params, self.cfg.grad_clip).item())
            (scaler.step if scaler else lambda o: o.step())(opt)
            opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.update()
        return norms[0] if norms else 0.0

    def _averaged(self) -> contextlib.AbstractContextManager:
        return self._ema.applied(self.model) if self._ema is not None else contextlib.nullcontext()

    def _aside(self) -> contextlib.ExitStack:
        """Evaluation and sampling run in eval mode, without gradients, with the EMA weights, and on a forked RNG,
        so whatever randomness they use leaves the training stream (and exact resume) untouched."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=devices))
        stack.enter_context(self._averaged())
        return stack

    def _run_sample(self, step: int) -> None:
        if self.dist.is_main:
            self.model.eval()
            with self._aside():
                self.on_sample(self.model, step)
            self.model.train()
        distributed.barrier(self.dist)

    def _run_eval(self, step: int) -> dict[str, Any]:
        self.model.eval()
        with self._aside():
            evals = self.evaluate(self.model) if self.dist.is_main else {}
        self.model.train()
        if self.dist.is_main and evals:
            self._log({"step": step, **evals})
            shown = ", ".join(f"{k} {v:.4f}" for k, v in evals.items() if isinstance(v, float))
            tqdm.write(f"step {step}: {shown}", file=sys.stderr)
        return evals


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
