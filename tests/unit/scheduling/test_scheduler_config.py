"""The cluster's scheduler settings: validation and what output hides."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from metalfleet.scheduling.allocation import redact
from metalfleet.scheduling.schemas import PowerIn, SchedulerConfig


def test_slurm_settings_validate_paths_sites_and_host_lists() -> None:
    config = SchedulerConfig.model_validate({"slurm": {
        "conf": "/etc/slurm/slurm.conf", "prefix": ["ssh", "head"],
        "site": {"controller": "head", "node_port": {"n1": "7001"}},
        "power_saving": {"api_url": "http://mf:8080", "token_file": "/etc/slurm/mf.token",
                         "exclude": "n[1-2]"}}})
    assert config.slurm is not None and config.slurm.site is not None
    assert config.slurm.site.node_port == {"n1": 7001}
    bad = [
        {"slurm": {"conf": "slurm.conf"}},
        {"slurm": {"conf": "/etc/slurm/slurm.conf", "site": {"controler": "typo"}}},
        {"slurm": {"conf": "/s.conf", "power_saving": {"api_url": "http://x",
                                                        "token_file": "/t", "exclude": "n[1-"}}},
        {"slurm": {"conf": "/s.conf", "max_time": "forever"}},
        {"kubernetes": {"kubectl": []}},
        {"openpbs": {}},
    ]
    for raw in bad:
        with pytest.raises(ValidationError):
            SchedulerConfig.model_validate(raw)


def test_power_request_checks_the_host_list() -> None:
    assert PowerIn(action="suspend", nodes="gpu-[01-02]").nodes == "gpu-[01-02]"
    with pytest.raises(ValidationError):
        PowerIn(action="suspend", nodes="gpu-[02-01]")
    with pytest.raises(ValidationError):
        PowerIn.model_validate({"action": "hibernate", "nodes": "n1"})


def test_redact_hides_secret_flags_in_argv() -> None:
    config: dict[str, Any] = {"kubernetes": {"kubectl": ["kubectl", "--token", "abc", "--server=https://k",
                                         "--token=def", "--kubeconfig", "/k"]},
              "slurm": {"conf": "/s", "prefix": ["ssh", "head"]}}
    out = redact(config)
    assert out["kubernetes"]["kubectl"] == ["kubectl", "--token", "***", "--server=https://k",
                                            "--token=***", "--kubeconfig", "/k"]
    assert out["slurm"] == config["slurm"]
    assert config["kubernetes"]["kubectl"][2] == "abc"  # the stored value is untouched
