"""Members and peer groups in the portal, for coordinators (identified)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config

from qicollab.audit.services import record
from qicollab.members.models import Collaborative
from qicollab.members.resources import PeerGroupResource
from qicollab.members.services import (
    CRITERIA_ATTRIBUTES,
    MemberService,
    PeerGroupDraft,
    PeerGroupError,
)
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.resources import Root


def _service(request: Request) -> MemberService:
    return request.find_service(MemberService)


@view_config(
    route_name="members.list",
    renderer="catalogue/members.jinja2",
    permission=Permission.COLLABORATIVE_VIEW,
)
def member_list(request: Request) -> dict[str, Any]:
    """Every member with its attributes, blinded code and peer groups."""
    service = _service(request)
    return {"members": service.members(), "groups": service.peer_groups()}


def _draft_from(post: Any) -> PeerGroupDraft:
    criteria = {
        attribute: post.getall(attribute)
        for attribute in CRITERIA_ATTRIBUTES
        if post.getall(attribute)
    }
    extra = tuple(
        code.strip().upper()
        for code in post.get("extra_members", "").replace(",", " ").split()
        if code.strip()
    )
    return PeerGroupDraft(
        code=post.get("code", ""),
        name=post.get("name", ""),
        description=post.get("description", ""),
        criteria=criteria,
        extra_member_codes=extra,
    )


@view_config(
    route_name="peer_groups.new",
    renderer="catalogue/peer_group_form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
)
@view_config(
    route_name="peer_groups.edit",
    renderer="catalogue/peer_group_form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
)
def peer_group_form(context: Root | PeerGroupResource, request: Request) -> Any:
    """Build a peer group from member attributes, plus members added by hand."""
    group = context.group if isinstance(context, PeerGroupResource) else None
    service = _service(request)
    context: dict[str, Any] = {
        "group": group,
        "attributes": CRITERIA_ATTRIBUTES,
        "summary": service.attribute_summary(),
        "error": None,
    }
    if request.method != "POST":
        return context
    try:
        saved = service.save_peer_group(_draft_from(request.POST), group)
    except PeerGroupError as error:
        request.response.status = 422
        return {**context, "error": str(error), "posted": request.POST}
    record(
        request.db,
        "peer_group.updated" if group else "peer_group.created",
        actor=request.identity,
        object_type="peer_group",
        object_id=saved.code,
        ip_address=request.client_addr,
        details={"members": len(saved.members), "criteria": saved.criteria},
    )
    return HTTPFound(request.route_url("members.list"))


def parse_min_contributors(raw: str | None) -> int:
    """The posted minimum number of contributing members, or a :class:`ValueError` saying
    what is wrong with it."""
    text = (raw or "").strip()
    if not text:
        msg = "Minimum contributors: enter a whole number of members (1 or more)"
        raise ValueError(msg)
    try:
        value = int(text)
    except ValueError:
        msg = f"Minimum contributors: {text!r} is not a whole number of members"
        raise ValueError(msg) from None
    if value < 1:
        msg = f"Minimum contributors: {value} is too small; it must be at least 1"
        raise ValueError(msg)
    return value


@view_config(
    route_name="collaborative.settings",
    renderer="catalogue/settings_form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
)
def collaborative_settings(request: Request) -> Any:
    """The collaborative's disclosure setting: how many members must contribute to a measure
    before figures about peers are shown (carried into every later benchmark run)."""
    collaborative = request.db.get(Collaborative, request.identity.collaborative_id)
    if collaborative is None:
        raise HTTPNotFound
    context: dict[str, Any] = {"collaborative": collaborative, "error": None, "saved": False}
    if request.method != "POST":
        context["saved"] = request.GET.get("saved") == "1"
        return context
    raw = request.POST.get("min_contributors")
    try:
        value = parse_min_contributors(raw)
    except ValueError as error:
        request.response.status = 422
        return {**context, "error": str(error), "posted": raw}
    before = collaborative.min_contributors
    if value != before:
        collaborative.min_contributors = value
        record(
            request.db,
            "collaborative.settings_updated",
            actor=request.identity,
            object_type="collaborative",
            object_id=collaborative.slug,
            ip_address=request.client_addr,
            details={"min_contributors": {"before": before, "after": value}},
        )
    return HTTPFound(request.route_url("collaborative.settings", _query={"saved": "1"}))
