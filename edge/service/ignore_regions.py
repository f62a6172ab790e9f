"""A camera's ignore regions (`cameras[].ignore_regions`): faces whose box centre lies in one of
its polygons (a poster, a painting, a screen by the door) are set apart before tracking, so they
never become people, decisions or an alert. The polygons are fractions of the frame's width and
height, so they hold at any resolution."""
import logging

from edge.inference.geometry import box_in_regions, polygon_problem

log = logging.getLogger(__name__)


class IgnoreRegions:
    """One camera's polygons and how many faces they have set apart (`ignored`)."""

    def __init__(self, camera, polygons=()):
        self.camera = camera
        self.polygons = tuple(tuple((float(x), float(y)) for x, y in polygon) for polygon in polygons)
        for i, polygon in enumerate(self.polygons):
            problem = polygon_problem(polygon)
            if problem:
                raise ValueError(f"camera {camera!r}: ignore_regions[{i}] {problem}")
        self.ignored = 0  # faces set apart since this object was made

    def __bool__(self):
        return bool(self.polygons)

    def covers(self, box, frame_shape):
        """True when the centre of a pixel box lies in one of the regions of a frame of
        `frame_shape` (height, width, ...)."""
        if not self.polygons:
            return False
        height, width = frame_shape[:2]
        return box_in_regions(box, self.polygons, width, height)

    def split(self, frame_shape, faces):
        """(kept, ignored): the faces (anything with `.box` in pixels) outside every region and
        those inside one, each in its order; counts the ignored ones."""
        if not self.polygons:
            return list(faces), []
        kept, ignored = [], []
        for face in faces:
            (ignored if self.covers(face.box, frame_shape) else kept).append(face)
        if ignored:
            self.ignored += len(ignored)
            log.debug("camera %s: %d face(s) in an ignore region", self.camera, len(ignored))
        return kept, ignored
