"""Example-based image editing (lecture 01, "Image Manipulation with Example").

One concept per module:

* :mod:`~genlab.edit.texture` — texture synthesis: Efros–Leung (1999) and image quilting (Efros & Freeman 2001);
* :mod:`~genlab.edit.patchmatch` — the PatchMatch nearest-neighbour field (Barnes et al. 2009), a compiled CPU
  loop; :mod:`~genlab.edit.patchmatch_torch` the parallel variant for a GPU;
* :mod:`~genlab.edit.synthesis` — hole filling, retargeting and reshuffling by multi-scale EM over the field;
* :mod:`~genlab.edit.dip` — Deep Image Prior (Ulyanov et al. 2018): denoising, JPEG artifacts, inpainting,
  super-resolution;
* :mod:`~genlab.edit.baselines` — Telea, Navier–Stokes and biharmonic inpainting, bicubic upscaling;
* :mod:`~genlab.edit.style` — neural style transfer (Gatys et al. 2016) on Inception-v3 features;
* :mod:`~genlab.edit.masks` — hole masks and command-line geometry.

The ``genlab edit`` verb is :mod:`genlab.cli.edit` (with ``edit_learned``, ``edit_nnf``, ``edit_style`` and
``edit_common`` beside it), the ``genlab demo`` section :mod:`genlab.demo.edit`.

Images are float32 ``H×W×C`` arrays in [0, 1] (:func:`genlab.data.images.read_image`); masks ``H×W`` bool, True = hole.
"""
