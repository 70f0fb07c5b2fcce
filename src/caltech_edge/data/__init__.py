"""Datasets, splits, preprocessing, augmentation and RecordIO.

Submodules are imported lazily so ``caltech_edge.data.transforms`` (used on devices)
never pulls in anything heavy.
"""
