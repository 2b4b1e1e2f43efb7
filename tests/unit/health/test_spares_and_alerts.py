"""Which spare keeps a cluster's topology; how an alert becomes a finding."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from metalfleet.health.alerts import finding_of
from metalfleet.health.spares import preferred_pools
from metalfleet.scheduling.placement import Candidate


def member(rack: str, leaf: str) -> Any:
    return SimpleNamespace(rack=rack, leaf=leaf)


FREE = [Candidate("a", "r1", "leaf-1"), Candidate("b", "r2", "leaf-2"),
        Candidate("c", "r3", "leaf-3"), Candidate("d", None, None)]


def names(pools: list[list[Candidate]]) -> list[list[str]]:
    return [[c.name for c in pool] for pool in pools]


def test_default_prefers_the_failed_nodes_leaf_then_the_clusters_leaves() -> None:
    failed, others = member("r2", "leaf-2"), [member("r1", "leaf-1")]
    assert names(preferred_pools(FREE, failed, others, {})) == [
        ["b"], ["a"], ["a", "b", "c", "d"]]


def test_same_leaf_is_hard() -> None:
    failed, others = member("r1", "leaf-1"), [member("r1", "leaf-1")]
    assert names(preferred_pools(FREE, failed, others, {"same_leaf": True}))[0] == ["a"]
    gone = [c for c in FREE if c.leaf != "leaf-1"]
    assert preferred_pools(gone, failed, others, {"same_leaf": True}) == []


def test_spread_racks_prefers_a_rack_the_cluster_does_not_use() -> None:
    failed, others = member("r1", "leaf-1"), [member("r2", "leaf-2")]
    pools = preferred_pools(FREE, failed, others, {"spread_racks": True})
    assert names(pools)[0] == ["a", "c", "d"]
    assert "b" not in names(pools)[0]


def test_alert_labels_become_a_finding() -> None:
    finding = finding_of({"alertname": "GpuXidErrors", "severity": "critical", "gpu": "3"},
                         {"summary": "XID 79"})
    assert (finding.check, finding.component, finding.severity, finding.message) == (
        "GpuXidErrors", "GPU3", "critical", "XID 79")
    finding = finding_of({"alertname": "IbPortFlapping", "port": "mlx5_1"}, {})
    assert (finding.component, finding.severity) == ("mlx5_1", "warning")
    assert finding_of({"alertname": "NodeDown", "severity": "page"}, {}).severity == "warning"
