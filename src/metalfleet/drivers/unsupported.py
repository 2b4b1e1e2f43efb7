"""In-band interfaces for hardware types whose in-band path is not built yet.

Real servers are inspected, deployed and cleaned by the network-booted agent, which lands
with the network boot work; until then these fail the step with a clear reason instead of
pretending.
"""

from __future__ import annotations

from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.drivers import base

REASON = (
    "in-band {step} of real servers needs the network-booted agent, which this release "
    "does not have yet; use the lab hardware type or a later release"
)


class NoInBandInspect(base.InspectInterface):
    def inspect(self, node: base.NodeContext) -> dict[str, Any]:
        raise DriverError(REASON.format(step="inspection"))


class NoInBandBurnIn(base.BurnInInterface):
    def burn_in(self, node: base.NodeContext) -> dict[str, Any]:
        raise DriverError(REASON.format(step="burn-in"))


class NoInBandDeploy(base.DeployInterface):
    def deploy(self, node: base.NodeContext) -> None:
        raise DriverError(REASON.format(step="deploy"))

    def tear_down(self, node: base.NodeContext) -> None:
        """Nothing was set up in-band, so there is nothing to undo."""


class NoInBandClean(base.CleanInterface):
    def clean(self, node: base.NodeContext) -> dict[str, Any]:
        raise DriverError(REASON.format(step="cleaning"))
