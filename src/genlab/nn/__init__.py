"""Shared network building blocks: attention, transformer blocks, (later) UNets and embeddings."""
