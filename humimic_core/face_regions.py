"""Named regions of the 478-point face mesh (MediaPipe indices; irises 468-477) that a joint of the
face twin moves (robot config ``servos[i].twin``), and the mesh's openings.

R/L = the face's own right/left (image left/right of a camera facing it). A region's points carry
a weight (the share of the joint's displacement each gets, e.g. a lid's middle moves more than its
ends); points near a region follow with a falloff, except the region's ``holds`` (the other lid of
the eye stays where it is while one lid closes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

#: mesh points (without the irises) and all of them
MESH, MESH_WITH_IRISES = 468, 478

#: the openings, as closed rings: the warp leaves what shows in them to drawing
EYE_RINGS = {
    "R": (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
    "L": (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
}
MOUTH_RING = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
#: the lid skin's upper edge above each eye (from the outer to the inner corner), where a closing lid
#: unfolds
LID_SKIN = {"R": (247, 30, 29, 27, 28, 56, 190), "L": (467, 260, 259, 257, 258, 286, 414)}
#: iris centre, then its four rim points, per eye
IRISES = {"R": (468, 469, 470, 471, 472), "L": (473, 474, 475, 476, 477)}
#: (upper, lower) point pairs that never cross: a lid stops at the other, the lips at each other
NEVER_CROSS = ((159, 145), (158, 153), (160, 144), (157, 154), (161, 163), (386, 374), (385, 380), (387, 373),
               (384, 381), (388, 390), (13, 14), (82, 87), (312, 317), (81, 178), (311, 402), (80, 88), (310, 318))

_UPPER_LIP = (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415)
_LOWER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324)
_LOWER_LIP_PROFILE = (0.5, 0.75, 0.9, 1.0, 1.0, 1.0, 0.9, 0.75, 0.5)  # the jaw drops the lip's middle most
UPPER_LID = {"R": (246, 161, 160, 159, 158, 157, 173), "L": (466, 388, 387, 386, 385, 384, 398)}
LOWER_LID = {"R": (7, 163, 144, 145, 153, 154, 155), "L": (249, 390, 373, 374, 380, 381, 382)}
_CORNERS = {"R": (33, 133), "L": (263, 362)}
_LID_PROFILE = (0.3, 0.65, 0.9, 1.0, 0.9, 0.65, 0.3)  # a lid's middle moves most, its ends least


@dataclass(frozen=True)
class Region:
    """Mesh points a joint moves, with their weights, and the points that stay put."""

    points: Dict[int, float]
    holds: Tuple[int, ...] = ()


def _lid(points: Tuple[int, ...], holds: Tuple[int, ...]) -> Region:
    return Region(dict(zip(points, _LID_PROFILE)), holds)


def _regions() -> Dict[str, Region]:
    eyes = EYE_RINGS["R"] + EYE_RINGS["L"]
    regions = {
        "jaw": Region({**dict(zip(_LOWER_LIP, _LOWER_LIP_PROFILE * 2)),
                       **dict.fromkeys((152, 148, 176, 377, 400, 18, 200, 199, 175), 1.0)}, _UPPER_LIP + eyes),
        "irises": Region(dict.fromkeys(IRISES["R"] + IRISES["L"], 1.0)),
    }
    brows = {"R": ((107, 66, 55, 65), (70, 63, 46, 53), (105, 52)), "L": ((336, 296, 285, 295), (300, 293, 276, 283),
                                                                         (334, 282))}
    corners = {"R": ((61, 78), (62, 76, 146, 185, 191, 95)), "L": ((291, 308), (292, 306, 375, 409, 415, 324))}
    for side in "RL":
        inner, outer, middle = brows[side]
        regions[f"brow_inner_{side}"] = Region({**dict.fromkeys(inner, 1.0), **dict.fromkeys(middle, 0.5)}, eyes)
        regions[f"brow_outer_{side}"] = Region({**dict.fromkeys(outer, 1.0), **dict.fromkeys(middle, 0.5)}, eyes)
        regions[f"upper_lid_{side}"] = _lid(UPPER_LID[side], LOWER_LID[side] + _CORNERS[side])
        regions[f"lower_lid_{side}"] = _lid(LOWER_LID[side], UPPER_LID[side] + _CORNERS[side])
        ends, near = corners[side]
        regions[f"lip_corner_{side}"] = Region({**dict.fromkeys(ends, 1.0), **dict.fromkeys(near, 0.6)}, eyes)
        regions[f"iris_{side}"] = Region(dict.fromkeys(IRISES[side], 1.0))
    return regions


#: region name -> Region; what a robot config's ``twin.region`` may name
REGIONS: Dict[str, Region] = _regions()
