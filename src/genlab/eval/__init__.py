"""Metrics: perplexity and bits per character for text; image and segmentation metrics join later."""
