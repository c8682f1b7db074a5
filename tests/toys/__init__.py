"""A toy of each kind of extension, each one module, registered by ``tests/unit/test_extending.py``."""
