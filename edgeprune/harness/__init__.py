"""Device harness: measure exported .tflite/.onnx files where they will run.

Device profiles (``devices/*.yaml``) say what a target is; :mod:`edgeprune.harness.runner` is the
one script shipped to it; the host, QEMU and SSH runners put it there, run it and return its JSON.
Nothing heavy is imported here, so ``edgeprune --help`` stays fast.
"""
