"""The training recipe's defaults, in a module that imports nothing, so that the command line
and the model card read them without loading what trains (numpy, OpenCV, TensorFlow)."""

AUGMENTED_VIEWS = 3  # augmented views per training face (`train --views`)
DISTILL_ALPHA = 0.5  # weight of the label in a labelled face's target; the rest is the teacher's
DISTILL_TEMPERATURE = 2.0  # softens the teacher's score (Hinton et al.): its doubts carry over
SCENE_FACE_FRAMINGS = ("annotation", "detector")  # `scene-faces --framing`: whose box cuts a face
