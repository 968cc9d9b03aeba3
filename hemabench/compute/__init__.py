"""Where and how the math runs: the device and precision policy, the backend of independent fits (joblib
or dask), and the one CPU instruction set. Kept free of heavy imports: ``hemabench`` imports ``cpumath``
first."""
