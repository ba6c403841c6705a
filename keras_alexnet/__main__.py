"""`python -m keras_alexnet` runs the `keras-alexnet` command line."""

import sys

from keras_alexnet.cli import main

sys.exit(main())
