"""The libvirt driver against the real libvirt library and its ``test:///`` hypervisor driver.

Most tests read a node file written into ``tmp_path``: each connection to a node file gets its own
private copy of the host, so tests cannot disturb each other. Tests that need two connections to
see one host (a definition changed behind the driver's back) use ``test:///default``, which is
shared by every connection of the process; they create uniquely named objects and remove them.

No Django here: run with ``pytest -p no:django`` while the settings are not ready.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from inventory.drivers.base import (
    Credentials,
    DiskInfo,
    DriverError,
    InventorySnapshot,
    NetworkInfo,
    NicInfo,
    VMInfo,
    VolumeInfo,
)
from inventory.drivers.libvirt import REASON_NAMES, LibvirtDriver, forget_test_connections, validate_uri

WEB_UUID = "11111111-1111-4111-8111-111111111111"
TRANSIENT_UUID = "22222222-2222-4222-8222-222222222222"
OFF_UUID = "33333333-3333-4333-8333-333333333333"
UNKNOWN_UUID = "99999999-9999-4999-8999-999999999999"

STATE_PREFIXES = {
    libvirt.VIR_DOMAIN_NOSTATE: "VIR_DOMAIN_NOSTATE",
    libvirt.VIR_DOMAIN_RUNNING: "VIR_DOMAIN_RUNNING",
    libvirt.VIR_DOMAIN_BLOCKED: "VIR_DOMAIN_BLOCKED",
    libvirt.VIR_DOMAIN_PAUSED: "VIR_DOMAIN_PAUSED",
    libvirt.VIR_DOMAIN_SHUTDOWN: "VIR_DOMAIN_SHUTDOWN",
    libvirt.VIR_DOMAIN_SHUTOFF: "VIR_DOMAIN_SHUTOFF",
    libvirt.VIR_DOMAIN_CRASHED: "VIR_DOMAIN_CRASHED",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "VIR_DOMAIN_PMSUSPENDED",
}

# test:runstate values are virDomainState numbers: 1 running, 3 paused, 5 shut off.
NODE_XML = """\
<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <cpu>
    <mhz>2400</mhz><model>Test CPU</model>
    <nodes>2</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads><active>16</active>
  </cpu>
  <memory>16777216</memory>

  <domain type='test'>
    <name>web01</name>
    <uuid>11111111-1111-4111-8111-111111111111</uuid>
    <description>web &lt;tier&gt; &amp; "api"</description>
    <memory unit='KiB'>4194304</memory>
    <currentMemory unit='KiB'>2097152</currentMemory>
    <vcpu current='2'>4</vcpu>
    <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2' cache='writeback'/>
        <source file='/var/lib/libvirt/images/web01.qcow2'/>
        <backingStore type='file'>
          <format type='qcow2'/>
          <source file='/var/lib/libvirt/images/rhel9-base.qcow2'/>
          <backingStore type='file'>
            <format type='raw'/>
            <source file='/var/lib/libvirt/images/golden-rhel9.raw'/>
            <backingStore/>
          </backingStore>
        </backingStore>
        <target dev='vda' bus='virtio'/>
        <serial>WEB01-BOOT</serial>
      </disk>
      <disk type='block' device='lun'>
        <driver name='qemu' type='raw' cache='none'/>
        <source dev='/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2020-01.com.example:lun1-lun-0'/>
        <target dev='sda' bus='scsi'/>
        <shareable/>
      </disk>
      <disk type='block' device='disk'>
        <driver name='qemu' type='raw' cache='none'/>
        <source dev='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4'/>
        <target dev='sdb' bus='scsi'/>
        <wwn>5000c500a1b2c3d4</wwn>
      </disk>
      <disk type='file' device='cdrom'>
        <driver name='qemu' type='raw'/>
        <source file='/var/lib/libvirt/iso/rhel9.iso'/>
        <target dev='hdc' bus='ide'/>
        <readonly/>
      </disk>
      <disk type='volume' device='disk'>
        <driver name='qemu' type='raw'/>
        <source pool='default' volume='web01-data.img'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
      <disk type='network' device='disk'>
        <driver name='qemu' type='raw'/>
        <source protocol='rbd' name='vmpool/web01-logs'>
          <host name='ceph-mon1' port='6789'/>
        </source>
        <target dev='vdc' bus='virtio'/>
      </disk>
      <disk type='network' device='disk'>
        <driver name='qemu' type='raw'/>
        <source protocol='iscsi' name='iqn.2020-01.com.example:storage/1'>
          <host name='san1' port='3260'/>
        </source>
        <target dev='vdd' bus='virtio'/>
      </disk>
      <interface type='network'>
        <mac address='52:54:00:aa:00:01'/>
        <source network='default'/>
        <model type='virtio'/>
      </interface>
      <interface type='bridge'>
        <mac address='52:54:00:aa:00:02'/>
        <source bridge='br-storage'/>
        <model type='e1000'/>
      </interface>
    </devices>
    <test:runstate>1</test:runstate>
    <test:domainsnapshot>
      <name>before-upgrade</name>
      <description>RHEL 9.2</description>
      <state>running</state>
      <creationTime>1700000000</creationTime>
      <active>0</active>
      <domain type='test'>
        <name>web01</name><uuid>11111111-1111-4111-8111-111111111111</uuid>
        <memory>4194304</memory><os><type>hvm</type></os>
      </domain>
    </test:domainsnapshot>
    <test:domainsnapshot>
      <name>after-upgrade</name>
      <state>shutoff</state>
      <parent><name>before-upgrade</name></parent>
      <creationTime>1700086400</creationTime>
      <active>1</active>
      <domain type='test'>
        <name>web01</name><uuid>11111111-1111-4111-8111-111111111111</uuid>
        <memory>4194304</memory><os><type>hvm</type></os>
      </domain>
    </test:domainsnapshot>
  </domain>

  <domain type='test'>
    <name>batch-transient</name>
    <uuid>22222222-2222-4222-8222-222222222222</uuid>
    <memory unit='KiB'>524288</memory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <test:transient/>
    <test:runstate>3</test:runstate>
  </domain>

  <domain type='test'>
    <name>db-off</name>
    <uuid>33333333-3333-4333-8333-333333333333</uuid>
    <memory unit='MiB'>1024</memory>
    <vcpu>2</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='/var/lib/libvirt/images/db.qcow2'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>

  <network>
    <name>default</name>
    <uuid>44444444-4444-4444-8444-444444444444</uuid>
    <forward mode='nat'/>
    <bridge name='virbr0'/>
    <ip address='192.168.122.1' netmask='255.255.255.0'/>
  </network>
  <network>
    <name>host-bridge</name>
    <forward mode='bridge'/>
    <bridge name='br0'/>
  </network>
  <network>
    <name>isolated</name>
    <bridge name='virbr9'/>
    <ip address='10.99.0.1' prefix='16'/>
  </network>

  <pool type='dir'>
    <name>default</name>
    <uuid>55555555-5555-4555-8555-555555555555</uuid>
    <capacity>107374182400</capacity>
    <allocation>10737418240</allocation>
    <available>96636764160</available>
    <target><path>/var/lib/libvirt/images</path></target>
    <volume type='file'>
      <name>web01-data.img</name>
      <capacity>21474836480</capacity>
      <allocation>1073741824</allocation>
      <target><format type='raw'/></target>
    </volume>
    <volume type='file'>
      <name>web02.qcow2</name>
      <capacity>10737418240</capacity>
      <allocation>196608</allocation>
      <target><format type='qcow2'/></target>
      <backingStore>
        <path>/var/lib/libvirt/images/golden-rhel9.raw</path>
        <format type='raw'/>
      </backingStore>
    </volume>
  </pool>
  <pool type='netfs'>
    <name>nfs-images</name>
    <source><host name='nas1'/><dir path='/export/vm'/><format type='nfs'/></source>
    <target><path>/mnt/nfs-images</path></target>
  </pool>
  <pool type='logical'>
    <name>vg-guests</name>
    <source><name>vgguests</name><device path='/dev/mapper/mpatha'/></source>
    <target><path>/dev/vgguests</path></target>
  </pool>
</node>
"""

AUTH_NODE_XML = """\
<node>
  <auth><user password='s3cret'>admin</user></auth>
  <domain type='test'><name>only</name><memory>1024</memory><os><type>hvm</type></os></domain>
</node>
"""


@pytest.fixture
def node_uri(tmp_path: Path) -> str:
    path = tmp_path / "kvm01.xml"
    path.write_text(NODE_XML)
    return f"test://{path}"


@pytest.fixture
def driver(node_uri: str) -> Iterator[LibvirtDriver]:
    with LibvirtDriver(node_uri) as drv:
        yield drv


@pytest.fixture
def snapshot(driver: LibvirtDriver) -> InventorySnapshot:
    return driver.discover()


def vm_named(snapshot: InventorySnapshot, name: str) -> VMInfo:
    return next(vm for vm in snapshot.vms if vm.name == name)


def disk(vm: VMInfo, target: str) -> DiskInfo:
    return next(d for d in vm.disks if d.target == target)


class DefaultHost:
    """A connection to the process-wide ``test:///default`` host that removes what it added.

    Holding this connection open also keeps the shared host alive while a driver connects to it.
    """

    def __init__(self) -> None:
        self.conn: Any = libvirt.open("test:///default")
        self._cleanups: list[Callable[[], None]] = []
        self.suffix = uuid.uuid4().hex[:8]

    def define_domain(self, name: str, disks: list[str], *, start: bool = False) -> tuple[Any, str]:
        vm_uuid = str(uuid.uuid4())
        dom = self.conn.defineXML(domain_xml(f"{name}-{self.suffix}", vm_uuid, disks))
        self._cleanups.append(lambda: _remove_domain(self.conn, vm_uuid))
        if start:
            dom.create()
        return dom, vm_uuid

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()
        self.conn.close()


def _remove_domain(conn: Any, vm_uuid: str) -> None:
    dom = conn.lookupByUUIDString(vm_uuid)
    if dom.isActive():
        dom.destroy()
    dom.undefine()


def file_disk(target: str) -> str:
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='/var/lib/libvirt/images/{target}.img'/><target dev='{target}' bus='virtio'/></disk>"
    )


def domain_xml(name: str, vm_uuid: str, disks: list[str]) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{vm_uuid}</uuid><memory>524288</memory>"
        f"<os><type>hvm</type></os><devices>{''.join(disks)}</devices></domain>"
    )


@pytest.fixture
def default_host() -> Iterator[DefaultHost]:
    host = DefaultHost()
    yield host
    host.close()


def test_reason_names_match_the_libvirt_enums() -> None:
    # The driver indexes reason names by code; every name must be the suffix of the libvirt
    # constant with that code, e.g. VIR_DOMAIN_SHUTOFF_DESTROYED == 2 -> "destroyed".
    missing = set()
    for state, prefix in STATE_PREFIXES.items():
        for code, name in enumerate(REASON_NAMES[state]):
            constant = getattr(libvirt, f"{prefix}_{name.upper()}", None)
            if constant is None:
                missing.add(f"{prefix}_{name.upper()}")
            else:
                assert constant == code, name
    # Bindings built against libvirt 9.0 lack only the reason added later (10.x); a newer daemon
    # reached over the network can still report it.
    assert missing <= {"VIR_DOMAIN_PAUSED_API_ERROR"}


# --- discovery: host ------------------------------------------------------------------------


def test_host_facts_come_from_node_info_and_versions(snapshot: InventorySnapshot) -> None:
    [host] = snapshot.hosts
    lib = libvirt.getVersion()
    assert host.hypervisor_type == "TEST"
    assert host.libvirt_version == f"{lib // 1_000_000}.{lib // 1000 % 1000}.{lib % 1000}"
    assert host.hypervisor_version == "0.0.2"  # the test driver reports version 2
    assert host.cpu_model == "Test CPU"
    assert host.cpu_arch == "i686"
    # virNodeInfo counts sockets per NUMA node: 2 nodes x 1 socket.
    assert (host.cpu_sockets, host.cpu_cores, host.cpu_threads) == (2, 4, 2)
    assert (host.cpu_count, host.cpu_mhz) == (16, 2400)
    assert host.memory_bytes == 16 * 1024**3
    # The test driver's capabilities carry no <host><uuid>, so the hostname identifies the host.
    assert host.uid == host.hostname != ""
    assert {vm.host_uid for vm in snapshot.vms} == {host.uid}


# --- discovery: domains ---------------------------------------------------------------------


def test_discovers_running_paused_transient_and_shut_off_domains(snapshot: InventorySnapshot) -> None:
    by_uuid = {vm.uuid: vm for vm in snapshot.vms}
    assert set(by_uuid) == {WEB_UUID, TRANSIENT_UUID, OFF_UUID}
    assert (by_uuid[WEB_UUID].state, by_uuid[WEB_UUID].persistent) == ("running", True)
    assert (by_uuid[TRANSIENT_UUID].state, by_uuid[TRANSIENT_UUID].persistent) == ("paused", False)
    assert (by_uuid[OFF_UUID].state, by_uuid[OFF_UUID].persistent) == ("shutoff", True)
    # A node file cannot say why a domain is in its state.
    assert {vm.state_reason for vm in snapshot.vms} == {"unknown"}


def test_domain_facts_are_read_from_its_xml(snapshot: InventorySnapshot) -> None:
    web = vm_named(snapshot, "web01")
    assert (web.vcpus, web.max_vcpus) == (2, 4)
    assert web.memory_bytes == 2 * 1024**3
    assert web.max_memory_bytes == 4 * 1024**3
    assert (web.os_type, web.arch, web.machine, web.domain_type) == ("hvm", "x86_64", "pc-q35-7.2", "test")
    assert web.description == 'web <tier> & "api"'
    assert web.autostart is False

    db = vm_named(snapshot, "db-off")
    assert (db.vcpus, db.max_vcpus) == (2, 2)  # no current= means all vCPUs are online
    assert db.memory_bytes == db.max_memory_bytes == 1024**3  # unit='MiB' is honoured
    assert db.snapshots == []


@pytest.mark.parametrize(
    "expected",
    [
        DiskInfo(
            target="vda",
            bus="virtio",
            device="disk",
            source_type="file",
            source="/var/lib/libvirt/images/web01.qcow2",
            driver_format="qcow2",
            cache="writeback",
            serial="WEB01-BOOT",
            backing_chain=["/var/lib/libvirt/images/rhel9-base.qcow2", "/var/lib/libvirt/images/golden-rhel9.raw"],
        ),
        DiskInfo(
            target="sda",
            bus="scsi",
            device="lun",
            source_type="block",
            source="/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2020-01.com.example:lun1-lun-0",
            driver_format="raw",
            cache="none",
            shareable=True,
        ),
        DiskInfo(
            target="sdb",
            bus="scsi",
            device="disk",
            source_type="block",
            source="/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
            driver_format="raw",
            cache="none",
            wwn="5000c500a1b2c3d4",
        ),
        DiskInfo(
            target="hdc",
            bus="ide",
            device="cdrom",
            source_type="file",
            source="/var/lib/libvirt/iso/rhel9.iso",
            driver_format="raw",
            read_only=True,
        ),
        DiskInfo(
            target="vdb",
            bus="virtio",
            source_type="volume",
            source="default/web01-data.img",
            source_pool="default",
            source_volume="web01-data.img",
            driver_format="raw",
        ),
        DiskInfo(
            target="vdc",
            bus="virtio",
            source_type="network",
            source="rbd://ceph-mon1:6789/vmpool/web01-logs",
            driver_format="raw",
        ),
        DiskInfo(
            target="vdd",
            bus="virtio",
            source_type="network",
            source="iscsi://san1:3260/iqn.2020-01.com.example:storage/1",
            driver_format="raw",
        ),
    ],
    ids=lambda d: d.target,
)
def test_disks_are_read_from_the_live_xml(snapshot: InventorySnapshot, expected: DiskInfo) -> None:
    assert disk(vm_named(snapshot, "web01"), expected.target) == expected


def test_every_disk_of_the_domain_is_found(snapshot: InventorySnapshot) -> None:
    targets = [d.target for d in vm_named(snapshot, "web01").disks]
    assert sorted(targets) == ["hdc", "sda", "sdb", "vda", "vdb", "vdc", "vdd"]


def test_nics_of_network_and_bridge_type(snapshot: InventorySnapshot) -> None:
    assert vm_named(snapshot, "web01").nics == [
        # The test driver names the host-side devices of a running domain testnetN.
        NicInfo(mac="52:54:00:aa:00:01", type="network", source="default", model="virtio", target="testnet0"),
        NicInfo(mac="52:54:00:aa:00:02", type="bridge", source="br-storage", model="e1000", target="testnet1"),
    ]


def test_snapshots_with_parent_current_and_utc_creation_time(snapshot: InventorySnapshot) -> None:
    snaps = {s.name: s for s in vm_named(snapshot, "web01").snapshots}
    assert set(snaps) == {"before-upgrade", "after-upgrade"}
    before, after = snaps["before-upgrade"], snaps["after-upgrade"]
    assert before.created == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert after.created is not None and after.created.utcoffset() == dt.timedelta(0)
    assert (before.state, before.description, before.parent, before.current) == ("running", "RHEL 9.2", "", False)
    assert (after.state, after.parent, after.current) == ("shutoff", "before-upgrade", True)


def test_transient_domain_has_no_autostart(snapshot: InventorySnapshot) -> None:
    transient = vm_named(snapshot, "batch-transient")
    assert transient.persistent is False
    assert transient.autostart is False
    assert transient.memory_bytes == 512 * 1024**2


def test_autostart_of_a_persistent_domain(default_host: DefaultHost) -> None:
    dom, vm_uuid = default_host.define_domain("autostarted", [file_disk("vda")])
    dom.setAutostart(1)
    with LibvirtDriver("test:///default") as drv:
        vm = next(vm for vm in drv.discover().vms if vm.uuid == vm_uuid)
    assert (vm.autostart, vm.persistent, vm.state) == (True, True, "shutoff")


def test_disk_only_in_the_live_definition_is_not_persistent(default_host: DefaultHost) -> None:
    # What `virsh attach-disk` without --config leaves behind: the running domain has vdb, its
    # persistent definition does not. The test driver cannot attach devices, but redefining a
    # running domain replaces only its next-boot definition, which gives the same two XMLs.
    dom, vm_uuid = default_host.define_domain("hotplug", [file_disk("vda"), file_disk("vdb")], start=True)
    default_host.conn.defineXML(domain_xml(dom.name(), vm_uuid, [file_disk("vda")]))
    assert "vdb" not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    with LibvirtDriver("test:///default") as drv:
        vm = next(vm for vm in drv.discover().vms if vm.uuid == vm_uuid)
    assert {d.target: d.persistent for d in vm.disks} == {"vda": True, "vdb": False}


def test_a_domain_that_vanishes_during_discovery_is_skipped(node_uri: str) -> None:
    class VanishingDriver(LibvirtDriver):
        """Destroys the transient domain just before reading it, as if an admin raced us."""

        def _domain_info(self, dom: Any, name: str, vm_uuid: str, host_uid: str) -> VMInfo:
            if vm_uuid == TRANSIENT_UUID:
                dom.destroy()  # a destroyed transient domain is gone, not shut off
            return super()._domain_info(dom, name, vm_uuid, host_uid)

    with VanishingDriver(node_uri) as drv:
        snapshot = drv.discover()
    assert {vm.uuid for vm in snapshot.vms} == {WEB_UUID, OFF_UUID}
    assert len(snapshot.pools) == 3  # the rest of the discovery went on


# --- discovery: storage and networks --------------------------------------------------------


def test_pools_with_their_volumes(snapshot: InventorySnapshot) -> None:
    pools = {p.name: p for p in snapshot.pools}
    assert set(pools) == {"default", "nfs-images", "vg-guests"}
    default = pools["default"]
    assert (default.uuid, default.type, default.target_path) == (
        "55555555-5555-4555-8555-555555555555",
        "dir",
        "/var/lib/libvirt/images",
    )
    assert (default.state, default.active, default.persistent, default.autostart) == ("running", True, True, False)
    assert default.capacity_bytes == 100 * 1024**3
    # The test driver sums its volumes' allocations instead of trusting the node file.
    assert default.allocation_bytes == sum(v.allocation_bytes for v in default.volumes)
    assert default.available_bytes == default.capacity_bytes - default.allocation_bytes

    volumes = {v.name: v for v in default.volumes}
    assert volumes["web01-data.img"] == VolumeInfo(
        name="web01-data.img",
        key="/var/lib/libvirt/images/web01-data.img",
        path="/var/lib/libvirt/images/web01-data.img",
        format="raw",
        capacity_bytes=20 * 1024**3,
        allocation_bytes=1024**3,
    )
    child = volumes["web02.qcow2"]
    assert (child.format, child.capacity_bytes, child.allocation_bytes) == ("qcow2", 10 * 1024**3, 196608)
    assert (child.backing_store, child.backing_format) == ("/var/lib/libvirt/images/golden-rhel9.raw", "raw")


def test_pool_sources(snapshot: InventorySnapshot) -> None:
    pools = {p.name: p for p in snapshot.pools}
    assert (pools["nfs-images"].type, pools["nfs-images"].source) == ("netfs", "nas1:/export/vm")
    assert (pools["vg-guests"].type, pools["vg-guests"].source) == ("logical", "vgguests")
    assert pools["default"].source == ""
    assert pools["vg-guests"].volumes == []


def test_networks_nat_bridge_and_isolated(snapshot: InventorySnapshot) -> None:
    nets = {n.name: n for n in snapshot.networks}
    assert nets["default"] == NetworkInfo(
        name="default",
        uuid="44444444-4444-4444-8444-444444444444",
        bridge="virbr0",
        forward_mode="nat",
        active=True,
        autostart=False,
        persistent=True,
        ip_address="192.168.122.1",
        netmask="255.255.255.0",
    )
    assert (nets["host-bridge"].forward_mode, nets["host-bridge"].bridge, nets["host-bridge"].ip_address) == (
        "bridge",
        "br0",
        "",
    )
    isolated = nets["isolated"]
    assert (isolated.forward_mode, isolated.bridge) == ("", "virbr9")
    assert (isolated.ip_address, isolated.netmask) == ("10.99.0.1", "255.255.0.0")  # from prefix='16'


def test_inactive_pool_and_transient_network(default_host: DefaultHost) -> None:
    suffix = default_host.suffix
    pool = default_host.conn.storagePoolDefineXML(
        f"<pool type='dir'><name>parked-{suffix}</name><target><path>/srv/parked-{suffix}</path></target></pool>"
    )
    default_host.add_cleanup(pool.undefine)
    net = default_host.conn.networkCreateXML(
        f"<network><name>lab-{suffix}</name><forward/><bridge name='vlab{suffix[:4]}'/>"
        "<ip address='10.77.0.1' prefix='24'/></network>"
    )
    default_host.add_cleanup(net.destroy)

    with LibvirtDriver("test:///default") as drv:
        snapshot = drv.discover()
    parked = next(p for p in snapshot.pools if p.name == f"parked-{suffix}")
    assert (parked.state, parked.active, parked.persistent, parked.volumes) == ("inactive", False, True, [])
    assert parked.target_path == f"/srv/parked-{suffix}"
    lab = next(n for n in snapshot.networks if n.name == f"lab-{suffix}")
    # <forward/> without a mode is NAT.
    assert (lab.forward_mode, lab.active, lab.persistent) == ("nat", True, False)
    assert (lab.ip_address, lab.netmask) == ("10.77.0.1", "255.255.255.0")


# --- operations -----------------------------------------------------------------------------


def test_power_cycle_of_a_vm(driver: LibvirtDriver) -> None:
    readings = []
    for operation in (
        driver.start,
        driver.suspend,
        driver.resume,
        driver.reboot,
        driver.shutdown,
        driver.start,
        driver.power_off,
    ):
        operation(OFF_UUID)
        reading = driver.vm_state(OFF_UUID)
        assert reading.uuid == OFF_UUID
        readings.append((operation.__name__, reading.state, reading.state_reason))
    assert readings == [
        ("start", "running", "booted"),
        ("suspend", "paused", "user"),
        ("resume", "running", "unpaused"),
        ("reboot", "running", "booted"),
        ("shutdown", "shutoff", "shutdown"),
        ("start", "running", "booted"),
        ("power_off", "shutoff", "destroyed"),
    ]


def test_operations_are_seen_by_discovery(driver: LibvirtDriver) -> None:
    driver.resume(TRANSIENT_UUID)
    driver.power_off(WEB_UUID)
    by_uuid = {vm.uuid: vm for vm in driver.discover().vms}
    assert (by_uuid[TRANSIENT_UUID].state, by_uuid[TRANSIENT_UUID].state_reason) == ("running", "unpaused")
    assert (by_uuid[WEB_UUID].state, by_uuid[WEB_UUID].state_reason) == ("shutoff", "destroyed")


@pytest.mark.parametrize(
    ("operation", "vm_id", "message"),
    [
        ("start", WEB_UUID, "VM 'web01' is already running"),
        ("start", TRANSIENT_UUID, "VM 'batch-transient' is already running (paused)"),
        ("shutdown", OFF_UUID, "VM 'db-off' is not running"),
        ("power_off", OFF_UUID, "VM 'db-off' is not running"),
        ("reboot", OFF_UUID, "VM 'db-off' is not running"),
        ("suspend", OFF_UUID, "VM 'db-off' is not running"),
        ("suspend", TRANSIENT_UUID, "VM 'batch-transient' is already paused"),
        ("resume", WEB_UUID, "VM 'web01' is not paused (it is running)"),
    ],
)
def test_operations_that_make_no_sense_are_refused(
    driver: LibvirtDriver, operation: str, vm_id: str, message: str
) -> None:
    before = driver.vm_state(vm_id)
    with pytest.raises(DriverError) as err:
        getattr(driver, operation)(vm_id)
    assert str(err.value) == message
    assert err.value.retryable is False
    after = driver.vm_state(vm_id)
    assert (after.state, after.state_reason) == (before.state, before.state_reason)
    assert before.read_at < after.read_at


def test_snapshot_create_revert_delete_with_awkward_name(driver: LibvirtDriver) -> None:
    name = """nightly <&> "quoted" 'single'"""
    driver.snapshot_create(WEB_UUID, name, description="before </domainsnapshot> & patch")
    created = {s.name: s for s in vm_named(driver.discover(), "web01").snapshots}[name]
    assert created.description == "before </domainsnapshot> & patch"
    assert (created.state, created.parent, created.current) == ("running", "after-upgrade", True)
    assert created.created is not None and created.created.tzinfo is not None

    driver.power_off(WEB_UUID)
    driver.snapshot_revert(WEB_UUID, name)
    assert driver.vm_state(WEB_UUID).state == "running"
    assert driver.vm_state(WEB_UUID).state_reason == "from_snapshot"

    driver.snapshot_delete(WEB_UUID, name)
    names = {s.name for s in vm_named(driver.discover(), "web01").snapshots}
    assert names == {"before-upgrade", "after-upgrade"}


def test_revert_to_a_snapshot_of_a_shut_off_state(driver: LibvirtDriver) -> None:
    driver.snapshot_revert(WEB_UUID, "after-upgrade")
    reading = driver.vm_state(WEB_UUID)
    assert (reading.state, reading.state_reason) == ("shutoff", "from_snapshot")


def test_snapshot_errors(driver: LibvirtDriver) -> None:
    with pytest.raises(DriverError, match=r"^snapshot 'nope' of VM 'web01' not found$") as err:
        driver.snapshot_revert(WEB_UUID, "nope")
    assert err.value.retryable is False
    with pytest.raises(DriverError, match=r"^snapshot 'nope' of VM 'web01' not found$"):
        driver.snapshot_delete(WEB_UUID, "nope")
    with pytest.raises(DriverError, match="already exists") as err:
        driver.snapshot_create(WEB_UUID, "before-upgrade")
    assert err.value.retryable is False
    assert str(err.value).startswith("cannot create snapshot 'before-upgrade' of VM 'web01': ")
    with pytest.raises(DriverError, match="needs a name"):
        driver.snapshot_create(WEB_UUID, "  ")


def test_unknown_vm(driver: LibvirtDriver, node_uri: str) -> None:
    with pytest.raises(DriverError) as err:
        driver.start(UNKNOWN_UUID)
    assert str(err.value) == f"VM {UNKNOWN_UUID} not found on {node_uri}"
    assert err.value.retryable is False
    with pytest.raises(DriverError, match=r"^invalid VM id 'web01': not a UUID$"):
        driver.vm_state("web01")


def test_close_is_idempotent_and_the_driver_reconnects(node_uri: str) -> None:
    drv = LibvirtDriver(node_uri)
    drv.power_off(WEB_UUID)
    assert drv.vm_state(WEB_UUID).state == "shutoff"
    drv.close()
    drv.close()
    # The process keeps one connection per node file, so the host keeps its state like a real one...
    assert drv.vm_state(WEB_UUID).state == "shutoff"
    drv.close()
    # ...until the kept connection is dropped: a new one starts again from the file.
    forget_test_connections(node_uri)
    assert drv.vm_state(WEB_UUID).state == "running"
    drv.close()


def test_a_rewritten_node_file_is_read_afresh(node_uri: str) -> None:
    drv = LibvirtDriver(node_uri)
    drv.power_off(WEB_UUID)
    path = node_uri.removeprefix("test://")
    with open(path, "ab") as fh:
        fh.write(b"\n")  # the file changed: the next connection must see its contents, not the kept host
    drv.close()
    assert drv.vm_state(WEB_UUID).state == "running"
    drv.close()


# --- connecting, and errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "qemu:///system",
        "qemu:///session",
        "qemu+ssh://root@kvm01/system",
        "qemu+ssh://root@kvm01:2222/system?keyfile=/root/.ssh/id_ed25519",
        "qemu+tcp://10.0.0.5/system",
        "qemu+tls://kvm01.example.com/system",
        "qemu+libssh2://admin@kvm01/system?known_hosts=/etc/vom/known_hosts",
        "qemu+unix:///system",
        "qemu://kvm01/system",
        "test:///default",
        "test:///srv/vom/demo/node.xml",
        "xen:///system",
        "lxc:///system",
    ],
)
def test_valid_uris(uri: str) -> None:
    assert validate_uri(uri) is None


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("", "empty"),
        # Parameters that make libvirt run a program or open a path on the console's machine.
        ("qemu+ssh://root@kvm01/system?command=/tmp/evil.sh", "parameter 'command' is not allowed"),
        ("qemu+ssh://root@kvm01/system?netcat=/tmp/evil.sh", "parameter 'netcat' is not allowed"),
        ("qemu+unix:///system?socket=/tmp/any.sock", "parameter 'socket' is not allowed"),
        ("qemu+ext://kvm01/system?command=/tmp/evil.sh", "unknown transport 'ext'"),
        ("test:///etc/passwd", "ending in .xml"),
        ("test:///srv/node.xml?x=1", "parameter 'x' is not allowed"),
        ("kvm01", "expected driver[+transport]://"),
        ("/system", "expected driver[+transport]://"),
        ("qemu:/system", "expected driver[+transport]://"),
        ("qmeu:///system", "unknown libvirt driver 'qmeu'"),
        ("qemu+telnet://kvm01/system", "unknown transport 'telnet'"),
        ("qemu+ssh:///system", "needs a host"),
        ("qemu+unix://kvm01/system", "cannot name a host"),
        ("qemu:///", "/system or /session"),
        ("qemu+ssh://root@kvm01/sytem", "/system or /session"),
        ("qemu+ssh://root@kvm01:ssh/system", "cannot be parsed"),
        ("test:///", "/default or the absolute path"),
        ("test:///srv/nodes/", "/default or the absolute path"),
        ("test://nodes/kvm01.xml", "has no host"),
        ("qemu:///system ", "whitespace or control"),
        ("qemu+ssh://root@kvm01/system\n", "whitespace or control"),
        ("qemu+ssh://root@kvm\x0001/system", "whitespace or control"),
    ],
)
def test_malformed_uris(uri: str, complaint: str) -> None:
    problem = validate_uri(uri)
    assert problem is not None and complaint in problem
    assert "\n" not in problem


def test_malformed_uri_is_refused_before_libvirt_is_asked(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DriverError) as err:
        LibvirtDriver("qmeu:///system").discover()
    assert str(err.value).startswith("invalid libvirt URI 'qmeu:///system': unknown libvirt driver")
    assert err.value.retryable is False
    assert capfd.readouterr().err == ""


def test_missing_node_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    uri = f"test://{tmp_path}/absent.xml"
    with pytest.raises(DriverError) as err:
        LibvirtDriver(uri).discover()
    assert str(err.value) == f"cannot connect to {uri}: node file {tmp_path}/absent.xml does not exist"
    assert err.value.retryable is False
    assert capfd.readouterr().err == ""


def test_node_file_that_is_not_xml(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.xml"
    path.write_text("this is not\nXML\n")
    with pytest.raises(DriverError) as err:
        LibvirtDriver(f"test://{path}").connect()
    message = str(err.value)
    assert message.startswith(f"cannot connect to test://{path}: ")
    assert "\n" not in message  # libxml2's multi-line report is folded into one line
    assert err.value.retryable is False
    assert capfd.readouterr().err == ""


def test_unreachable_host_is_retryable(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DriverError) as err:
        LibvirtDriver("qemu+tcp://127.0.0.1:1/system").discover()
    # The driver's own probe finds the refusal before libvirt is asked (tests/drivers/test_timeouts.py).
    assert (
        str(err.value)
        == "cannot connect to qemu+tcp://127.0.0.1:1/system: cannot reach 127.0.0.1:1: connection refused"
    )
    assert err.value.retryable is True
    assert capfd.readouterr().err == ""  # libvirt printed nothing of its own


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("qemu+tcp://admin:hunter2@127.0.0.1:1/system", "qemu+tcp://admin:***@127.0.0.1:1/system"),
        ("qemu+tcp://admin:hunter2@[::1]:1/system", "qemu+tcp://admin:***@[::1]:1/system"),
    ],
)
def test_password_in_uri_is_not_repeated_in_messages(uri: str, shown: str) -> None:
    with pytest.raises(DriverError) as err:
        LibvirtDriver(uri).connect()
    assert "hunter2" not in str(err.value)
    assert str(err.value).startswith(f"cannot connect to {shown}: ")
    assert err.value.retryable is True


@pytest.fixture
def auth_node_uri(tmp_path: Path) -> str:
    path = tmp_path / "auth.xml"
    path.write_text(AUTH_NODE_XML)
    return f"test://{path}"


def test_credentials_are_passed_to_libvirt(auth_node_uri: str) -> None:
    with LibvirtDriver(auth_node_uri, Credentials(username="admin", password="s3cret")) as drv:
        assert [vm.name for vm in drv.discover().vms] == ["only"]


def test_empty_credentials_do_not_hinder_a_host_without_auth(node_uri: str) -> None:
    # driver_for() always passes a Credentials object, often with nothing in it.
    with LibvirtDriver(node_uri, Credentials()) as drv:
        assert len(drv.discover().vms) == 3


@pytest.mark.parametrize(
    "credentials",
    [
        Credentials(username="admin", password="wrong"),
        Credentials(username="root", password="s3cret"),
        Credentials(username="admin"),  # no password to give when libvirt asks for one
        None,
    ],
)
def test_wrong_or_missing_credentials(
    auth_node_uri: str, credentials: Credentials | None, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DriverError) as err:
        LibvirtDriver(auth_node_uri, credentials).discover()
    assert str(err.value).startswith(f"authentication failed for {auth_node_uri}: ")
    assert err.value.retryable is False
    assert capfd.readouterr().err == ""


def test_a_file_that_is_not_a_node_file_is_never_quoted(tmp_path: Path) -> None:
    path = tmp_path / "secret.xml"
    path.write_text("TOPSECRET-LINE that is not XML")
    with pytest.raises(DriverError) as err:
        LibvirtDriver(f"test://{path}").discover()
    assert "not a valid libvirt test node file" in str(err.value)
    assert "TOPSECRET" not in str(err.value)
