"""The per-process table cache: loads outside its lock, keeps answers for the TTL, and forgets."""

import threading

from metering.process_cache import ProcessTable


def test_a_load_does_not_hold_up_another_request_that_needs_the_table():
    # Both loads must be inside the loader at once: with a lock held across the load, the second
    # would wait for the first, which waits for the second (as a busy process's requests once
    # waited on the database pool), and the barrier would break.
    both_loading = threading.Barrier(2, timeout=5)

    def load():
        both_loading.wait()
        return {"route": 1}

    table = ProcessTable(load)
    results = []
    threads = [threading.Thread(target=lambda: results.append(table.get())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [{"route": 1}, {"route": 1}]
    assert not both_loading.broken


def test_an_answer_is_kept_for_the_ttl_then_reloaded(settings, monkeypatch):
    settings.SPENDPLANE_CACHE_SECONDS = 30
    clock = [1000.0]
    monkeypatch.setattr("metering.process_cache.time.monotonic", lambda: clock[0])
    loads = []
    table = ProcessTable(lambda: loads.append(1) or len(loads))
    assert [table.get(), table.get()] == [1, 1]
    clock[0] += 31
    assert table.get() == 2


def test_a_load_that_began_before_forget_is_returned_but_not_kept():
    answers = iter(["old", "new"])
    table = ProcessTable(lambda: None)

    def load_then_forget():
        value = next(answers)
        if value == "old":
            table.forget()  # a change lands while this load is reading
        return value

    table._load = load_then_forget
    assert table.get() == "old"
    assert table.get() == "new"
    assert table.get() == "new"
