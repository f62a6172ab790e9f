"""maskdet's edge half: everything that runs on the Pi (never imports TensorFlow)."""
