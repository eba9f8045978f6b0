"""Imports every domain's tables so ``Base.metadata`` is complete for Alembic and the tests."""

from carerelay.audit import models as audit_models
from carerelay.auth import models as auth_models
from carerelay.core.db import Base
from carerelay.directory import models as directory_models
from carerelay.integrations.ldap import models as ldap_models
from carerelay.integrations.scim import models as scim_models
from carerelay.integrations.sso import models as sso_models
from carerelay.patients import models as patients_models

metadata = Base.metadata

__all__ = ["audit_models", "auth_models", "directory_models", "ldap_models", "metadata", "patients_models",
           "scim_models", "sso_models"]
