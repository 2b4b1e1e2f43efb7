"""Power sync against scripted BMCs: changes outside metalfleet, bmc_error, limits, sharding."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, update

from metalfleet.conductor.power_sync import PowerSync
from metalfleet.conductor.worker import Conductor
from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.db import models as m
from metalfleet.drivers import fake
from metalfleet.drivers.base import NodeContext, PowerInterface
from metalfleet.runtime import AppContext
from tests.conftest import drive


class ScriptedPower(PowerInterface):
    """A BMC per node name: a power state, or an exception, or a delay; counts concurrency."""

    def __init__(self) -> None:
        self.state: dict[str, PowerState] = {}
        self.fail: dict[str, list[DriverError]] = {}
        self.delay: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self.hook: Callable[[NodeContext], None] | None = None
        self._lock = threading.Lock()
        self._active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()
        self.max_total = 0

    def get_power_state(self, node: NodeContext) -> PowerState:
        key = node.bmc.address.split("/")[2]
        with self._lock:
            self.calls[node.name] += 1
            self._active[key] += 1
            self.max_active[key] = max(self.max_active[key], self._active[key])
            self.max_total = max(self.max_total, sum(self._active.values()))
        try:
            time.sleep(self.delay.get(node.name, 0.0))
            if self.hook is not None:
                self.hook(node)
            failures = self.fail.get(node.name)
            if failures:
                raise failures.pop(0)
            return self.state.get(node.name, PowerState.OFF)
        finally:
            with self._lock:
                self._active[key] -= 1

    def set_power_state(self, node: NodeContext, state: PowerState, *, soft: bool = False) -> None:
        self.state[node.name] = state

    def reboot(self, node: NodeContext) -> None:
        self.state[node.name] = PowerState.ON


@pytest.fixture
def power() -> ScriptedPower:
    return ScriptedPower()


def make_sync(context: AppContext, power: ScriptedPower, name: str = "c1",
              **options: float) -> PowerSync:
    hw = fake.hardware_type()
    settings: dict[str, float] = {"interval_s": 0.0, "backoff_s": 0.01, **options}
    return PowerSync(context.db, context.cipher, conductor=name,
                     hardware_types=lambda _: hw, power_for=lambda _n, _hw: power,
                     interval_s=settings.pop("interval_s"),
                     backoff_s=settings.pop("backoff_s"),
                     max_workers=int(settings.pop("max_workers", 64)),
                     per_bmc=int(settings.pop("per_bmc", 4)),
                     call_timeout_s=settings.pop("call_timeout_s", 30.0),
                     retries=int(settings.pop("retries", 2)))


def add_nodes(context: AppContext, names: list[str], *, bmc: Callable[[str], str] | None = None,
              power_state: str = "off") -> None:
    with context.db.session() as session:
        for name in names:
            session.add(m.Node(
                name=name, bmc_driver="fake",
                bmc_address=bmc(name) if bmc else f"fake://{name}", bmc_username="admin",
                bmc_password_encrypted=context.cipher.encrypt("Sync-S3cret-pw"),
                hardware_type="fake", state="manageable", power_state=power_state))


def node(context: AppContext, name: str) -> m.Node:
    with context.db.session() as session:
        row = session.scalars(select(m.Node).where(m.Node.name == name)).one()
        session.expunge(row)
        return row


def node_events(context: AppContext, name: str) -> list[m.Event]:
    with context.db.session() as session:
        rows = list(session.scalars(select(m.Event).where(m.Event.node_name == name)
                                    .order_by(m.Event.id)))
        session.expunge_all()
        return rows


def test_change_outside_metalfleet_is_recorded_once(context: AppContext,
                                                   power: ScriptedPower) -> None:
    add_nodes(context, ["n1", "n2"])
    power.state["n1"] = PowerState.ON
    sync = make_sync(context, power)
    result = sync.sweep()
    assert (result.nodes, result.changed) == (2, ["n1"])
    assert node(context, "n1").power_state == "on"
    assert node(context, "n2").power_state == "off"
    messages = [e.message for e in node_events(context, "n1")]
    assert messages == ["power changed outside metalfleet: off -> on"]
    event = node_events(context, "n1")[0]
    assert (event.kind, event.actor, event.data["source"]) == ("power", "c1", "power-sync")
    assert sync.sweep().changed == []  # nothing new: no new event
    assert len(node_events(context, "n1")) == 1
    assert node_events(context, "n2") == []


def test_first_reading_of_an_unknown_state_is_not_an_outside_change(
        context: AppContext, power: ScriptedPower) -> None:
    add_nodes(context, ["n1"], power_state="unknown")
    power.state["n1"] = PowerState.ON
    assert make_sync(context, power).sweep().changed == []
    assert node(context, "n1").power_state == "on"
    assert node_events(context, "n1") == []


def test_bmc_error_is_set_once_and_cleared_on_recovery(context: AppContext,
                                                      power: ScriptedPower) -> None:
    add_nodes(context, ["n1"])
    power.fail["n1"] = [DriverError("The BMC at x is unreachable (timed out)",
                                    kind="unreachable")] * 6
    sync = make_sync(context, power, retries=1)
    for _ in range(3):
        assert sync.sweep().errors == 1
    assert node(context, "n1").bmc_error == "unreachable: The BMC at x is unreachable (timed out)"
    assert power.calls["n1"] == 6  # one retry per sweep
    errors = [e for e in node_events(context, "n1") if e.kind == "error"]
    assert [e.message for e in errors] == [
        "BMC error: unreachable: The BMC at x is unreachable (timed out)"]
    power.fail.clear()
    assert sync.sweep().recovered == 1
    assert node(context, "n1").bmc_error is None
    last = node_events(context, "n1")[-1]
    assert last.kind == "info" and last.message.startswith("BMC answers again (was unreachable")
    assert sync.sweep().recovered == 0
    assert len(node_events(context, "n1")) == 2


def test_a_new_kind_of_error_is_a_new_event_but_a_new_message_is_not(
        context: AppContext, power: ScriptedPower) -> None:
    add_nodes(context, ["n1"])
    sync = make_sync(context, power, retries=0)
    power.fail["n1"] = [DriverError("refused", kind="unreachable")]
    sync.sweep()
    power.fail["n1"] = [DriverError("timed out", kind="unreachable")]
    sync.sweep()
    assert node(context, "n1").bmc_error == "unreachable: timed out"
    power.fail["n1"] = [DriverError("wrong password", kind="auth_failed")] * 3
    make_sync(context, power, retries=2).sweep()
    assert power.calls["n1"] == 3  # a refused password is never retried
    assert [e.message for e in node_events(context, "n1")] == [
        "BMC error: unreachable: refused", "BMC error: auth_failed: wrong password"]


def test_retries_with_backoff_hide_a_transient_failure(context: AppContext,
                                                      power: ScriptedPower) -> None:
    add_nodes(context, ["n1"])
    power.state["n1"] = PowerState.ON
    power.fail["n1"] = [DriverError("blip", kind="protocol_error"),
                        DriverError("blip", kind="unreachable")]
    calls: list[float] = []
    power.hook = lambda _ctx: calls.append(time.monotonic())
    result = make_sync(context, power, retries=2, backoff_s=0.05).sweep()
    assert result.errors == 0 and result.changed == ["n1"]
    assert len(calls) == 3
    assert calls[2] - calls[1] >= calls[1] - calls[0] >= 0.04  # backoff doubles
    assert node(context, "n1").bmc_error is None


def test_nodes_under_conductor_control_are_left_alone(context: AppContext,
                                                      power: ScriptedPower) -> None:
    add_nodes(context, ["reserved", "pending", "working", "retired", "idle"])
    with context.db.session() as session:
        for name, values in (("reserved", {"reservation": "c9"}),
                             ("pending", {"target_power_state": "on"}),
                             ("working", {"state": "verifying"}), ("retired", {"retired": True})):
            session.execute(update(m.Node).where(m.Node.name == name).values(**values))
    for name in ("reserved", "pending", "working", "retired", "idle"):
        power.state[name] = PowerState.ON
    result = make_sync(context, power).sweep()
    assert result.nodes == 1 and set(power.calls) == {"idle"}
    assert node(context, "reserved").power_state == "off"


def test_update_rechecks_the_reservation(context: AppContext, power: ScriptedPower) -> None:
    add_nodes(context, ["n1"])
    power.state["n1"] = PowerState.ON

    def conductor_takes_it(ctx: NodeContext) -> None:  # between the read and the write
        with context.db.session() as session:
            session.execute(update(m.Node).where(m.Node.id == ctx.uuid)
                            .values(reservation="c9"))

    power.hook = conductor_takes_it
    assert make_sync(context, power).sweep().changed == []
    assert node(context, "n1").power_state == "off"
    assert node_events(context, "n1") == []


def test_one_slow_bmc_does_not_hold_up_the_rest(context: AppContext,
                                               power: ScriptedPower) -> None:
    names = [f"n{i:02d}" for i in range(30)]
    add_nodes(context, [*names, "slow1", "slow2"])
    for name in names:
        power.state[name] = PowerState.ON
    power.delay["slow1"] = power.delay["slow2"] = 6.0
    sync = make_sync(context, power, call_timeout_s=0.5, max_workers=8)
    started = time.monotonic()
    result = sync.sweep()
    assert time.monotonic() - started < 4.0  # not the 6 s of the slow BMCs
    assert sorted(result.changed) == names
    assert result.timed_out == 2
    assert "timed out after 0.5 s" in (node(context, "slow1").bmc_error or "")
    assert node(context, "slow1").bmc_error.startswith("unreachable: ")  # type: ignore[union-attr]


def test_concurrency_is_bounded_per_conductor_and_per_bmc(context: AppContext,
                                                          power: ScriptedPower) -> None:
    add_nodes(context, [f"a{i:02d}" for i in range(24)],
              bmc=lambda name: "fake://chassis-a:623/" + name)
    add_nodes(context, [f"b{i:02d}" for i in range(24)],
              bmc=lambda name: "fake://chassis-b:623/" + name)
    add_nodes(context, [f"c{i:02d}" for i in range(24)])
    for name in [f"{p}{i:02d}" for p in "abc" for i in range(24)]:
        power.delay[name] = 0.02
    result = make_sync(context, power, max_workers=10, per_bmc=3).sweep()
    assert result.nodes == 72 and result.errors == 0
    assert power.max_active["chassis-a:623"] == 3
    assert power.max_active["chassis-b:623"] == 3
    assert power.max_total <= 10


def test_sweep_is_sharded_across_live_conductors(context: AppContext,
                                                 power: ScriptedPower) -> None:
    names = [f"n{i:02d}" for i in range(40)]
    add_nodes(context, names)
    with context.db.session() as session:
        session.add_all([m.Conductor(name="c1"), m.Conductor(name="c2")])
    first = make_sync(context, power, name="c1").sweep().nodes
    seen_by_first = set(power.calls)
    second = make_sync(context, power, name="c2").sweep().nodes
    seen_by_second = set(power.calls) - seen_by_first
    assert first + second == 40 and first > 0 and second > 0
    assert seen_by_first | seen_by_second == set(names)


@pytest.fixture
def fake_power_reset() -> Iterator[None]:
    yield
    fake._power.clear()


def test_the_conductor_runs_power_sync_every_interval(
        context: AppContext, conductor: Conductor, fake_power_reset: None) -> None:
    add_nodes(context, ["n1"])
    conductor.power_sync.set_interval(0.2)
    fake._power[node(context, "n1").id] = PowerState.ON  # pressed the button on the server
    drive(conductor, lambda: node(context, "n1").power_state == "on", timeout=15)
    assert [e.message for e in node_events(context, "n1")] == [
        "power changed outside metalfleet: off -> on"]


def test_power_sync_interval_comes_from_the_environment(
        context: AppContext, power: ScriptedPower, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALFLEET_POWER_SYNC_INTERVAL_S", "7.5")
    sync = PowerSync(context.db, context.cipher, conductor="c1",
                     hardware_types=lambda _: fake.hardware_type())
    assert sync.interval_s == 7.5 and not sync.due()
    monkeypatch.setenv("METALFLEET_POWER_SYNC_INTERVAL_S", "0")
    assert PowerSync(context.db, context.cipher, conductor="c1",
                     hardware_types=lambda _: fake.hardware_type()).due() is False
