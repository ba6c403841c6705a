"""The one check of `data_format` arguments shared by layers and preprocessing."""

from __future__ import annotations

import keras

DATA_FORMATS = ("channels_last", "channels_first")


def standardize_data_format(data_format: str | None) -> str:
    """Returns `data_format`, or Keras' image data format when it is `None`."""
    if data_format is None:
        return keras.config.image_data_format()
    if data_format not in DATA_FORMATS:
        raise ValueError(
            "`data_format` should be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )
    return data_format
