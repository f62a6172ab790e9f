from edge.service.outbox import Outbox


def test_events_wait_in_order_until_acknowledged_and_survive_a_restart(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    for i in range(3):
        seq = box.next_seq()
        box.put(seq, "maskdet/pi/door/event", {"seq": seq, "n": i})
    box.acknowledge(1)
    box.close()
    again = Outbox(tmp_path / "outbox.db")
    assert [(s, p["n"]) for s, _, p in again.pending()] == [(2, 1), (3, 2)]
    assert again.next_seq() == 4  # the sequence continues across restarts


def test_a_full_outbox_drops_the_oldest_and_counts_them(tmp_path):
    box = Outbox(tmp_path / "outbox.db", max_events=3)
    for _ in range(5):
        seq = box.next_seq()
        box.put(seq, "t", {"seq": seq})
    assert [s for s, _, _ in box.pending()] == [3, 4, 5]
    assert box.dropped == 2 and box.depth == 3


def test_a_healthy_outbox_is_on_disk_with_no_problem_and_no_drops(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    seq = box.next_seq()
    box.put(seq, "t", {"seq": seq})
    assert box.storage == "disk" and box.problem is None
    assert box.drops == {"outbox_full": 0, "disk_full": 0, "error": 0} and box.dropped == 0
    box.close()
    box.close()  # closing twice is harmless
