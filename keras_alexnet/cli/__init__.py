"""The `keras-alexnet` command line, the top floor of the package.

`main` reads the arguments before importing Keras, so that `--help` and usage
errors answer at once and `--backend` can choose the backend. One module per
family of commands: `classify`; `checkpoints` (convert, info, export); `runs`
(train, finetune, evaluate, quickstart, prepare). See docs/cli.md.
"""

from keras_alexnet.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
