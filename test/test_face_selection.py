"""Face selection policies and track identities on synthetic face boxes (640x480 frames)."""
from __future__ import annotations

import pytest

from humimic_perception.face_selection import FaceSelector

W, H = 640, 480


def box(cx: float, cy: float, side: float) -> tuple:
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def test_largest_and_central_choose_by_size_and_position() -> None:
    faces = [box(100, 100, 120), box(330, 250, 60), box(550, 400, 90)]
    assert FaceSelector("largest").update(faces, W, H).chosen == 0
    assert FaceSelector("central").update(faces, W, H).chosen == 1
    assert FaceSelector("largest").update([], W, H).chosen is None


def test_ids_follow_moving_faces_and_new_faces_get_new_ids() -> None:
    selector = FaceSelector("largest")
    first = selector.update([box(100, 100, 100), box(400, 200, 100)], W, H)
    # both move: one a little (IoU match), one fast (centre-distance match); a third face appears
    second = selector.update([box(435, 235, 100), box(110, 105, 100), box(300, 400, 50)], W, H)
    assert second.ids[:2] == [first.ids[1], first.ids[0]]
    assert second.ids[2] not in first.ids
    # a jump by more than max_shift face sizes is a new person
    third = selector.update([box(110, 105, 100), box(435, 235, 100), box(620, 40, 20)], W, H)
    assert third.ids[:2] == [second.ids[1], second.ids[0]] and third.ids[2] not in second.ids


def test_same_person_is_followed_and_waited_for() -> None:
    selector = FaceSelector("same", max_missing=3)
    alice, bob = box(200, 240, 150), box(450, 240, 100)
    start = selector.update([alice, bob], W, H)
    assert start.chosen == 0  # nobody followed yet: the largest
    alice_id = start.chosen_id
    bob_grows = box(450, 240, 200)
    assert selector.update([bob_grows, alice], W, H).chosen_id == alice_id  # order and size do not matter
    for _ in range(3):  # alice briefly missing: nobody is chosen, bob is not taken instead
        assert selector.update([bob_grows], W, H).chosen is None
    back = selector.update([box(205, 240, 150), bob_grows], W, H)
    assert back.chosen_id == alice_id and back.chosen == 0
    for _ in range(4):  # gone longer than max_missing frames: forgotten, the largest face is followed
        result = selector.update([bob_grows], W, H)
    assert result.chosen == 0 and result.chosen_id != alice_id


def test_switch_margin_prevents_flicker() -> None:
    selector = FaceSelector("largest", switch_margin=0.2)
    a, b = box(150, 240, 100), box(450, 240, 95)
    assert selector.update([a, b], W, H).chosen == 0
    assert selector.update([box(150, 240, 100), box(450, 240, 105)], W, H).chosen == 0  # 10% larger: kept
    assert selector.update([box(150, 240, 100), box(450, 240, 115)], W, H).chosen == 1  # 32% larger: switch
    central = FaceSelector("central", switch_margin=0.2)
    assert central.update([box(300, 240, 80), box(360, 240, 80)], W, H).chosen == 0
    assert central.update([box(295, 240, 80), box(355, 240, 80)], W, H).chosen == 0  # about as central: kept
    assert central.update([box(250, 240, 80), box(330, 240, 80)], W, H).chosen == 1  # clearly more central


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown face selection policy 'nearest'"):
        FaceSelector("nearest")
    with pytest.raises(ValueError, match="iou_threshold"):
        FaceSelector(iou_threshold=0.0)
