"""SCIM resource shapes (scim2-models) and the discovery documents built from them.

The User resource carries the core schema, the enterprise extension and our own extension for
the external ids a hospital matches people on. What we publish under /Schemas is generated from
these same classes, so the documents cannot drift from what the endpoints accept.
"""

from __future__ import annotations

from typing import Annotated, Any

from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Extension,
    Filter,
    Group,
    Meta,
    Pagination,
    Patch,
    ResourceType,
    Schema,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
    User,
)

CARERELAY_USER_URN = "urn:ietf:params:scim:schemas:extension:carerelay:2.0:User"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class CarerelayUser(Extension):
    """The ids other hospital systems know a person by (each unique when present)."""

    __schema__ = URN(CARERELAY_USER_URN)

    unique_id: Annotated[str | None, Uniqueness.server] = None
    """UniqueID: the hospital's own person identifier."""
    custom1: Annotated[str | None, Uniqueness.server] = None
    custom2: Annotated[str | None, Uniqueness.server] = None
    custom3: Annotated[str | None, Uniqueness.server] = None
    custom4: Annotated[str | None, Uniqueness.server] = None
    ehr_username: Annotated[str | None, Uniqueness.server] = None
    """The person's user name in the EHR (e.g. Epic)."""
    npi: Annotated[str | None, Uniqueness.server] = None
    """US National Provider Identifier: ten digits."""
    epic_ser_id: Annotated[str | None, Uniqueness.server] = None
    """Epic provider (SER) record id."""
    ms_upn: Annotated[str | None, Uniqueness.server] = None
    """Microsoft user principal name."""
    kronos_id: Annotated[str | None, Uniqueness.server] = None
    """Kronos / UKG person number."""


# What a client may send and what we return; both extensions are optional on each user.
ScimUser = User[EnterpriseUser | CarerelayUser]
ScimGroup = Group

# Identity providers deviate from the RFC in known ways; accept those, refuse the rest:
# Entra ID sends `remove` with a value selecting what to remove and patches entries that do not
# exist yet through a filter path (emails[type eq "work"].value).
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

MAX_RESULTS = 200


def service_provider_config(base: str) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=False),
        pagination=Pagination(cursor=False, index=True, default_page_size=100, max_page_size=MAX_RESULTS),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A token per identity provider, created with `carerelay scim token create`.",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base}/ServiceProviderConfig"),
    )


def schemas(base: str) -> list[Schema]:
    found = []
    for model in (User, Group, EnterpriseUser, CarerelayUser):
        schema = model.to_schema()
        schema.meta = Meta(resource_type="Schema", location=f"{base}/Schemas/{schema.id}")
        found.append(schema)
    return found


def resource_types(base: str) -> list[ResourceType]:
    user = ResourceType.from_resource(ScimUser)
    user.meta = Meta(resource_type="ResourceType", location=f"{base}/ResourceTypes/{user.id}")
    group = ResourceType.from_resource(ScimGroup)
    group.meta = Meta(resource_type="ResourceType", location=f"{base}/ResourceTypes/{group.id}")
    return [user, group]


def dump(obj: Any, **kwargs: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(**kwargs)
    return data
