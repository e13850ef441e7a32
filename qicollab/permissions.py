"""Permissions, named ``<scope>:<resource>:<action>``; views must name one.

The app's default permission is :data:`UNNAMED`, which no ACL grants, so a view that forgets to
name its permission is denied to everyone rather than public by accident.
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    """Every permission a view or service can require."""

    # A member's own data: results, charts, reports, completeness.
    MEMBER_VIEW = "member:data:view"
    # Submitting and correcting a member's data (quality officers of that member).
    MEMBER_SUBMIT = "member:data:submit"
    # Collaborative-wide reading of identified results (coordinators, admins).
    COLLABORATIVE_VIEW = "collaborative:results:view"
    # Running the collaborative: measures, peer groups, cycles, runs, acceptance.
    COLLABORATIVE_MANAGE = "collaborative:cycles:manage"
    # Users and roles.
    USERS_MANAGE = "collaborative:users:manage"
    # Audit log viewing and export.
    AUDIT_VIEW = "collaborative:audit:view"
    # Signed-in pages that belong to no member (own account, password change).
    ACCOUNT = "account:self:manage"
    # Material every member may read (blinded collaborative summary, measure definitions).
    COLLABORATIVE_READ = "collaborative:summary:read"


#: The default permission: granted to nobody, so unnamed views are denied.
UNNAMED = "view:permission:unnamed"
