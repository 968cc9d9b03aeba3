"""Files on disk and input from outside: atomic writes, file and canonical-JSON hashes, and the bounded
loaders for YAML and JSON that may arrive in a pull request."""
