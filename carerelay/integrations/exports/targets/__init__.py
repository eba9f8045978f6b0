"""The plug-ins: one module per target, each a small class on the shape in ``base.py``."""

from __future__ import annotations

from carerelay.core.errors import Invalid
from carerelay.integrations.exports.base import Target
from carerelay.integrations.exports.targets.anesthesiago import AnesthesiaGo
from carerelay.integrations.exports.targets.backup import ScheduleBackup
from carerelay.integrations.exports.targets.demographics import DemographicImport
from carerelay.integrations.exports.targets.epic import EpicOnCallFinder, EpicOpTime
from carerelay.integrations.exports.targets.kronos import KronosWorkforceCentral, KronosWorkforceDimensions
from carerelay.integrations.exports.targets.new_innovations import NewInnovations
from carerelay.integrations.exports.targets.outlook import Outlook
from carerelay.integrations.exports.targets.partners import ClinicalPartner

TARGETS: dict[str, Target] = {t.name: t for t in (
    EpicOnCallFinder(), EpicOpTime(), KronosWorkforceCentral(), KronosWorkforceDimensions(), NewInnovations(),
    ScheduleBackup(), Outlook(), AnesthesiaGo(), ClinicalPartner(), DemographicImport())}


def get_target(name: str) -> Target:
    target = TARGETS.get(name)
    if target is None:
        raise Invalid(f"target must be one of {', '.join(TARGETS)}", field="target")
    return target
