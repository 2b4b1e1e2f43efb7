"""The shipped Prometheus/Alertmanager/Grafana files: promtool and amtool must accept them.

promtool and amtool come from the Debian packages prometheus and prometheus-alertmanager; a
missing tool fails these tests (it never skips them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from metalfleet.cli.main import app
from metalfleet.observability import dashboards, rules


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {package}")
    return path


def _run(*args: str, cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(app, ["observability", "export", str(out),
                                      "--metalfleet-url", "http://127.0.0.1:18080"])
    assert result.exit_code == 0, result.output
    return out


def test_export_writes_every_file(exported: Path) -> None:
    names = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file())
    assert names == [
        "alertmanager/alertmanager.yml",
        "grafana/dashboards/fleet.json", "grafana/dashboards/gpu.json",
        "grafana/dashboards/node.json",
        "prometheus/prometheus.yml", "prometheus/rules.yml", "prometheus/rules_test.yml",
    ]


def test_promtool_checks_rules(exported: Path) -> None:
    out = _run(_tool("promtool", "prometheus"), "check", "rules", "rules.yml",
               cwd=exported / "prometheus")
    total = len(rules.ALL_ALERTS) + len(rules.RECORDING_RULES)
    assert f"SUCCESS: {total} rules found" in out


def test_promtool_unit_tests_pass(exported: Path) -> None:
    out = _run(_tool("promtool", "prometheus"), "test", "rules", "rules_test.yml",
               cwd=exported / "prometheus")
    assert "SUCCESS" in out


def test_promtool_unit_tests_catch_a_wrong_expectation(exported: Path, tmp_path: Path) -> None:
    """The unit tests are not vacuous: a changed expectation makes promtool fail."""
    shutil.copy(exported / "prometheus" / "rules.yml", tmp_path / "rules.yml")
    text = (exported / "prometheus" / "rules_test.yml").read_text()
    assert "reported XID 79" in text
    (tmp_path / "rules_test.yml").write_text(text.replace("reported XID 79", "reported XID 78"))
    result = subprocess.run([_tool("promtool", "prometheus"), "test", "rules", "rules_test.yml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for case in rules.CASES:
        for _, name, expected in case.alerts:
            (fired if expected else silent).add(name)
            # A firing expectation lists only some of the case's series: the rest stay silent.
            if expected and len(expected) < len(case.series):
                silent.add(name)
    assert fired == set(rules.ALL_ALERTS)
    assert silent == set(rules.ALL_ALERTS)


def test_every_alert_names_its_severity_and_node_label() -> None:
    data = rules.rules_file()
    for group in data["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"warning", "critical"}
                assert rule["annotations"]["summary"]


def test_promtool_checks_prometheus_config(exported: Path) -> None:
    config = yaml.safe_load((exported / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["metalfleet"]["static_configs"] == [{"targets": ["127.0.0.1:18080"]}]
    sd = jobs["metalfleet-nodes"]["http_sd_configs"][0]
    assert sd["url"] == "http://127.0.0.1:18080/v1/observability/prometheus/sd"
    assert sd["authorization"]["credentials_file"] == "metalfleet-sd.token"
    _run(_tool("promtool", "prometheus"), "check", "config", "prometheus.yml",
         cwd=exported / "prometheus")


def test_amtool_checks_alertmanager_config(exported: Path) -> None:
    config = yaml.safe_load((exported / "alertmanager" / "alertmanager.yml").read_text())
    hook = config["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:18080/v1/observability/alertmanager/webhook"
    assert hook["send_resolved"] is True
    _run(_tool("amtool", "prometheus-alertmanager"), "check-config", "alertmanager.yml",
         cwd=exported / "alertmanager")


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard["panels"])


def test_dashboards_are_valid_json_with_unique_ids(exported: Path) -> None:
    for name in dashboards.DASHBOARDS:
        dashboard = json.loads((exported / "grafana" / "dashboards" / f"{name}.json").read_text())
        assert dashboard["uid"] == f"metalfleet-{name}" and dashboard["title"]
        ids = [p["id"] for p in _panels(dashboard)]
        assert len(ids) == len(set(ids)) and ids
        for panel in _panels(dashboard):
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24


def test_dashboard_queries_are_valid_promql(exported: Path, tmp_path: Path) -> None:
    """promtool parses every panel query (template variables replaced by sample values)."""
    substitutions = {"$__rate_interval": "5m", "$node": "g1", "$gpu": "0|1"}
    records = []
    for name in dashboards.DASHBOARDS:
        dashboard = json.loads((exported / "grafana" / "dashboards" / f"{name}.json").read_text())
        for panel in _panels(dashboard):
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in substitutions.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, expr
                records.append({"record": f"dashboard:{name}_{panel['id']}_{target['refId']}",
                                "expr": expr})
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    _run(_tool("promtool", "prometheus"), "check", "rules", "queries.yml", cwd=tmp_path)


def test_dashboards_use_metrics_that_exist() -> None:
    """Metric names in dashboards come from metalfleet, node-exporter, DCGM or our rules."""
    known_prefixes = ("metalfleet_", "node_", "DCGM_FI_DEV_")
    recorded = {r["record"] for r in rules.RECORDING_RULES}
    builtin = {"up", "ALERTS"}
    functions = {"sum", "by", "count", "rate", "increase", "max", "avg"}
    for build in dashboards.DASHBOARDS.values():
        for panel in _panels(build()):
            for target in panel["targets"]:
                expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^]]*\]', "", target["expr"])
                for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
                    if word in functions or word in {"state", "class", "health", "alertname",
                                                     "role"}:
                        continue
                    assert (word in recorded or word in builtin
                            or word.startswith(known_prefixes)), (word, target["expr"])
