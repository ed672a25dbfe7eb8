"""A simulated KVM host (libvirt ``test:///`` node file) keeps its state on the "host": a change made
through the driver in one process is seen by every other process, also by one that loaded the host
before the change, and survives the process; concurrent changes of two processes lose nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from inventory.drivers.base import DriverError, InventorySnapshot
from inventory.drivers.libvirt import LibvirtDriver, forget_test_connections, storage
from tests.simulators.conftest import REPO, run_python, start_python
from vom.simulators.libvirt_node import (
    DiskSpec,
    DomainSpec,
    GiB,
    NetworkSpec,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    VolumeSpec,
    stable_mac,
    stable_uuid,
    write_node,
)

IMAGES = "/var/lib/vom-images"
GOLDEN = f"{IMAGES}/golden.qcow2"
TPL = stable_uuid("shared", "tpl")
WEB_A = stable_uuid("shared", "web-a")
WEB_B = stable_uuid("shared", "web-b")
APP = stable_uuid("shared", "app")


def _dom(name: str, uuid: str, state: RunState) -> DomainSpec:
    return DomainSpec(
        name=name,
        uuid=uuid,
        memory_kib=1024 * 1024,
        vcpus=1,
        state=state,
        disks=[DiskSpec(target="vda", source=f"{IMAGES}/{name}.qcow2")],
        nics=[NicSpec(mac=stable_mac("shared", name))],
    )


def spec(*, extra: bool = False) -> NodeSpec:
    domains = [
        _dom("tpl", TPL, RunState.SHUTOFF),
        _dom("web-a", WEB_A, RunState.SHUTOFF),
        _dom("web-b", WEB_B, RunState.SHUTOFF),
        _dom("app", APP, RunState.RUNNING),
    ]
    if extra:
        domains.append(_dom("extra", stable_uuid("shared", "extra"), RunState.RUNNING))
    return NodeSpec(
        hostname="kvm-shared",
        host_uuid=stable_uuid("shared", "host"),
        domains=domains,
        networks=[NetworkSpec(name="default", uuid=stable_uuid("shared", "net"), bridge="virbr0", ip="192.168.122.1")],
        pools=[
            PoolSpec(
                name="images",
                uuid=stable_uuid("shared", "images"),
                target_path=IMAGES,
                volumes=[VolumeSpec(name="golden.qcow2", capacity_bytes=4 * GiB, allocation_bytes=GiB, format="qcow2")],
            )
        ],
    )


@pytest.fixture
def uri(tmp_path: Path, state_dir: Path) -> str:
    return f"test://{write_node(spec(), tmp_path / 'kvm-shared.xml')}"


def states(snapshot: InventorySnapshot) -> dict[str, str]:
    return {vm.name: vm.state for vm in snapshot.vms}


def volumes(snapshot: InventorySnapshot) -> dict[str, tuple[int, str]]:
    return {v.name: (v.allocation_bytes, v.backing_store) for p in snapshot.pools for v in p.volumes}


def state_elsewhere(uri: str, vm_id: str) -> object:
    """The VM's state as a new process reads it."""
    return run_python(f"""
        import json
        from inventory.drivers.libvirt import LibvirtDriver
        print(json.dumps(LibvirtDriver({uri!r}).vm_state({vm_id!r}).state))
    """)


# What another process does, through its own driver (Django is not set up there).
OTHER_PROCESS_CHANGES = """
    import json
    from inventory.drivers.libvirt import LibvirtDriver, storage
    d = LibvirtDriver({uri!r})
    d.start({web_a!r})
    d.suspend({app!r})
    boot = storage.create_overlay_volume(d, "images", "new-vm.qcow2", {golden!r})
    new = storage.define_vm_from_template(
        d, storage.domain_definition(d, {tpl!r}), name="new-vm", boot_volume_path=boot.path
    )
    storage.create_volume(d, "images", "data.qcow2", 2 * 1024**3)
    print(json.dumps({{"new": new, "boot": boot.path}}))
"""


def test_a_change_made_in_another_process_is_seen_here(uri):
    d = LibvirtDriver(uri)
    assert states(d.discover())["web-a"] == "shutoff"  # this process has loaded the host before the change
    made = run_python(OTHER_PROCESS_CHANGES.format(uri=uri, web_a=WEB_A, app=APP, golden=GOLDEN, tpl=TPL))

    for driver in (d, LibvirtDriver(uri)):  # the driver holding the old connection, and a new one
        seen = driver.discover()
        assert states(seen) == {
            "tpl": "shutoff",
            "web-a": "running",
            "web-b": "shutoff",
            "app": "paused",
            "new-vm": "shutoff",
        }
        (new_vm,) = [vm for vm in seen.vms if vm.name == "new-vm"]
        assert new_vm.uuid == made["new"] and [disk.source for disk in new_vm.disks] == [made["boot"]]
        assert volumes(seen) == {
            "golden.qcow2": (GiB, ""),
            "new-vm.qcow2": (0, GOLDEN),
            "data.qcow2": (0, ""),
        }
    assert d.vm_state(WEB_A).state == "running"
    # ... and the next change here starts from that state.
    d.resume(APP)
    assert state_elsewhere(uri, APP) == "running"


def test_a_change_made_here_is_seen_by_a_process_that_loaded_the_host_before(uri):
    worker = start_python(f"""
        import json, sys
        from inventory.drivers.libvirt import LibvirtDriver
        d = LibvirtDriver({uri!r})
        def show():
            s = d.discover()
            print(json.dumps({{
                "states": {{vm.name: vm.state for vm in s.vms}},
                "snapshots": {{vm.name: [x.name for x in vm.snapshots] for vm in s.vms if vm.snapshots}},
                "volumes": sorted(v.name for p in s.pools for v in p.volumes),
            }}), flush=True)
        show()
        sys.stdin.readline()  # like a discovery worker: its connection is kept between two runs
        show()
    """)
    assert worker.stdin is not None and worker.stdout is not None
    first = worker.stdout.readline()
    assert '"app": "running"' in first, first

    d = LibvirtDriver(uri)
    d.power_off(APP)
    d.start(WEB_B)
    d.snapshot_create(WEB_B, "before-patch")
    storage.create_volume(d, "images", "scratch.qcow2", GiB)
    storage.delete_volume(d, "images", "golden.qcow2")
    worker.stdin.write("go\n")
    worker.stdin.flush()
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["states"] == {"tpl": "shutoff", "web-a": "shutoff", "web-b": "running", "app": "shutoff"}
    assert seen["snapshots"] == {"web-b": ["before-patch"]}
    assert seen["volumes"] == ["scratch.qcow2"]


CONCURRENT_CHANGES = """
    import json, os, time
    from inventory.drivers.libvirt import LibvirtDriver, storage
    d = LibvirtDriver({uri!r})
    d.discover()
    while not os.path.exists({go!r}):
        time.sleep(0.005)
    for i in range(20):
        d.start({vm!r})
        storage.create_volume(d, "images", f"{tag}-{{i}}.qcow2", 1024**2)
        if i < 19:
            d.power_off({vm!r})
    print(json.dumps("done"))
"""


def test_two_processes_changing_one_host_at_once_lose_nothing(uri, tmp_path):
    go = tmp_path / "go"
    workers = [
        start_python(CONCURRENT_CHANGES.format(uri=uri, go=str(go), vm=vm, tag=tag))
        for vm, tag in ((WEB_A, "a"), (WEB_B, "b"))
    ]
    time.sleep(1.0)  # both have loaded the host
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    seen = LibvirtDriver(uri).discover()
    assert states(seen) == {"tpl": "shutoff", "web-a": "running", "web-b": "running", "app": "running"}
    expected = {"golden.qcow2"} | {f"{tag}-{i}.qcow2" for tag in "ab" for i in range(20)}
    assert set(volumes(seen)) == expected


def test_reads_neither_lock_nor_write(uri, state_dir):
    d = LibvirtDriver(uri)
    d.discover()
    d.vm_state(APP)
    assert d.connection() is d.connection()  # nothing changed: the kept connection, checked with one stat
    assert not state_dir.exists() or not any(state_dir.iterdir())


def test_a_node_file_rewritten_after_the_state_was_saved_wins(uri, state_dir):
    path = uri.removeprefix("test://")
    d = LibvirtDriver(uri)
    d.start(WEB_A)
    assert len(list(state_dir.glob("libvirt-*.xml"))) == 1
    write_node(spec(extra=True), path)  # a test rewrites its host
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a stamp surely different
    for seen in (
        LibvirtDriver(uri).discover(),
        run_python(f"""
            import json
            from inventory.drivers.libvirt import LibvirtDriver
            print(json.dumps({{vm.name: vm.state for vm in LibvirtDriver({uri!r}).discover().vms}}))
        """),
    ):
        found = seen if isinstance(seen, dict) else states(seen)
        assert found["web-a"] == "shutoff" and found["extra"] == "running"
    # The next change starts from the new file, and is saved again for everyone.
    LibvirtDriver(uri).start(WEB_B)
    assert states(LibvirtDriver(uri).discover()) == {
        "tpl": "shutoff",
        "web-a": "shutoff",
        "web-b": "running",
        "app": "running",
        "extra": "running",
    }


def test_forgetting_a_host_starts_every_process_from_its_file(uri, state_dir):
    LibvirtDriver(uri).start(WEB_A)
    assert list(state_dir.glob("libvirt-*.xml"))
    forget_test_connections(uri)
    assert not list(state_dir.glob("libvirt-*.xml"))
    assert states(LibvirtDriver(uri).discover())["web-a"] == "shutoff"
    assert state_elsewhere(uri, WEB_A) == "shutoff"


def test_the_demo_node_files_are_never_written(state_dir):
    demo = sorted((REPO / "demo" / "kvm").iterdir())
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in demo}
    uri = f"test://{REPO / 'demo' / 'kvm' / 'kvm02.xml'}"
    forget_test_connections(uri)
    try:
        d = LibvirtDriver(uri)
        vm = next(vm for vm in d.discover().vms if vm.state == "shutoff" and vm.persistent)
        d.start(vm.uuid)
        pool = next(p for p in d.discover().pools if p.active and p.type == "dir")
        storage.create_volume(d, pool.name, "scratch-test.qcow2", GiB)
        assert LibvirtDriver(uri).vm_state(vm.uuid).state == "running"
        assert len(list(state_dir.glob("libvirt-*.xml"))) == 1  # the state went to the state directory
    finally:
        forget_test_connections(uri)
    after = sorted((REPO / "demo" / "kvm").iterdir())
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in after} == before
    assert not list(state_dir.glob("libvirt-*.xml"))


def test_the_state_of_hosts_whose_file_is_gone_is_pruned(tmp_path, state_dir):
    gone = write_node(spec(), tmp_path / "gone" / "kvm-gone.xml")
    LibvirtDriver(f"test://{gone}").start(WEB_A)
    assert len(list(state_dir.glob("libvirt-*.xml"))) == 1
    gone.unlink()
    kept = write_node(spec(), tmp_path / "kept" / "kvm-kept.xml")
    LibvirtDriver(f"test://{kept}").start(WEB_A)  # a host's first saved state prunes the orphans
    (left,) = state_dir.glob("libvirt-*.xml")
    assert str(kept) in left.read_text()
    assert sorted(p.suffix for p in state_dir.iterdir()) == [".lock", ".xml"]


def test_a_change_that_cannot_be_saved_fails_and_reads_still_work(uri, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("VOM_SIMULATOR_STATE_DIR", str(blocked / "state"))
    d = LibvirtDriver(uri)
    assert states(d.discover())["web-a"] == "shutoff"
    with pytest.raises(DriverError, match="cannot lock simulated host"):
        d.start(WEB_A)
    assert d.vm_state(WEB_A).state == "shutoff"
