"""The demo estate shows all three platforms: KVM node files, captured Hyper-V servers and a
simulated RHEV manager, loaded by vom_load_demo the way scripts/run.sh does."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command

from inventory.models import Provider, VirtualMachine
from inventory.services.discovery import discoveries
from vom.simulators.hyperv_replay import forget_replay_hosts
from vom.simulators.rhev import demo_inventory, start_simulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def rhev_url(monkeypatch) -> Iterator[str]:
    url, stop = start_simulator(demo_inventory())  # what python -m vom.simulators.rhev serves
    monkeypatch.setenv("VOM_DEMO_RHEV_URL", url)  # as scripts/run.sh passes it
    yield url
    stop()
    forget_replay_hosts()


def _load() -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("vom_load_demo", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_demo_has_all_three_platforms(rhev_url):
    out, err = _load()
    assert not err, err
    providers = {p.name: p for p in Provider.objects.filter(name__startswith="demo-")}
    assert {"demo-hv01", "demo-hv02", "demo-rhevm"} <= set(providers)
    assert {p.kind for p in providers.values()} == {"libvirt", "hyperv", "rhev"}
    assert providers["demo-hv01"].uri.startswith("captured:///") and providers["demo-hv01"].uri.endswith("hv01.json")
    rhevm = providers["demo-rhevm"]
    assert rhevm.uri == rhev_url and rhevm.username == "admin@internal" and rhevm.has_password
    for provider in providers.values():
        run = discoveries(provider).first()
        assert run is not None and run.status == "succeeded", (provider.name, run and run.error)
        assert provider.vms.exists(), provider.name
    kinds = set(VirtualMachine.objects.values_list("provider__kind", flat=True))
    assert kinds == {"libvirt", "hyperv", "rhev"}
    assert providers["demo-rhevm"].vms.count() == 40
    assert 10 <= providers["demo-hv01"].vms.count() <= 15 and 10 <= providers["demo-hv02"].vms.count() <= 15
    assert "demo-rhevm: 40 VMs discovered" in out

    runs = discoveries().count()
    assert runs == len(providers)
    _load()  # already loaded: nothing is added or run again
    assert discoveries().count() == runs
    assert Provider.objects.filter(name__startswith="demo-").count() == len(providers)


def test_without_a_manager_the_rhev_provider_is_skipped(monkeypatch):
    monkeypatch.delenv("VOM_DEMO_RHEV_URL", raising=False)
    out, err = _load()
    assert "demo-rhevm: skipped" in out and not err
    assert not Provider.objects.filter(kind="rhev").exists()
    assert Provider.objects.filter(kind="hyperv").count() == 2
    forget_replay_hosts()


def test_the_manager_moving_to_another_port_is_followed(rhev_url, monkeypatch):
    _load()
    url, stop = start_simulator(demo_inventory())
    try:
        monkeypatch.setenv("VOM_DEMO_RHEV_URL", url)
        out, err = _load()
        assert not err and "demo-rhevm: 40 VMs discovered" in out
        assert Provider.objects.get(name="demo-rhevm").uri == url
    finally:
        stop()
