"""Imports every domain's tables so ``Base.metadata`` is complete for Alembic and the tests."""

from carerelay.audit import models as audit_models
from carerelay.auth import models as auth_models
from carerelay.core.db import Base
from carerelay.directory import models as directory_models
from carerelay.integrations.hl7 import models as hl7_models
from carerelay.patients import models as patients_models

metadata = Base.metadata

__all__ = ["audit_models", "auth_models", "directory_models", "hl7_models", "metadata", "patients_models"]
