"""hemabench: an open benchmark for image encoders in hematology."""

from hemabench.compute.cpumath import pin_cpu_math

__version__ = "0.1.0"

pin_cpu_math()  # before numpy, OpenBLAS, MKL or torch pick their instruction sets
