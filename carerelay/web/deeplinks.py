"""Epic deep links (Haiku, Canto, Rover) built from the hospital's URL templates.

Epic's mobile apps open a patient from a URL whose exact shape each hospital's Epic team gives
out, so carerelay does not guess it: ``CARERELAY_EPIC_HAIKU_URL`` / ``_CANTO_URL`` / ``_ROVER_URL``
hold templates with ``{epic_patient_id}`` (the identifier Epic sends as the patient's MRN, PID-3
typed MR) and ``{mrn}``. Values are percent-encoded, so an identifier can never change the
link's structure; templates that could run script (``javascript:``, ``data:``) are refused at
start-up.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from carerelay.config import Settings

PLACEHOLDERS = frozenset({"epic_patient_id", "mrn"})
_REFUSED_SCHEMES = ("javascript:", "data:", "vbscript:", "file:")
APPS = (("Haiku", "epic_haiku_url"), ("Canto", "epic_canto_url"), ("Rover", "epic_rover_url"))


def check_template(template: str) -> None:
    """Raises ValueError naming what is wrong; called by the settings."""
    lowered = template.strip().lower()
    if lowered.startswith(_REFUSED_SCHEMES):
        raise ValueError("a deep link may not use a javascript:, data:, vbscript: or file: URL")
    if ":" not in template:
        raise ValueError("must be an absolute URL, e.g. epichaiku://open?patient={epic_patient_id}")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc})") from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {{epic_patient_id}} or {{mrn}}")


@dataclass(frozen=True)
class DeepLink:
    app: str
    url: str


def epic_links(settings: Settings, *, mrn: str) -> list[DeepLink]:
    """The configured apps' links for one patient, in Haiku, Canto, Rover order."""
    values = {"epic_patient_id": quote(mrn, safe=""), "mrn": quote(mrn, safe="")}
    links = []
    for app, attribute in APPS:
        template = str(getattr(settings, attribute))
        if template:
            links.append(DeepLink(app, template.format(**values)))
    return links
