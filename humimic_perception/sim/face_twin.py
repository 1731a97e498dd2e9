"""The face twin's renderer: the robot's face for joint positions, as a BGR image.

Each joint's ``twin`` entries of the robot config (humimic_core.robot_config.TwinMove) become a
displacement field over the mesh points, per radian from the joint's neutral (a region's points by
their weights, the points within ``falloff`` IOD by a quadratic falloff, the region's holds not at
all); ``rotate`` entries turn the whole face in 3-D about its centre (in the servos' order). An upper
lid stops at the lower lid, the upper lips at the lower (face_regions.NEVER_CROSS).

The image is warped piecewise-affinely over the warp mesh, only where it moves: the moved
triangles are rasterised as indices (largest first), each pixel takes its triangle's inverse affine
map, one cv2.remap samples the neutral image. What a warp cannot show is drawn: the mouth's dark
interior inside the inner lips, and each iris (the neutral one, moved with the eye's points) inside
its eye's lids, so a closing lid covers it.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from humimic_core.face_regions import (EYE_RINGS, IRISES, LID_SKIN, LOWER_LID, MESH, MOUTH_RING, NEVER_CROSS, REGIONS,
                                       UPPER_LID)
from humimic_core.robot_config import Servo, TwinMove
from humimic_perception.sim.neutral_face import CENTRES, NeutralFace

#: the mouth's interior (BGR), darker in the middle
MOUTH_COLOUR, MOUTH_CORE = (38, 28, 52), (18, 12, 24)
#: the lashes of a closed lid (BGR)
LASHES = (45, 40, 50)
#: sub-pixel bits of the rasterised triangles and polygons
SHIFT = 4
#: pixels a vertex must move for its triangles to be warped
MOVED = 0.02


def inter_ocular(points: np.ndarray) -> float:
    """Distance (pixels) between the eye centres (mean of each eye's ring)."""
    return float(np.linalg.norm(points[list(EYE_RINGS["R"]), :2].mean(0) - points[list(EYE_RINGS["L"]), :2].mean(0)))


def displacement_field(move: TwinMove, neutral: np.ndarray, iod: float) -> np.ndarray:
    """(478, 2) pixels per radian of one ``region`` entry over the neutral mesh points."""
    region = REGIONS[move.region]
    weight = np.zeros(len(neutral))
    index = np.array(list(region.points))
    weight[index] = list(region.points.values())
    if move.falloff > 0:
        distance = np.linalg.norm(neutral[:MESH, None, :2] - neutral[None, index, :2], axis=2) / iod
        near = (np.array(list(region.points.values()))[None, :]
                * np.clip(1.0 - distance / move.falloff, 0.0, None) ** 2).max(1)
        weight[:MESH] = np.maximum(weight[:MESH], near)
        weight[list(region.holds)] = 0.0
        weight[index] = list(region.points.values())
    return weight[:, None] * np.array(move.move)[None, :] * iod


def rotation(axis: Sequence[float], angle: float) -> np.ndarray:
    matrix, _ = cv2.Rodrigues(np.asarray(axis, dtype=np.float64) * angle)
    return matrix


class FaceTwin:
    """Renders the neutral face moved by the joints of ``servos`` that have ``twin`` entries."""

    def __init__(self, face: NeutralFace, servos: Sequence[Servo]) -> None:
        self.face = face
        self.neutral = face.vertices.astype(np.float64)
        self.iod = inter_ocular(self.neutral)
        points = self.neutral[:CENTRES]
        self.centre = points[:MESH].mean(0)
        self.fields: List[Tuple[Servo, np.ndarray]] = []
        self.rotations: List[Tuple[Servo, Tuple[float, float, float]]] = []
        for servo in servos:
            for move in servo.twin:
                if move.region:
                    self.fields.append((servo, displacement_field(move, points, self.iod)))
                else:
                    self.rotations.append((servo, move.rotate))
        self.iris_radius = {side: float(np.linalg.norm(points[list(rim), :2] - points[centre, :2], axis=1).mean())
                            for side, (centre, *rim) in IRISES.items()}
        self._upper, self._lower = (np.array(i) for i in zip(*NEVER_CROSS))
        self._triangles = face.triangles
        self._src = self.neutral[face.triangles][:, :, :2]  # (T, 3, 2)
        self._lid_skin = {side: self._mean_colour(list(LID_SKIN[side]) + list(UPPER_LID[side][::-1]))
                          for side in "RL"}
        self._ys, self._xs = np.mgrid[0:face.size, 0:face.size].astype(np.float32)

    def vertices(self, positions: Mapping[str, float]) -> np.ndarray:
        """(V, 3) positions (pixels; x, y and the mesh's depth z) of the warp mesh's vertices for
        these joint positions (joints not given stay at neutral; each within its limits)."""
        servos = [s for s, _ in self.fields] + [s for s, _ in self.rotations]
        angles = {s.joint: s.clamp(float(positions.get(s.joint, s.neutral))) - s.neutral for s in servos}
        mesh = self.neutral[:CENTRES].copy()
        for servo, field in self.fields:
            mesh[:, :2] += angles[servo.joint] * field
        mesh[self._upper, 1] = np.minimum(mesh[self._upper, 1], mesh[self._lower, 1])
        for servo, axis in self.rotations:
            if angles[servo.joint]:
                mesh = (mesh - self.centre) @ rotation(axis, angles[servo.joint]).T + self.centre
        centres = [mesh[list(ring)].mean(0) for ring in (EYE_RINGS["R"], EYE_RINGS["L"], MOUTH_RING)]
        return np.vstack([mesh, centres, self.neutral[CENTRES + 3:]])

    def render(self, positions: Mapping[str, float]) -> np.ndarray:
        """The face for these joint positions (rad), BGR uint8, the neutral image's size."""
        vertices = self.vertices(positions)
        points = vertices[:, :2]
        out = self.face.base.copy()
        self._warp(points, out, vertices[:, 2] if self.rotations else None)
        self._draw_mouth(points, out)
        for side in "RL":
            self._draw_iris(side, points, out)
            self._draw_lid(side, points, out)
        return out

    def _warp(self, points: np.ndarray, out: np.ndarray, depth: Optional[np.ndarray]) -> None:
        """Warp the moved triangles into ``out``; with ``depth``, the nearest drawn last (a turned
        face hides what turns away), else the largest first."""
        moved = np.abs(points - self.neutral[:, :2]).max(1) > MOVED
        chosen = np.flatnonzero(moved[self._triangles].any(1))
        if not len(chosen):
            return
        if depth is not None:
            chosen = chosen[np.argsort(-depth[self._triangles[chosen]].mean(1), kind="stable")]
        dst = points[self._triangles[chosen]]  # (n, 3, 2)
        src = self._src[chosen]
        both = np.concatenate([dst.reshape(-1, 2), src.reshape(-1, 2)])
        size = out.shape[0]
        x0, y0 = np.clip(np.floor(both.min(0)).astype(int), 0, size - 1)
        x1, y1 = np.clip(np.ceil(both.max(0)).astype(int) + 1, 1, size)
        ids = np.zeros((y1 - y0, x1 - x0), np.uint16)
        corners = np.round((dst - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
        for i, tri in enumerate(corners, start=1):
            cv2.fillConvexPoly(ids, tri, i, cv2.LINE_8, SHIFT)
        affine = np.zeros((6, len(chosen) + 1), np.float32)
        affine[:, 0] = (1, 0, 0, 0, 1, 0)  # not in a moved triangle: stays where it is
        homogeneous = np.concatenate([dst.transpose(0, 2, 1), np.ones((len(chosen), 1, 3))], axis=1)  # (n, 3, 3)
        det = np.linalg.det(homogeneous)
        usable = np.abs(det) > 1e-9
        maps = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (len(chosen), 1, 1))
        maps[usable] = src.transpose(0, 2, 1)[usable] @ np.linalg.inv(homogeneous[usable])
        affine[:, 1:] = maps.reshape(-1, 6).T
        index = ids.astype(np.intp)
        xs, ys = self._xs[y0:y1, x0:x1], self._ys[y0:y1, x0:x1]
        map_x, map_y = (self._affine_map(affine[row:row + 3], index, xs, ys) for row in (0, 3))
        out[y0:y1, x0:x1] = cv2.remap(self.face.base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    @staticmethod
    def _affine_map(rows: np.ndarray, index: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """a * x + b * y + c per pixel, (a, b, c) = ``rows`` of the pixel's triangle."""
        out = np.take(rows[0], index)
        out *= xs
        out += np.take(rows[1], index) * ys
        out += np.take(rows[2], index)
        return out

    def _draw_mouth(self, points: np.ndarray, out: np.ndarray) -> None:
        ring = points[list(MOUTH_RING)]
        cv2.fillPoly(out, [np.round(ring * (1 << SHIFT)).astype(np.int32)], MOUTH_COLOUR, cv2.LINE_AA, SHIFT)
        centre = ring.mean(0)
        core = centre + 0.6 * (ring - centre)
        cv2.fillPoly(out, [np.round(core * (1 << SHIFT)).astype(np.int32)], MOUTH_CORE, cv2.LINE_AA, SHIFT)

    def _mean_colour(self, polygon: List[int]) -> np.ndarray:
        mask = np.zeros(self.face.base.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(self.neutral[polygon, :2]).astype(np.int32)], 255)
        return np.array(cv2.mean(self.face.base, mask)[:3])

    def _draw_lid(self, side: str, points: np.ndarray, out: np.ndarray) -> None:
        """As the upper lid closes (its middle's share of the neutral lid gap), its skin unfolds:
        the fold above it fades into the lid's own colour, and the lashes close onto the lower lid."""
        top, bottom = UPPER_LID[side][3], LOWER_LID[side][3]  # the lids' middles
        gap, open_gap = (p[bottom, 1] - p[top, 1] for p in (points, self.neutral))
        closure = float(np.clip(1.0 - gap / max(open_gap, 1e-6), 0.0, 1.0))
        if closure <= 0.0:
            return
        polygon = points[list(LID_SKIN[side]) + list(UPPER_LID[side][::-1])]
        x0, y0 = np.floor(polygon.min(0)).astype(int) - 3
        x1, y1 = np.ceil(polygon.max(0)).astype(int) + 4
        if x0 < 0 or y0 < 0 or x1 > out.shape[1] or y1 > out.shape[0]:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * (1 << SHIFT)).astype(np.int32)], 1.0, cv2.LINE_AA, SHIFT)
        alpha = (cv2.GaussianBlur(mask, (5, 5), 0) * closure)[..., None]
        box = out[y0:y1, x0:x1]
        box[:] = (box * (1.0 - alpha) + self._lid_skin[side] * alpha).astype(np.uint8)
        lashes = np.round((points[list(UPPER_LID[side])] - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
        line = np.zeros_like(mask)
        cv2.polylines(line, [lashes], False, 1.0, 2, cv2.LINE_AA, SHIFT)
        alpha = (line * closure)[..., None]
        box[:] = (box * (1.0 - alpha) + np.array(LASHES) * alpha).astype(np.uint8)

    def _draw_iris(self, side: str, points: np.ndarray, out: np.ndarray) -> None:
        """The neutral iris, moved to where the eye's iris points went, inside the eye's lids."""
        centre = IRISES[side][0]
        start, now = self.neutral[centre, :2], points[centre]
        radius = self.iris_radius[side]
        half = int(np.ceil(radius)) + 2
        cx, cy = (int(round(v)) for v in now)
        size = out.shape[0]
        if not (half <= cx < size - half and half <= cy < size - half):
            return
        box = (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))
        patch = cv2.getRectSubPix(self.face.original, (2 * half + 1, 2 * half + 1),
                                  (float(start[0] + cx - now[0]), float(start[1] + cy - now[1])))
        mask = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
        origin = np.array([cx - half, cy - half], dtype=np.float64)
        cv2.circle(mask, tuple(int(v) for v in np.round((now - origin) * (1 << SHIFT))),
                   int(round(radius * (1 << SHIFT))), 255, -1, cv2.LINE_AA, SHIFT)
        lids = np.zeros_like(mask)
        cv2.fillPoly(lids, [np.round((points[list(EYE_RINGS[side])] - origin) * (1 << SHIFT)).astype(np.int32)],
                     255, cv2.LINE_AA, SHIFT)
        alpha = (mask.astype(np.float32) * lids.astype(np.float32) / (255.0 * 255.0))[..., None]
        out[box] = (out[box] * (1.0 - alpha) + patch * alpha).astype(np.uint8)


def joint_positions(names: Sequence[str], positions: Sequence[float]) -> Dict[str, float]:
    """A JointState's names and positions as a mapping (finite positions only)."""
    return {n: float(p) for n, p in zip(names, positions) if np.isfinite(p)}
