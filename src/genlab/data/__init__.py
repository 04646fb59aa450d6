"""Data: text corpora and tokenizers; image folders and bundled datasets come with the image families."""
