"""Imports every domain's tables so ``Base.metadata`` is complete for Alembic and the tests."""

from carerelay.alerts import models as alerts_models
from carerelay.audit import models as audit_models
from carerelay.auth import models as auth_models
from carerelay.core.db import Base
from carerelay.directory import models as directory_models
from carerelay.escalation import models as escalation_models
from carerelay.integrations.exports import models as exports_models
from carerelay.integrations.hl7 import models as hl7_models
from carerelay.integrations.ldap import models as ldap_models
from carerelay.integrations.paging import models as paging_models
from carerelay.integrations.scim import models as scim_models
from carerelay.integrations.sso import models as sso_models
from carerelay.integrations.wctp import models as wctp_models
from carerelay.jobs import models as jobs_models
from carerelay.messaging import models as messaging_models
from carerelay.notifications import models as notifications_models
from carerelay.patients import models as patients_models
from carerelay.realtime import models as realtime_models
from carerelay.routing import models as routing_models
from carerelay.scheduling import models as scheduling_models
from carerelay.staffing import models as staffing_models
from carerelay.web import models as web_models

metadata = Base.metadata

__all__ = ["alerts_models", "audit_models", "auth_models", "directory_models", "escalation_models", "exports_models",
           "hl7_models",
           "jobs_models", "ldap_models", "messaging_models", "metadata", "notifications_models", "patients_models",
           "realtime_models", "routing_models", "scheduling_models", "scim_models", "sso_models", "staffing_models"]
__all__ += ["paging_models", "wctp_models"]
__all__ += ["web_models"]
