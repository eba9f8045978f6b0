"""SCIM 2.0 over HTTP under /scim/v2: thin routes that parse with scim2-models and call the service.

Every route takes the identity provider's bearer token (``scim_provisioning()``), answers
``application/scim+json`` and reports errors as SCIM error bodies (see :func:`scim_error_response`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from scim2_models import Context, Error, ListResponse, ResourceType, ResponseParameters, Schema, SearchRequest

from carerelay.auth.deps import ClockDep, DbSession, SettingsDep, scim_provisioning
from carerelay.core.actor import Actor
from carerelay.core.errors import CarerelayError, Conflict, Forbidden, NotFound, Unauthenticated
from carerelay.integrations.scim import resources, service
from carerelay.integrations.scim.resources import ScimGroup, ScimUser

PREFIX = "/scim/v2"
SCIM_JSON = "application/scim+json"

router = APIRouter(prefix=PREFIX, tags=["scim"])


class ScimJSON(JSONResponse):
    media_type = SCIM_JSON


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _provider(actor: Actor) -> str:
    return actor.username.split(":", 1)[1]


def _error(status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = Error(status=status, scim_type=scim_type, detail=detail).model_dump()
    return ScimJSON(body, status_code=status, headers=headers)


def scim_error_response(exc: CarerelayError) -> Response:
    """Map a service error to RFC 7644 §3.12 terms."""
    if isinstance(exc, NotFound):
        return _error(404, exc.message)
    if isinstance(exc, Conflict):
        return _error(409, exc.message, "uniqueness")
    if isinstance(exc, Unauthenticated):
        return _error(401, exc.message, headers={"WWW-Authenticate": 'Bearer realm="scim"'})
    if isinstance(exc, Forbidden):
        return _error(403, exc.message)
    if isinstance(exc, service.ScimNotImplemented):
        return _error(501, exc.message)
    scim_type = getattr(exc, "scim_type", "invalidValue")
    return _error(400, exc.message, scim_type)


def scim_validation_response(detail: str) -> Response:
    return _error(400, detail, "invalidSyntax")


def _params(attributes: str | None, excluded: str | None) -> ResponseParameters[Any] | None:
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters(attributes=attributes or None, excluded_attributes=excluded or None)
    except ValueError as exc:
        raise service.ScimInvalid(f"attributes: {exc}", scim_type="invalidPath") from exc


def _one(obj: Any, ctx: Context, status: int = 200, params: ResponseParameters[Any] | None = None) -> Response:
    body = obj.model_dump(scim_ctx=ctx, response_parameters=params)
    headers = {}
    if obj.meta is not None and obj.meta.location:
        headers["Location"] = obj.meta.location
        if obj.meta.version:
            headers["ETag"] = obj.meta.version
    return ScimJSON(body, status_code=status, headers=headers)


def _list(result: service.ListResult, count: int, params: ResponseParameters[Any] | None) -> Response:
    listing: ListResponse[Any] = ListResponse[ScimUser | ScimGroup](
        total_results=result.total, start_index=result.start_index, items_per_page=len(result.resources),
        resources=result.resources,
    )
    return ScimJSON(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=params))


def _query(filter_: str | None, start: int | None, count: int | None, sort_by: str | None,
           sort_order: str | None) -> service.ListQuery:
    try:
        request: SearchRequest[Any] = SearchRequest(filter=filter_ or None, start_index=start, count=count,
                                                    sort_by=sort_by or None, sort_order=sort_order or None)
    except ValueError as exc:
        message = str(exc).splitlines()
        text = next((line.strip() for line in message[1:] if line.strip()), str(exc))
        raise service.ScimInvalid(text, scim_type="invalidFilter" if filter_ else "invalidValue") from exc
    return service.ListQuery(
        filter=request.filter.ast if request.filter is not None else None,
        start_index=request.start_index or 1,
        count=100 if request.count is None else request.count,
        sort_by=str(request.sort_by) if request.sort_by else None,
        descending=(sort_order or "").lower() == "descending",
    )


Filter = Annotated[str | None, Query(alias="filter")]
StartIndex = Annotated[int | None, Query(alias="startIndex")]
Count = Annotated[int | None, Query(alias="count")]
SortBy = Annotated[str | None, Query(alias="sortBy")]
SortOrder = Annotated[str | None, Query(alias="sortOrder")]
Attributes = Annotated[str | None, Query(alias="attributes")]
Excluded = Annotated[str | None, Query(alias="excludedAttributes")]
Payload = Annotated[dict[str, Any], Body()]


# -- discovery ----------------------------------------------------------------------------------

@router.get("/ServiceProviderConfig")
def service_provider_config(request: Request, actor: Actor = scim_provisioning()) -> Response:
    return ScimJSON(resources.service_provider_config(_base(request)).model_dump())


@router.get("/ResourceTypes")
def resource_types(request: Request, actor: Actor = scim_provisioning()) -> Response:
    found = resources.resource_types(_base(request))
    listing = ListResponse[ResourceType](total_results=len(found), start_index=1, items_per_page=len(found),
                                         resources=found)
    return ScimJSON(listing.model_dump())


@router.get("/ResourceTypes/{name}")
def resource_type(name: str, request: Request, actor: Actor = scim_provisioning()) -> Response:
    for found in resources.resource_types(_base(request)):
        if found.id == name:
            return ScimJSON(found.model_dump())
    raise NotFound(f"no resource type {name}")


@router.get("/Schemas")
def schemas(request: Request, actor: Actor = scim_provisioning()) -> Response:
    found = resources.schemas(_base(request))
    listing = ListResponse[Schema](total_results=len(found), start_index=1, items_per_page=len(found), resources=found)
    return ScimJSON(listing.model_dump())


@router.get("/Schemas/{urn}")
def schema(urn: str, request: Request, actor: Actor = scim_provisioning()) -> Response:
    for found in resources.schemas(_base(request)):
        if found.id == urn:
            return ScimJSON(found.model_dump())
    raise NotFound(f"no schema {urn}")


@router.post("/.search")
def search_everything(actor: Actor = scim_provisioning()) -> Response:
    raise service.ScimNotImplemented("searching several resource types at once is not supported; "
                                     "POST /Users/.search or /Groups/.search")


# -- users --------------------------------------------------------------------------------------

@router.get("/Users")
def list_users(
    request: Request, session: DbSession, filter_: Filter = None, start_index: StartIndex = None,
    count: Count = None, sort_by: SortBy = None, sort_order: SortOrder = None, attributes: Attributes = None,
    excluded: Excluded = None, actor: Actor = scim_provisioning(),
) -> Response:
    query = _query(filter_, start_index, count, sort_by, sort_order)
    result = service.list_users(session=session, query=query, base=_base(request))
    return _list(result, query.count, _params(attributes, excluded))


@router.post("/Users/.search")
def search_users(request: Request, session: DbSession, body: Payload, actor: Actor = scim_provisioning()) -> Response:
    search = _search_request(body)
    query = _query(search.get("filter"), search.get("startIndex"), search.get("count"), search.get("sortBy"),
                   search.get("sortOrder"))
    result = service.list_users(session=session, query=query, base=_base(request))
    return _list(result, query.count, _params(_joined(search.get("attributes")),
                                              _joined(search.get("excludedAttributes"))))


@router.post("/Users")
def create_user(
    request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep, body: Payload,
    actor: Actor = scim_provisioning(),
) -> Response:
    user = service.validate_user(body, Context.RESOURCE_CREATION_REQUEST)
    created = service.create_user(session=session, clock=clock, actor=actor, provider=_provider(actor), user=user,
                                  base=_base(request), default_profession=settings.provisioning_default_profession)
    return _one(created, Context.RESOURCE_CREATION_RESPONSE, 201)


@router.get("/Users/{user_id}")
def get_user(
    user_id: str, request: Request, session: DbSession, attributes: Attributes = None, excluded: Excluded = None,
    actor: Actor = scim_provisioning(),
) -> Response:
    user = service.get_user(session=session, user_id=user_id, base=_base(request))
    return _one(user, Context.RESOURCE_QUERY_RESPONSE, params=_params(attributes, excluded))


@router.put("/Users/{user_id}")
def replace_user(
    user_id: str, request: Request, session: DbSession, clock: ClockDep, body: Payload,
    actor: Actor = scim_provisioning(),
) -> Response:
    user = service.validate_user(body, Context.RESOURCE_REPLACEMENT_REQUEST)
    replaced = service.replace_user(session=session, clock=clock, actor=actor, provider=_provider(actor),
                                    user_id=user_id, user=user, base=_base(request))
    return _one(replaced, Context.RESOURCE_REPLACEMENT_RESPONSE)


@router.patch("/Users/{user_id}")
def patch_user(
    user_id: str, request: Request, session: DbSession, clock: ClockDep, body: Payload,
    actor: Actor = scim_provisioning(),
) -> Response:
    patch = service.validate_patch(body, ScimUser)
    patched = service.patch_user(session=session, clock=clock, actor=actor, provider=_provider(actor),
                                 user_id=user_id, patch=patch, base=_base(request))
    return _one(patched, Context.RESOURCE_PATCH_RESPONSE)


@router.delete("/Users/{user_id}", status_code=204)
def delete_user(user_id: str, session: DbSession, clock: ClockDep, actor: Actor = scim_provisioning()) -> Response:
    service.delete_user(session=session, clock=clock, actor=actor, provider=_provider(actor), user_id=user_id)
    return Response(status_code=204)


# -- groups -------------------------------------------------------------------------------------

@router.get("/Groups")
def list_groups(
    request: Request, session: DbSession, filter_: Filter = None, start_index: StartIndex = None,
    count: Count = None, sort_by: SortBy = None, sort_order: SortOrder = None, attributes: Attributes = None,
    excluded: Excluded = None, actor: Actor = scim_provisioning(),
) -> Response:
    query = _query(filter_, start_index, count, sort_by, sort_order)
    result = service.list_groups(session=session, query=query, base=_base(request))
    return _list(result, query.count, _params(attributes, excluded))


@router.post("/Groups/.search")
def search_groups(request: Request, session: DbSession, body: Payload,
                  actor: Actor = scim_provisioning()) -> Response:
    search = _search_request(body)
    query = _query(search.get("filter"), search.get("startIndex"), search.get("count"), search.get("sortBy"),
                   search.get("sortOrder"))
    result = service.list_groups(session=session, query=query, base=_base(request))
    return _list(result, query.count, _params(_joined(search.get("attributes")),
                                              _joined(search.get("excludedAttributes"))))


@router.post("/Groups")
def create_group(request: Request, session: DbSession, clock: ClockDep, body: Payload,
                 actor: Actor = scim_provisioning()) -> Response:
    group = service.validate_group(body, Context.RESOURCE_CREATION_REQUEST)
    created = service.create_group(session=session, clock=clock, actor=actor, provider=_provider(actor),
                                   group=group, base=_base(request))
    return _one(created, Context.RESOURCE_CREATION_RESPONSE, 201)


@router.get("/Groups/{group_id}")
def get_group(
    group_id: str, request: Request, session: DbSession, attributes: Attributes = None, excluded: Excluded = None,
    actor: Actor = scim_provisioning(),
) -> Response:
    group = service.get_group(session=session, group_id=group_id, base=_base(request))
    return _one(group, Context.RESOURCE_QUERY_RESPONSE, params=_params(attributes, excluded))


@router.put("/Groups/{group_id}")
def replace_group(group_id: str, request: Request, session: DbSession, clock: ClockDep, body: Payload,
                  actor: Actor = scim_provisioning()) -> Response:
    group = service.validate_group(body, Context.RESOURCE_REPLACEMENT_REQUEST)
    replaced = service.replace_group(session=session, clock=clock, actor=actor, provider=_provider(actor),
                                     group_id=group_id, group=group, base=_base(request))
    return _one(replaced, Context.RESOURCE_REPLACEMENT_RESPONSE)


@router.patch("/Groups/{group_id}")
def patch_group(group_id: str, request: Request, session: DbSession, clock: ClockDep, body: Payload,
                actor: Actor = scim_provisioning()) -> Response:
    patch = service.validate_patch(body, ScimGroup)
    patched = service.patch_group(session=session, clock=clock, actor=actor, provider=_provider(actor),
                                  group_id=group_id, patch=patch, base=_base(request))
    return _one(patched, Context.RESOURCE_PATCH_RESPONSE)


@router.delete("/Groups/{group_id}", status_code=204)
def delete_group(group_id: str, session: DbSession, clock: ClockDep, actor: Actor = scim_provisioning()) -> Response:
    service.delete_group(session=session, clock=clock, actor=actor, provider=_provider(actor), group_id=group_id)
    return Response(status_code=204)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown_endpoint(rest: str, request: Request, actor: Actor = scim_provisioning()) -> Response:
    if rest.split("/", 1)[0] in _ENDPOINTS:
        return _error(405, f"{request.method} is not allowed on /{rest}")
    raise NotFound(f"no SCIM endpoint /{rest}")


_ENDPOINTS = {"ServiceProviderConfig", "ResourceTypes", "Schemas", "Users", "Groups"}


def _search_request(body: dict[str, Any]) -> dict[str, Any]:
    schemas_ = body.get("schemas") or []
    if "urn:ietf:params:scim:api:messages:2.0:SearchRequest" not in schemas_:
        raise service.ScimInvalid("a search needs schemas [urn:ietf:params:scim:api:messages:2.0:SearchRequest]",
                                  scim_type="invalidSyntax")
    return body


def _joined(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
