"""labelpipe: label, aggregate, denoise and train a calibrated text classifier."""

__version__ = "0.1.0"
