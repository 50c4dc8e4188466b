"""Task glue: the three tasks end to end (data -> model -> Trainer -> metrics -> saved model folder).

The ``attnlab train / generate / translate / classify / demo`` commands and the quality benchmarks call
these functions; they are also usable directly from Python.
"""

from attnlab.tasks.common import load_model, resolve_device, save_model

__all__ = ["load_model", "resolve_device", "save_model"]
