"""Optimization shared by every family: the Trainer, checkpoints, EMA and distributed setup."""

from genlab.train.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["TrainConfig", "Trainer", "TrainResult"]
