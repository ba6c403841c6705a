"""Pretrained checkpoints: the registry, safe readers, converters and the loader."""
