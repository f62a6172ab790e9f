"""The inference core: runtimes, the Edge TPU, detectors, preprocessing, the classifier and the
pipeline. Plain functions and objects over frames: no threads, network or GPIO, so `convert/`,
the bench and the daemon all use it."""
