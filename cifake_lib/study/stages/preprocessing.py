"""02_preprocessing: the study's splits, and the preprocessing made visible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...data.splits import make_splits, save_manifest
from ...engine.preprocess import Preprocessor
from ..notebook import Study


def prepare_splits(study: Study) -> pd.DataFrame:
    """Make the study's train/validation/test splits (VAL_FRACTION, seeded by SEED), save the
    manifest, return their sizes."""
    data = study.load_data()
    splits = make_splits(data, val_fraction=study.params["VAL_FRACTION"], seed=study.seed)
    save_manifest(splits, data, study.layout.splits_path)
    frame = pd.DataFrame(splits.sizes(data)).T
    frame.index.name = "part"
    return frame


def preprocessing_examples(study: Study, image_size: int, n: int = 6):
    """(uint8 images, their normalized model inputs, de-normalized views) for a few training images."""
    data = study.load_data()
    splits = study.load_splits()
    idx = splits.train[np.linspace(0, len(splits.train) - 1, n).astype(int)]
    raw = torch.from_numpy(data.images[idx])
    prep = Preprocessor(image_size)
    x = prep(raw)
    return raw.numpy(), x, prep.denormalize(x).numpy()


def augmentation_examples(study: Study, repeats: int = 4):
    """``repeats`` augmented draws of the first training image, de-normalized for display."""
    data = study.load_data()
    splits = study.load_splits()
    img = torch.from_numpy(data.images[splits.train[:1]]).repeat(repeats, 1, 1, 1)
    prep = Preprocessor(data.image_size, augment=True)
    out = prep(img, train=True, generator=torch.Generator().manual_seed(study.seed))
    return prep.denormalize(out).numpy()
