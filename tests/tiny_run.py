"""The options of the smallest training run the run-folder tests make."""

OPTIONS = {
    "image_size": 67,
    "batch_size": 10,
    "fc_units": 16,
    "init": "he",
    "flip": False,
    "lighting": False,
    "ten_crop": False,
    "seed": 0,
}
