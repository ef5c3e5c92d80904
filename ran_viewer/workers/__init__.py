"""The viewer's background threads (``QThread`` only): inference, camera, thumbnails, evaluation. They run the
services off the GUI thread and report through ``sig_*`` signals. Imports services and model, never widgets."""
