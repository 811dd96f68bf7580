import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgeprune  # noqa: E402,F401  (sets up TensorFlow for tf-keras before anything imports it)
