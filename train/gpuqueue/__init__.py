"""The GPU queue: orchestration around train/train.py (one device call runs queue.yaml's rows, packs and
collects them). Not named `queue`: `python train/train.py` puts train/ on sys.path, where a `queue` package
would shadow the standard library's."""
