"""``genlab serve``: the local web studio — one page for the shipped models (text and chat streamed, images and
img2img with live previews, click-to-mask segmentation, inpainting, retargeting, reshuffling, texture synthesis and
Deep Image Prior, training runs with their losses and samples), a history in SQLite and a cancellable queue; on
127.0.0.1, closed to other sites. docs/studio.md.

Modules: :mod:`~genlab.serve.app` (routes), :mod:`~genlab.serve.security` (the guard every request passes),
:mod:`~genlab.serve.jobs` (the queue and its events), :mod:`~genlab.serve.store` (history, result PNGs),
:mod:`~genlab.serve.tasks` (text, chat, image, segmentation), :mod:`~genlab.serve.editing` (the Edit tab),
:mod:`~genlab.serve.training` (the Train tab).
"""
