"""Promptable segmentation in the Segment-Anything style: the networks, the predictor, automatic masks, data.

The model family is :mod:`genlab.models.sam`; this package holds its parts (one concept per module, as in
segment-anything's ``modeling/``) and what uses them:

    image_encoder   ImageEncoder: image → embedding (+ high-resolution features), once per image
    prompt_encoder  PromptEncoder: points, boxes, masks → tokens and a dense embedding
    transformer     TwoWayTransformer: prompt tokens ↔ image embedding
    mask_decoder    MaskDecoder: 3 + 1 masks and their predicted IoU
    predictor       SegmentPredictor: set_image once, predict many times
    automatic       AutomaticMaskGenerator: segment everything
    data            mask datasets (shapes, blobs, folders), augmentation, simulated clicks
    formats         COCO RLE, polygons, overlays
    demo, cli       the `genlab demo` section and the `genlab segment` verb
"""
