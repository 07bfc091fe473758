from scheduler import Interval, common_slot, free_slots, rooms_needed


def test_free_slots():
    busy = [Interval(540, 600), Interval(630, 660)]
    assert free_slots(busy, 480, 720) == [Interval(480, 540), Interval(600, 630), Interval(660, 720)]


def test_free_slots_min_length_and_clipping():
    busy = [Interval(400, 500), Interval(530, 560)]
    assert free_slots(busy, 480, 600, min_length=31) == [Interval(560, 600)]
    assert free_slots(busy, 480, 600, min_length=30) == [Interval(500, 530), Interval(560, 600)]


def test_free_slots_ignores_busy_outside_day():
    assert free_slots([Interval(0, 100), Interval(900, 1000)], 480, 600) == [Interval(480, 600)]


def test_rooms_needed():
    meetings = [Interval(0, 30), Interval(10, 40), Interval(20, 50), Interval(40, 60)]
    assert rooms_needed(meetings) == 3


def test_rooms_back_to_back_share_a_room():
    assert rooms_needed([Interval(0, 30), Interval(30, 60)]) == 1
    assert rooms_needed([]) == 0


def test_common_slot():
    alice = [Interval(540, 600)]
    bob = [Interval(600, 660), Interval(700, 720)]
    assert common_slot([alice, bob], 30, 540, 720) == Interval(660, 690)
    assert common_slot([alice, bob], 60, 540, 720) is None
