"""Flags of a quick tiny train.py run on a CPU, shared by the tests that run train.py."""

# Small and quick: Adam learns the synthetic bands in a few steps; 32 px exercises the on-device resize;
# batches of 14 make 2 steps per epoch of the 28 training faces.
QUICK = ["--cpu", "--no-pretrained", "--optimizer", "adam", "--lr", "1e-3", "--batch_size", "14",
         "--eval_batch_size", "16", "--image_size", "32"]
