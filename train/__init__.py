"""Training scripts (train.py) and their helpers; runnable without installing the repo."""
