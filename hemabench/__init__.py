"""hemabench: an open benchmark for image encoders in hematology."""

__version__ = "0.1.0"
