"""Management commands: add a provider, discover synchronously, export, load the demo, bootstrap the admin."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from inventory.models import Provider, VirtualMachine
from inventory.services.discovery import discoveries
from vom.simulators.libvirt_node import DomainSpec, NodeSpec, RunState, stable_uuid, write_node

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def _node(tmp_path: Path, name: str = "kvm21") -> Path:
    spec = NodeSpec(
        hostname=name,
        host_uuid=stable_uuid(name),
        domains=[
            DomainSpec(name="app-01", uuid=stable_uuid(name, "app"), memory_kib=1 << 20, vcpus=2),
            DomainSpec(
                name="app-02", uuid=stable_uuid(name, "app2"), memory_kib=1 << 20, vcpus=1, state=RunState.SHUTOFF
            ),
        ],
    )
    return write_node(spec, tmp_path / f"{name}.xml")


def _call(*args: str, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_add_provider_reads_the_password_from_stdin_and_stores_it_encrypted(tmp_path, monkeypatch):
    out, _ = _call(
        "vom_add_provider",
        "kvm21",
        f"test://{_node(tmp_path)}",
        "--username",
        "root",
        "--password-stdin",
        stdin="pa$$word\n",
        monkeypatch=monkeypatch,
    )
    assert "Added provider kvm21" in out and "pa$$word" not in out
    provider = Provider.objects.get(name="kvm21")
    assert provider.username == "root" and provider.has_password
    assert "pa$$word" not in provider.password_encrypted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad", "qemu:///nope"), "uri: a qemu URI needs the path /system or /session"),
        (("bad", "ftp://x/y"), "uri:"),
        (("bad", "test:///default", "--interval", "5"), "discovery_interval: Between 30"),
    ],
)
def test_add_provider_bad_input_is_one_clear_line(args, message):
    with pytest.raises(CommandError) as exc:
        call_command("vom_add_provider", *args)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not Provider.objects.exists()


def test_add_provider_duplicate_name(tmp_path):
    call_command("vom_add_provider", "dup", f"test://{_node(tmp_path)}", stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("vom_add_provider", "dup", "test:///default")
    assert Provider.objects.count() == 1


def test_discover_runs_without_a_worker_and_prints_the_result(tmp_path):
    call_command("vom_add_provider", "kvm21", f"test://{_node(tmp_path)}", stdout=io.StringIO())
    out, _ = _call("vom_discover", "kvm21")
    assert "kvm21: ok in" in out and "2 VMs" in out
    run = discoveries().get()
    assert (run.trigger, run.status, run.target_name) == ("cli", "succeeded", "kvm21")
    assert run.result["counts"]["vm"]["added"] == 2
    out, _ = _call("vom_discover", "--json")
    result = json.loads(out)
    assert result[0]["provider"] == "kvm21" and result[0]["added"] == 0 and result[0]["status"] == "succeeded"


def test_discover_failure_and_unknown_names(tmp_path):
    path = _node(tmp_path)
    call_command("vom_add_provider", "kvm21", f"test://{path}", stdout=io.StringIO())
    path.unlink()
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 discoveries failed"):
        call_command("vom_discover", "kvm21", stdout=io.StringIO(), stderr=err)
    assert "does not exist" in err.getvalue()
    with pytest.raises(CommandError, match="no provider named 'nope'"):
        call_command("vom_discover", "nope")


def test_export_is_the_whole_inventory_without_secrets(tmp_path, monkeypatch):
    _call(
        "vom_add_provider",
        "kvm21",
        f"test://{_node(tmp_path)}",
        "--username",
        "root",
        "--password-stdin",
        stdin="hunter2\n",
        monkeypatch=monkeypatch,
    )
    call_command("vom_discover", "kvm21", stdout=io.StringIO())
    target = tmp_path / "inventory.json"
    out, _ = _call("vom_export_inventory", "-o", str(target))
    assert "Exported 1 providers and 2 VMs" in out
    text = target.read_text()
    assert "hunter2" not in text and "password_encrypted" not in text
    data = json.loads(text)
    provider = data["providers"][0]
    assert provider["has_password"] is True
    assert {vm["name"] for vm in provider["vms"]} == {"app-01", "app-02"}
    assert provider["hosts"][0]["hostname"] == "kvm21"
    with pytest.raises(CommandError, match="cannot write"):
        call_command("vom_export_inventory", "-o", str(tmp_path / "missing" / "x.json"))


def test_export_command_reads_stdin_password_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("should-not-be-read\n"))
    call_command("vom_add_provider", "kvm21", f"test://{_node(tmp_path)}", stdout=io.StringIO())
    assert not Provider.objects.get(name="kvm21").has_password


def test_load_demo_discovers_the_shipped_estate_once():
    out, _ = _call("vom_load_demo")
    providers = Provider.objects.filter(name__startswith="demo-")
    assert providers.count() >= 3
    assert VirtualMachine.objects.count() >= 55
    assert {"running", "paused", "stopped"} <= set(VirtualMachine.objects.values_list("state", flat=True))
    runs = discoveries().count()
    assert runs >= 3
    call_command("vom_load_demo", stdout=io.StringIO())  # already loaded: nothing is run again
    assert discoveries().count() == runs
    assert "VMs discovered" in out


def test_bootstrap_admin_prints_a_generated_password_once(monkeypatch):
    monkeypatch.delenv("VOM_ADMIN_PASSWORD", raising=False)
    out, _ = _call("vom_bootstrap_admin")
    password = out.split("password: ")[1].split()[0]
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)
    out, _ = _call("vom_bootstrap_admin")
    assert "already exists" in out and password not in out


def test_bootstrap_admin_uses_the_environment_password(monkeypatch):
    monkeypatch.setenv("VOM_ADMIN_PASSWORD", "chosen-Pass-9")
    out, _ = _call("vom_bootstrap_admin")
    assert "chosen-Pass-9" not in out
    assert User.objects.get(username="admin").check_password("chosen-Pass-9")
