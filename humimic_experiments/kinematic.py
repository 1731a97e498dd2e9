"""Kinematic imitation fidelity: the person's raw facial geometry against the robot's joints.

Independent of the action units and of the expression mapping: each signal is measured directly
on the face mesh (478 MediaPipe points, irises 468-477) in the head-pose-normalised face frame
(rotated into the head frame: x forward, y the person's left, z up; centred between the eye
centres; divided by the inter-ocular distance, IOD). R/L = the person's own right/left.

==================  ===========================================================================
signal              definition (IOD unless said otherwise)
==================  ===========================================================================
mouth_open          height of the inner upper lip (13 82 312) over the inner lower lip (14 87 317)
eye_aperture_R/L    height of the upper lid (159 158 160 / 386 385 387) over the lower lid
                    (145 144 153 / 374 373 380)
lip_corner_R/L      height of the lip corner (61 / 291) over the inner lips' centre (13 14)
brow_inner_R/L      height of the inner brow (107 66 55 65 / 336 296 285 295) over that eye's
                    corners (33 133 / 263 362)
brow_outer_R/L      height of the outer brow (70 63 46 53 / 300 293 276 283) over that eye's corners
iris_yaw            lateral offset (+ = the person's left) of the iris centres (468, 473) from
                    their eye-corner midpoints, mean of both eyes
iris_pitch          height of the iris centres over their eye-corner midpoints, mean of both eyes
head_yaw/pitch/roll head angles (rad) of the head pose (humimic_core.head_frame)
==================  ===========================================================================

A pairing (config/fidelity.yaml) says which robot joint follows which signal and with which sign,
written for same-side imitation; under the mirror (mapping.mirror) the _R/_L signals swap and
MIRROR_FLIP signals change sign. Pearson r is reported at lag 0 and at the best lag where the
robot follows (0 .. max_lag frames, never negative); the per-side pairs of a group are pooled
(each pair's series centred on its own mean, then one correlation over all).

Blinks and winks come from each eye's closure = 1 - aperture / open level (the open level is the
clip's OPEN_PERCENTILE of that eye's aperture, so the measure adapts to each person): an event is
a run of frames where an eye is at least ``closed`` shut; both eyes shut = a blink, one shut while
the other closed at most ``open`` times as far = a wink (an eye that leads its partner into a blink
by a frame, or a squint, is neither).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from humimic_core.head_frame import head_angles

EYE_CORNERS = {"R": (33, 133), "L": (263, 362)}
UPPER_LID = {"R": (159, 158, 160), "L": (386, 385, 387)}
LOWER_LID = {"R": (145, 144, 153), "L": (374, 373, 380)}
INNER_BROW = {"R": (107, 66, 55, 65), "L": (336, 296, 285, 295)}
OUTER_BROW = {"R": (70, 63, 46, 53), "L": (300, 293, 276, 283)}
LIP_CORNER = {"R": (61,), "L": (291,)}
IRIS = {"R": (468,), "L": (473,)}
INNER_UPPER_LIP, INNER_LOWER_LIP = (13, 82, 312), (14, 87, 317)
LIP_CENTRE = (13, 14)
MESH_POINTS = 478

SIGNALS = ("mouth_open", "eye_aperture_R", "eye_aperture_L", "lip_corner_R", "lip_corner_L",
           "brow_inner_R", "brow_inner_L", "brow_outer_R", "brow_outer_L", "iris_yaw", "iris_pitch",
           "head_yaw", "head_pitch", "head_roll")
#: Signals whose sign flips in the mirror image (lateral offsets and angles).
MIRROR_FLIP = frozenset({"iris_yaw", "head_yaw", "head_roll"})
#: Percentile of an eye's aperture over a clip taken as that eye open.
OPEN_PERCENTILE = 75.0
#: Blink and wink settings (config/fidelity.yaml `blinks`): see eye_events, blink_response.
BLINK_DEFAULTS = {"closed": 0.6, "open": 0.5, "window_frames": 2, "reach": 0.8}
Y, Z = 1, 2


def _mean(points: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    return points[:, list(indices)].mean(axis=1)


def geometry(points: np.ndarray, rotations: np.ndarray) -> Dict[str, np.ndarray]:
    """Every signal (SIGNALS) per frame of (T, >= 478, 3) landmarks in the camera frame (any uniform
    scale) with the head frame's (T, 3, 3) rotations in the camera frame; NaN where undefined."""
    points, rotations = np.asarray(points, float), np.asarray(rotations, float)
    if points.ndim != 3 or points.shape[1] < MESH_POINTS or points.shape[2] != 3:
        raise ValueError(f"landmarks must be (frames, {MESH_POINTS}, 3), got {points.shape}")
    right, left = _mean(points, EYE_CORNERS["R"]), _mean(points, EYE_CORNERS["L"])
    iod = np.linalg.norm(left - right, axis=1)
    iod = np.where(iod > 0.0, iod, np.nan)
    face = np.einsum("tni,tij->tnj", points - ((left + right) * 0.5)[:, None], rotations) / iod[:, None, None]

    def height(upper: Sequence[int], lower: Sequence[int]) -> np.ndarray:
        return _mean(face, upper)[:, Z] - _mean(face, lower)[:, Z]

    out = {"mouth_open": height(INNER_UPPER_LIP, INNER_LOWER_LIP)}
    for side in "RL":
        out[f"eye_aperture_{side}"] = height(UPPER_LID[side], LOWER_LID[side])
        out[f"lip_corner_{side}"] = height(LIP_CORNER[side], LIP_CENTRE)
        out[f"brow_inner_{side}"] = height(INNER_BROW[side], EYE_CORNERS[side])
        out[f"brow_outer_{side}"] = height(OUTER_BROW[side], EYE_CORNERS[side])
    iris = [_mean(face, IRIS[s]) - _mean(face, EYE_CORNERS[s]) for s in "RL"]
    out["iris_yaw"] = (iris[0][:, Y] + iris[1][:, Y]) * 0.5
    out["iris_pitch"] = (iris[0][:, Z] + iris[1][:, Z]) * 0.5
    angles = np.array([head_angles(r) if np.isfinite(r).all() else (np.nan,) * 3 for r in rotations])
    for i, name in enumerate(("head_yaw", "head_pitch", "head_roll")):
        out[name] = angles[:, i] if len(angles) else np.zeros(0)
    return out


@dataclass(frozen=True)
class Pair:
    """A robot joint that follows a person's signal: joint ~ sign * signal when imitation is right."""

    group: str
    joint: str
    signal: str
    sign: float


def mirror_pair(pair: Pair) -> Pair:
    """The pair under the mirror: an _R/_L signal becomes the other side's, a lateral one flips sign."""
    signal, sign = pair.signal, pair.sign
    if signal[-2:] in ("_R", "_L"):
        signal = signal[:-1] + ("L" if signal.endswith("R") else "R")
    if signal in MIRROR_FLIP:
        sign = -sign
    return Pair(pair.group, pair.joint, signal, sign)


def parse_pairing(data: Mapping[str, object], joints: Iterable[str], mirror: bool) -> List[Pair]:
    """Pairs of a pairing config's ``groups`` ({group: [{joint, signal, sign}, ...]}), mirrored when
    ``mirror``; ValueError naming the entry when a joint, signal or sign is unknown."""
    known = set(joints)
    groups = data.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise ValueError("pairing: 'groups' must map group names to lists of {joint, signal, sign}")
    pairs = []
    for group, entries in groups.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"pairing: groups.{group} must be a non-empty list of {{joint, signal, sign}}")
        for i, entry in enumerate(entries):
            where = f"pairing: groups.{group}[{i}]"
            if not isinstance(entry, dict) or set(entry) != {"joint", "signal", "sign"}:
                raise ValueError(f"{where} must have exactly joint, signal and sign, got {entry!r}")
            if entry["joint"] not in known:
                raise ValueError(f"{where}: joint {entry['joint']!r} is not in the robot config")
            if entry["signal"] not in SIGNALS:
                raise ValueError(f"{where}: unknown signal {entry['signal']!r} (known: {', '.join(SIGNALS)})")
            if entry["sign"] not in (1, -1):
                raise ValueError(f"{where}: sign must be 1 or -1, got {entry['sign']!r}")
            pair = Pair(str(group), str(entry["joint"]), str(entry["signal"]), float(entry["sign"]))
            pairs.append(mirror_pair(pair) if mirror else pair)
    return pairs


def _shifted(x: np.ndarray, y: np.ndarray, lag: int) -> Tuple[np.ndarray, np.ndarray]:
    """(x[i], y[i + lag]) over the frames where both are finite."""
    if lag:
        x, y = x[:-lag], y[lag:]
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def pooled_pearson(segments: Sequence[Tuple[np.ndarray, np.ndarray]], lag: int = 0) -> Tuple[float, int]:
    """(r, n) of (person, robot) series on frame grids, the robot shifted ``lag`` frames later; each
    segment is centred on its own means, then one correlation over all. NaN when a side is flat."""
    sxy = sxx = syy = 0.0
    n = 0
    for x, y in segments:
        x, y = _shifted(np.asarray(x, float), np.asarray(y, float), lag)
        if x.size < 3:
            continue
        x, y = x - x.mean(), y - y.mean()
        sxy, sxx, syy, n = sxy + float(x @ y), sxx + float(x @ x), syy + float(y @ y), n + x.size
    if n < 3 or sxx < 1e-18 or syy < 1e-18:
        return math.nan, n
    return sxy / math.sqrt(sxx * syy), n


@dataclass(frozen=True)
class Correlation:
    r: float       # at lag 0
    best_r: float  # at the best lag where the robot follows
    lag: int       # frames (>= 0) of best_r
    n: int         # frames correlated at lag 0

    def as_dict(self) -> Dict[str, float]:
        return {"r": self.r, "best_r": self.best_r, "lag_frames": self.lag, "n": self.n}


def follow_correlation(segments: Sequence[Tuple[np.ndarray, np.ndarray]], max_lag: int) -> Correlation:
    """r at lag 0 and the best r over lags 0..max_lag frames (the robot following, never leading)."""
    r0, n = pooled_pearson(segments, 0)
    best, best_lag = r0, 0
    for lag in range(1, max_lag + 1):
        r, _ = pooled_pearson(segments, lag)
        if math.isfinite(r) and (not math.isfinite(best) or r > best):
            best, best_lag = r, lag
    return Correlation(r0, best, best_lag, n)


def closure(aperture: np.ndarray) -> np.ndarray:
    """1 - aperture / the eye's open level (OPEN_PERCENTILE of the clip): 0 open, 1 shut."""
    a = np.asarray(aperture, float)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.full_like(a, np.nan)
    level = float(np.percentile(finite, OPEN_PERCENTILE))
    return 1.0 - a / level if level > 0 else np.full_like(a, np.nan)


@dataclass(frozen=True)
class EyeEvent:
    """A run of frames [start, end] where at least one eye was ``closed`` shut."""

    kind: str           # "blink" (both eyes), "wink_R" / "wink_L" (that eye alone), "partial"
    start: int
    end: int
    peak: int           # frame of the deepest closure (of the eyes that closed)
    depth: Dict[str, float]  # eye ("R", "L") -> deepest closure in the event


def eye_events(closures: Mapping[str, np.ndarray], closed: float = 0.6, open_: float = 0.5) -> List[EyeEvent]:
    """Eye-closure events of per-eye closures ("R", "L" -> per frame; NaN = no face): runs of frames
    where an eye is at least ``open_ * closed`` shut with one at least ``closed``; a wink when the
    other eye closed at most ``open_`` times as far meanwhile, a blink when both reached ``closed``,
    else partial."""
    c = {eye: np.nan_to_num(np.asarray(closures[eye], float), nan=-np.inf) for eye in "RL"}
    either = np.maximum(c["R"], c["L"])
    events: List[EyeEvent] = []
    for i in np.flatnonzero(either >= closed):
        if events and i <= events[-1].end:
            continue
        # the event spans the frames around it where an eye is at least open_ * closed shut (hysteresis:
        # a frame that dips under `closed` does not split a blink in two)
        i, j = int(i), int(i)
        while i > 0 and either[i - 1] >= open_ * closed and not (events and i - 1 <= events[-1].end):
            i -= 1
        while j + 1 < either.size and either[j + 1] >= open_ * closed:
            j += 1
        depth = {eye: float(c[eye][i:j + 1].max()) for eye in "RL"}
        shut_eyes = [eye for eye in "RL" if depth[eye] >= closed]
        if len(shut_eyes) == 2:
            kind = "blink"
        elif depth["LR".replace(shut_eyes[0], "")] <= open_ * depth[shut_eyes[0]]:
            kind = f"wink_{shut_eyes[0]}"
        else:
            kind = "partial"
        deepest = np.max([c[eye][i:j + 1] for eye in shut_eyes], axis=0)
        events.append(EyeEvent(kind, i, j, i + int(np.argmax(deepest)), depth))
    return events


def lid_fraction(position: np.ndarray, neutral: float, closed_limit: float) -> np.ndarray:
    """A lid joint's displacement toward closed as a fraction of its range neutral -> closed limit."""
    return (np.asarray(position, float) - neutral) / (closed_limit - neutral)


def blink_response(event: EyeEvent, lids: Mapping[str, np.ndarray], closures: Mapping[str, np.ndarray],
                   window: int = 2, reach: float = 0.8, max_delay: int = 15) -> Dict[str, float]:
    """How the robot's lids (eye -> lid fraction per frame, the lid that imitates that eye) answered
    a blink: ``depth`` = the least, over both lids, of the deepest fraction within ``window`` frames
    after the person's peak; ``delay`` = frames from the person's eyes reaching ``reach`` of their
    peak closure to the slower lid reaching ``reach`` of its range (NaN if not within max_delay)."""
    depths, delays = [], []
    for eye in "RL":
        lid = np.nan_to_num(np.asarray(lids[eye], float), nan=-np.inf)
        depths.append(float(lid[event.peak:event.peak + window + 1].max()))
        person = np.nan_to_num(np.asarray(closures[eye], float)[event.start:event.end + 1], nan=-np.inf)
        t0 = event.start + int(np.argmax(person >= reach * event.depth[eye]))
        reached = np.flatnonzero(lid[event.start:t0 + max_delay + 1] >= reach)
        delays.append(float(event.start + reached[0] - t0) if reached.size else math.nan)
    return {"frame": event.peak, "depth": min(depths), "delay": max(delays) if np.isfinite(delays).all() else math.nan}


def wink_response(event: EyeEvent, lids: Mapping[str, np.ndarray], window: int = 2, moved: float = 0.5,
                  still: float = 0.25) -> Dict[str, object]:
    """Which robot lid answered a wink: the deepest fraction of each lid (by the eye it imitates)
    from the event's start to ``window`` frames after its end; ``one_lid`` = the lid of the closed eye
    moved at least ``moved`` of its range while the other stayed under ``still``, or under the open
    eye's own deepest closure in the event where that eye narrowed further: a wink squeezes the other
    eye too (the cheek rises), and the lid imitating that eye may follow it, never the closed one."""
    closed = event.kind[-1]
    other = "LR".replace(closed, "")
    span = slice(event.start, event.end + window + 1)
    depth = {eye: float(np.nan_to_num(np.asarray(lids[eye], float)[span], nan=-np.inf).max()) for eye in "RL"}
    return {"frame": event.peak, "closed_eye": closed, "closed_lid": depth[closed], "open_lid": depth[other],
            "open_eye": event.depth[other],
            "one_lid": bool(depth[closed] >= moved and depth[other] < max(still, event.depth[other]))}


def summarise_blinks(responses: Sequence[Dict[str, float]], reach: float = 0.8) -> Dict[str, float]:
    """Count, median depth, share reaching ``reach`` and median delay of blink responses."""
    depths = np.array([r["depth"] for r in responses], float)
    delays = np.array([r["delay"] for r in responses], float)
    if not depths.size:
        return {"count": 0}
    return {"count": int(depths.size), "depth_median": float(np.median(depths)),
            "reached": float(np.mean(depths >= reach)),
            "delay_median": float(np.nanmedian(delays)) if np.isfinite(delays).any() else math.nan,
            "delay_missed": int(np.sum(~np.isfinite(delays)))}


def closing_limit(pair: Pair, low: float, high: float) -> float:
    """The limit a lid paired with an eye's aperture closes toward: the aperture falls as the eye
    closes, so the joint closes toward -sign."""
    return high if pair.sign < 0 else low


def lid_fractions(pairs: Sequence[Pair], positions: Mapping[str, np.ndarray],
                  limits: Mapping[str, Tuple[float, float, float]]) -> Optional[Dict[str, np.ndarray]]:
    """Eye ("R"/"L") -> lid fraction of the joint paired with that eye's aperture (its closing
    direction: toward the limit on the side where the pair's sign says closing), or None when the
    pairing has no lid for an eye. ``limits``: joint -> (min, neutral, max)."""
    out = {}
    for pair in pairs:
        if pair.signal.startswith("eye_aperture_") and pair.joint in positions:
            lo, neutral, hi = limits[pair.joint]
            out[pair.signal[-1]] = lid_fraction(positions[pair.joint], neutral, closing_limit(pair, lo, hi))
    return out if set(out) == {"R", "L"} else None


Segments = Dict[Pair, List[Tuple[np.ndarray, np.ndarray]]]


def pair_segments(signals: Mapping[str, np.ndarray], positions: Mapping[str, np.ndarray],
                  pairs: Sequence[Pair]) -> Segments:
    """pair -> [(sign * person signal, robot joint position)] on one frame grid, for the pairs
    whose joint the robot reported."""
    return {p: [(p.sign * np.asarray(signals[p.signal], float), np.asarray(positions[p.joint], float))]
            for p in pairs if p.joint in positions}


#: The name of one_frame_behind's row in the tables of humimic-eval and humimic-anticipation.
REFERENCE_ROW = "person, one frame behind (reference)"


def one_frame_behind(segments: Sequence[Tuple[np.ndarray, np.ndarray]]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(person, robot) segments with the robot's side replaced by the person's own signal one frame later:
    a robot that shows each frame exactly, but only from the next frame on, as any robot must that acts on
    its camera's frames (a frame's command reaches the servos a loop latency after the frame). Its lag is a
    frame, which a robot shortens only by predicting the person; its r is no bound (the landmarks' noise is
    on both sides, a robot that smooths it may score higher)."""
    return [(x[1:], x[:-1]) for x, _ in segments]


def correlation_table(segments: Segments, max_lag: int) -> Dict[str, object]:
    """{"pairs": [per pair], "groups": {group: its pairs pooled}} of follow_correlation rows."""
    groups = list(dict.fromkeys(p.group for p in segments))
    return {
        "pairs": [{"group": p.group, "joint": p.joint, "signal": p.signal, "sign": p.sign,
                   **follow_correlation(s, max_lag).as_dict()} for p, s in segments.items()],
        "groups": {g: follow_correlation([s for p, ss in segments.items() if p.group == g for s in ss],
                                         max_lag).as_dict() for g in groups},
    }


def eye_responses(signals: Mapping[str, np.ndarray], lids: Optional[Mapping[str, np.ndarray]],
                  closed: float = 0.6, open_: float = 0.5, window: int = 2, reach: float = 0.8,
                  max_delay: int = 15) -> Tuple[List[Dict[str, float]], List[Dict[str, object]]]:
    """(blink responses, wink responses) of a clip's eye events; none without both robot lids."""
    if lids is None:
        return [], []
    closures = {eye: closure(signals[f"eye_aperture_{eye}"]) for eye in "RL"}
    events = eye_events(closures, closed, open_)
    return ([blink_response(e, lids, closures, window, reach, max_delay) for e in events if e.kind == "blink"],
            [wink_response(e, lids, window) for e in events if e.kind.startswith("wink")])
