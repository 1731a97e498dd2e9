"""The 478-point face mesh from the attention model's outputs, as MediaPipe's LandmarksRefinementCalculator
assembles it (configuration of the TensorsToFaceLandmarksWithAttention graph in mediapipe 0.10.21):

* the 468 mesh points (x, y, z) are copied;
* the refined lip (80) and eye (71 + 71) points replace x and y of the mesh points listed below,
  keeping the mesh z;
* the 5 + 5 iris points are appended as points 468-472 (model output ``left_iris``, next to the
  ``left_eye`` points that start at mesh point 33) and 473-477 (``right_iris``); their z is the mean
  mesh z of the first 16 points of the matching eye list (the eye contour).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

NUM_MESH = 468
NUM_IRIS = 5

LIPS = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407,
)
LEFT_EYE = (  # model output "left_eye": the eye on the image left of a frontal face (mesh point 33)
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190, 226, 31, 228, 229, 230, 231,
    232, 233, 244, 113, 225, 224, 223, 222, 221, 189, 35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119,
    120, 121, 128, 245, 156, 70, 63, 105, 66, 107, 55, 193,
)
RIGHT_EYE = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414, 446, 261, 448, 449,
    450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413, 265, 353, 276, 283, 282, 295, 372, 340,
    346, 347, 348, 349, 350, 357, 465, 383, 300, 293, 334, 296, 336, 285, 417,
)
EYE_CONTOUR = 16
#: Output name -> mesh points whose x, y it replaces.
REFINED_XY = {"lips": LIPS, "left_eye": LEFT_EYE, "right_eye": RIGHT_EYE}
#: Iris output name -> (first appended point, eye contour whose mean z it gets).
IRISES = {"left_iris": (NUM_MESH, LEFT_EYE[:EYE_CONTOUR]),
          "right_iris": (NUM_MESH + NUM_IRIS, RIGHT_EYE[:EYE_CONTOUR])}
NUM_REFINED = NUM_MESH + NUM_IRIS * len(IRISES)

#: Model outputs in the order their values are concatenated for the assembly, and their sizes.
_SOURCES = {"landmarks": NUM_MESH * 3, **{name: 2 * len(points) for name, points in REFINED_XY.items()},
            **{name: 2 * NUM_IRIS for name in IRISES}}


def _assembly() -> tuple:
    """Index of each (point, coordinate) into the concatenated outputs; the iris rows and the index
    of the mesh z of their eye contours."""
    offsets = dict(zip(_SOURCES, np.cumsum([0, *_SOURCES.values()])))
    index = np.zeros((NUM_REFINED, 3), np.intp)
    index[:NUM_MESH] = np.arange(NUM_MESH * 3).reshape(NUM_MESH, 3)
    for name, points in REFINED_XY.items():
        index[list(points), :2] = offsets[name] + np.arange(2 * len(points)).reshape(-1, 2)
    iris_rows, contour_z = [], []
    for name, (start, contour) in IRISES.items():
        index[start:start + NUM_IRIS, :2] = offsets[name] + np.arange(2 * NUM_IRIS).reshape(-1, 2)
        iris_rows += range(start, start + NUM_IRIS)
        contour_z.append(3 * np.array(contour) + 2)
    return index, np.array(iris_rows), np.stack(contour_z)


_INDEX, _IRIS_ROWS, _CONTOUR_Z = _assembly()


def assemble(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """(478, 3) float64 points in the model's input pixels from the outputs ``landmarks`` (468 * 3
    values), ``lips``, ``left_eye``, ``right_eye``, ``left_iris``, ``right_iris`` (x, y pairs)."""
    values = np.concatenate([outputs[name].reshape(-1) for name in _SOURCES]).astype(np.float64)
    points = values[_INDEX]
    points[_IRIS_ROWS, 2] = np.repeat(values[_CONTOUR_Z].sum(axis=1) / EYE_CONTOUR, NUM_IRIS)
    return points
