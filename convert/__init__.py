"""maskdet's conversion half: train, evaluate, quantize and compile the mask classifier.

Runs on a workstation or CI with TensorFlow; its products go to `models/` for `edge/`.
"""
