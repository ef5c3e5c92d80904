"""The viewer's application layer without Qt: state objects with change events, region-weight maths, occluders and
the occlusion editor, the evaluation state, and :class:`~ran_viewer.model.controller.ViewerController`, which owns
request ids, stale-result filtering, occlusion re-runs and the camera session. Imports nothing from the layers above
(services, workers, widgets) and no Qt."""
