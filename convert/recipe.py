"""The training recipe's defaults, in a module that imports nothing, so that the command line
and the model card read them without loading what trains (numpy, OpenCV, TensorFlow)."""

AUGMENTED_VIEWS = 3  # augmented views per training face (`train --views`)
DISTILL_ALPHA = 0.5  # weight of the label in a labelled face's target; the rest is the teacher's
DISTILL_TEMPERATURE = 2.0  # softens the teacher's score (Hinton et al.): its doubts carry over
SCENE_FACE_FRAMINGS = ("annotation", "detector")  # `scene-faces --framing`: whose box cuts a face
# The model's outputs (`train --outputs`): 2, mask / no mask (a mask below the nose is no mask),
# or 3, with an output of its own for masks below the nose (dataset.LABELS), which lets a no_mask
# event say which kind. Measured (issue 12, runs/f/r128*): with three outputs 128 px students
# called 94-97 of 113 held-out masks below the nose no mask, against 99 for a like-for-like
# two-output run and 101 for the default, and were no better on masks or bare faces; two stay.
OUTPUTS = 2
