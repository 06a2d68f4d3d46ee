"""normcore: the reference library of the course *Normalization Techniques in Training
Deep Neural Networks*.

One module per lecture topic; NumPy references are plain functions that match PyTorch.
Import the module you need, e.g. ``from normcore import normalization``.
"""

__version__ = "0.1.0"
