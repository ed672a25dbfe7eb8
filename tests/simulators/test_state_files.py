"""The files behind shared simulated hosts: the per-host lock and the atomic, always-newer writes."""

from __future__ import annotations

import os
import threading
import time

from vom.simulators.state import file_stamp, host_lock, write_atomically


def test_every_write_has_a_new_stamp_even_within_one_clock_tick(tmp_path):
    path = tmp_path / "state" / "host.xml"
    stamps = [write_atomically(path, b"same size") for _ in range(50)]
    assert len(set(stamps)) == 50
    assert [s[0] for s in stamps] == sorted(s[0] for s in stamps)
    assert stamps[-1] == file_stamp(path) and path.read_bytes() == b"same size"
    assert os.listdir(path.parent) == ["host.xml"]  # no temporary file left behind


def test_the_lock_excludes_threads_and_is_reentrant(tmp_path):
    lock = tmp_path / "host.lock"
    inside: list[str] = []

    def other() -> None:
        with host_lock(lock):
            inside.append("other")

    with host_lock(lock), host_lock(lock):  # the same thread again: no deadlock
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        assert inside == []
        inside.append("first")
    thread.join(5)
    assert inside == ["first", "other"]


def test_a_lock_file_removed_by_its_holder_is_locked_anew_by_who_waited(tmp_path):
    lock = tmp_path / "host.lock"
    events: list[str] = []

    def waiter() -> None:
        with host_lock(lock):
            events.append("waiter in")
            time.sleep(0.3)
            events.append("waiter out")

    with host_lock(lock):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.2)
        os.unlink(lock)  # forgetting the host removes its files
    time.sleep(0.1)
    with host_lock(lock):  # the waiter holds the path's new file: this waits for it
        events.append("third in")
    thread.join(5)
    assert events == ["waiter in", "waiter out", "third in"]
