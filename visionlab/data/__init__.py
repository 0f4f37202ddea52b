"""Data: built-in data sets and loaders for users' own files.

Only the image loader is imported here (``import visionlab`` stays light); the others are in their modules:
``datasets`` (digits, faces, textures, class folders), ``formats`` (MNIST IDX, CIFAR batches, .npz) and ``video``
(moving digits, clip folders).
"""

from visionlab.data.images import (
    SAMPLE_IMAGES,
    ImageSignal,
    coordinate_grid,
    load_image,
    parse_size,
    save_image,
)

__all__ = ["SAMPLE_IMAGES", "ImageSignal", "coordinate_grid", "load_image", "parse_size", "save_image"]
