"""Reading and redefining VMs: the persistent definition, whether a VM runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt

from inventory.drivers.libvirt.driver import LibvirtDriver
from inventory.drivers.libvirt.parse import parse_xml
from inventory.drivers.libvirt.storage._common import _REDEFINE_FLAGS, _xml

# --- reading VMs --------------------------------------------------------------------------------


@dataclass
class _VM:
    """One read of a domain: what it is now and both of its XML documents."""

    dom: Any
    name: str
    uuid: str
    active: bool
    live: ET.Element | None  # the running domain, None when it is not running
    config: ET.Element | None  # the persistent definition with its secrets, None for a transient VM


def _vm_name(driver: LibvirtDriver, dom: Any) -> str:
    with driver.errors("cannot read the name of a VM"):
        return str(dom.name())


def _read_vm(driver: LibvirtDriver, vm_uuid: str) -> _VM:
    dom = driver.domain(vm_uuid)
    name = _vm_name(driver, dom)
    with driver.errors(f"cannot read VM {name!r}"):
        active = bool(dom.isActive())
        persistent = bool(dom.isPersistent())
        live = parse_xml(dom.XMLDesc(0)) if active else None
        config = parse_xml(dom.XMLDesc(_REDEFINE_FLAGS)) if persistent else None
        return _VM(dom=dom, name=name, uuid=str(dom.UUIDString()), active=active, live=live, config=config)


def _define(driver: LibvirtDriver, root: ET.Element, action: str) -> None:
    """Replace a VM's persistent definition by ``root`` (``virsh define`` of an edited ``dumpxml``)."""
    with driver.changing(action):
        driver.connection().defineXML(_xml(root))


def domain_definition(driver: LibvirtDriver, vm_uuid: str) -> str:
    """The VM's persistent definition (inactive domain XML), without secrets such as passwords."""
    dom = driver.domain(vm_uuid)
    with driver.errors(f"cannot read the definition of VM {_vm_name(driver, dom)!r}"):
        return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def domain_is_active(driver: LibvirtDriver, vm_uuid: str) -> bool:
    """Whether the VM is running (or paused): whether a live domain exists."""
    dom = driver.domain(vm_uuid)
    with driver.errors(f"cannot read the state of VM {_vm_name(driver, dom)!r}"):
        return bool(dom.isActive())
