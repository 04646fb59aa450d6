"""Promptable segmentation in the Segment-Anything style: inference with a trained model.

The model family is :mod:`genlab.models.sam`, its networks :mod:`genlab.nn.sam`, its data (mask datasets,
augmentation, simulated clicks) :mod:`genlab.data.masks`; this package holds what uses a trained model:

    predictor       SegmentPredictor: set_image once, predict many times
    automatic       AutomaticMaskGenerator: segment everything
    formats         COCO RLE, polygons, overlays

The `genlab segment` verb is :mod:`genlab.cli.segment`, its `genlab demo` section :mod:`genlab.demo.segment`.
"""
