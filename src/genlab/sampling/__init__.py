"""Inference: text decoding (this issue); diffusion schedules, samplers and guidance come with the image families."""
