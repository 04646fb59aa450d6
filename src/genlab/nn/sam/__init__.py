"""The networks of the Segment-Anything-style model, one concept per module (as in segment-anything's
``modeling/``); the model family that assembles and trains them is :mod:`genlab.models.sam`:

    image_encoder   ImageEncoder: image → embedding (+ high-resolution features), once per image
    prompt_encoder  PromptEncoder: points, boxes, masks → tokens and a dense embedding
    transformer     TwoWayTransformer: prompt tokens ↔ image embedding
    mask_decoder    MaskDecoder: 3 + 1 masks and their predicted IoU
"""
