"""Object detection downstream: CenterNet on a torchvision backbone, scored by mAP.

The paper's Table VII protocol (Li et al., GeoKR §V-C): images cut into slices, per
repeat a seeded 3:1:1 train/validation/test split by image, nested label fractions of
the training part, model selection on validation, the selected model's test mAP.
"""
