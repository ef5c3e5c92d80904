"""The only callers of ``ran_core`` in the viewer, without Qt: analysis of images and frames, camera and video frame
sources, the evaluation backend. Imports :mod:`ran_viewer.model` at most."""
