"""The change package: the collaborative's driver diagram, kept by its coordinators.

Aim -> primary drivers -> secondary drivers -> change ideas, each with a description; change
ideas carry evidence links. Every change is audited. :func:`ChangePackageService.diagram` gives
the whole tree as plain frozen views, which the portal page, the SVG drawing and the reports read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.db import utcnow
from qicollab.improvement.models import ChangeEvidence, ChangeIdea, ChangePackage, Driver
from qicollab.improvement.text import ImprovementError, required, screened

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User

MAX_TITLE = 200
MAX_CODE = 16
MAX_URL = 500


@dataclass(frozen=True, slots=True)
class EvidenceView:
    """A reference behind a change idea."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class IdeaView:
    """A change idea as shown in the diagram and the lists."""

    id: int
    code: str
    title: str
    description: str
    evidence: tuple[EvidenceView, ...]


@dataclass(frozen=True, slots=True)
class DriverView:
    """A driver with the drivers under it (primary) or the change ideas under it (secondary)."""

    id: int
    title: str
    description: str
    children: tuple[DriverView, ...] = ()
    ideas: tuple[IdeaView, ...] = ()


@dataclass(frozen=True, slots=True)
class Diagram:
    """The whole driver diagram; ``aim`` is empty while no package has been written."""

    aim: str
    description: str
    primaries: tuple[DriverView, ...]
    updated_at: dt.datetime | None

    @property
    def ideas(self) -> list[IdeaView]:
        """Every change idea, in diagram order."""
        return [idea for p in self.primaries for s in p.children for idea in s.ideas]

    @property
    def secondaries(self) -> list[DriverView]:
        """Every secondary driver, in diagram order."""
        return [s for p in self.primaries for s in p.children]


def parse_evidence(text: str) -> list[tuple[str, str]]:
    """Evidence lines ``title | https://...`` (or a bare URL) as (title, url) pairs."""
    pairs = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        title, _, url = line.rpartition("|") if "|" in line else ("", "", line)
        title, url = title.strip() or url.strip(), url.strip()
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = f"evidence line {number}: {url!r} is not an http(s) web address"
            raise ImprovementError(msg, field="evidence")
        if len(url) > MAX_URL or len(title) > MAX_TITLE:
            msg = f"evidence line {number} is too long"
            raise ImprovementError(msg, field="evidence")
        pairs.append((title, url))
    return pairs


@dataclass
class ChangePackageService:
    """Read and edit one collaborative's driver diagram in the caller's transaction."""

    db: Session
    collaborative_id: int

    def package(self) -> ChangePackage | None:
        """The package, if one has been written."""
        return self.db.scalar(
            sa.select(ChangePackage).where(ChangePackage.collaborative_id == self.collaborative_id)
        )

    def _audit(
        self, action: str, actor: User | str | None, object_id: int, **details: object
    ) -> None:
        record(
            self.db,
            action,
            actor=actor,
            object_type="change_package",
            object_id=object_id,
            collaborative_id=self.collaborative_id,
            details=dict(details),
        )

    def _touch(self, package: ChangePackage) -> None:
        package.updated_at = utcnow()

    def save_aim(
        self, *, aim: str, description: str = "", actor: User | str | None
    ) -> ChangePackage:
        """Write the aim (creating the package on first use)."""
        aim = required(aim, field="aim", label="aim", max_chars=1000)
        description = screened(description, field="description", label="description")
        package = self.package()
        if package is None:
            package = ChangePackage(collaborative_id=self.collaborative_id, aim=aim)
            self.db.add(package)
        package.aim, package.description = aim, description
        self._touch(package)
        self.db.flush()
        self._audit("change_package.aim_saved", actor, package.id, aim=aim)
        return package

    def _required_package(self) -> ChangePackage:
        package = self.package()
        if package is None:
            msg = "write the aim first: drivers and change ideas hang from it"
            raise ImprovementError(msg, field="aim")
        return package

    def driver(self, driver_id: int) -> Driver:
        """One of this package's drivers, else an error."""
        package = self._required_package()
        driver = self.db.get(Driver, driver_id)
        if driver is None or driver.package_id != package.id:
            msg = "unknown driver"
            raise ImprovementError(msg, field="driver")
        return driver

    def save_driver(
        self,
        *,
        title: str,
        description: str = "",
        parent_id: int | None = None,
        driver_id: int | None = None,
        actor: User | str | None,
    ) -> Driver:
        """Add a primary driver (no parent) or a secondary one, or edit one (``driver_id``)."""
        package = self._required_package()
        title = required(title, field="title", label="driver", max_chars=MAX_TITLE)
        description = screened(description, field="description", label="description")
        if parent_id is not None:
            parent = self.driver(parent_id)
            if parent.parent_id is not None:
                msg = "a secondary driver hangs from a primary driver, not from another secondary"
                raise ImprovementError(msg, field="parent")
        if driver_id is None:
            siblings = self.db.scalar(
                sa.select(sa.func.count(Driver.id)).where(
                    Driver.package_id == package.id,
                    Driver.parent_id.is_(None)
                    if parent_id is None
                    else Driver.parent_id == parent_id,
                )
            )
            driver = Driver(package_id=package.id, parent_id=parent_id, position=siblings or 0)
            self.db.add(driver)
        else:
            driver = self.driver(driver_id)
            if (driver.parent_id is None) != (parent_id is None):
                msg = "a driver stays primary or secondary; add a new one instead"
                raise ImprovementError(msg, field="parent")
            driver.parent_id = parent_id
        driver.title, driver.description = title, description
        self._touch(package)
        self.db.flush()
        action = (
            "change_package.driver_added" if driver_id is None else "change_package.driver_edited"
        )
        self._audit(action, actor, driver.id, title=title, parent_id=parent_id)
        return driver

    def idea(self, idea_id: int) -> ChangeIdea:
        """One of this package's change ideas, else an error."""
        package = self._required_package()
        idea = self.db.get(ChangeIdea, idea_id)
        if idea is None or idea.package_id != package.id:
            msg = "unknown change idea"
            raise ImprovementError(msg, field="change_idea")
        return idea

    def save_idea(
        self,
        *,
        driver_id: int,
        code: str,
        title: str,
        description: str = "",
        evidence: list[tuple[str, str]] | None = None,
        idea_id: int | None = None,
        actor: User | str | None,
    ) -> ChangeIdea:
        """Add or edit a change idea under a secondary driver, with its evidence links."""
        package = self._required_package()
        driver = self.driver(driver_id)
        if driver.parent_id is None:
            msg = "change ideas hang from a secondary driver"
            raise ImprovementError(msg, field="driver")
        code = required(code, field="code", label="code", max_chars=MAX_CODE).upper()
        title = required(title, field="title", label="change idea", max_chars=MAX_TITLE)
        description = screened(description, field="description", label="description")
        clash = self.db.scalar(
            sa.select(ChangeIdea.id).where(
                ChangeIdea.package_id == package.id,
                ChangeIdea.code == code,
                ChangeIdea.id != (idea_id or 0),
            )
        )
        if clash is not None:
            msg = f"another change idea already has the code {code}"
            raise ImprovementError(msg, field="code")
        if idea_id is None:
            siblings = self.db.scalar(
                sa.select(sa.func.count(ChangeIdea.id)).where(ChangeIdea.driver_id == driver_id)
            )
            idea = ChangeIdea(package_id=package.id, position=siblings or 0)
            self.db.add(idea)
        else:
            idea = self.idea(idea_id)
        idea.driver_id, idea.code, idea.title, idea.description = (
            driver_id,
            code,
            title,
            description,
        )
        idea.evidence = [ChangeEvidence(title=t, url=u) for t, u in (evidence or [])]
        self._touch(package)
        self.db.flush()
        action = "change_package.idea_added" if idea_id is None else "change_package.idea_edited"
        self._audit(action, actor, idea.id, code=code, title=title, driver_id=driver_id)
        return idea

    def diagram(self) -> Diagram:
        """The whole tree, ordered as the coordinators entered it."""
        package = self.package()
        if package is None:
            return Diagram("", "", (), None)
        drivers = list(
            self.db.scalars(
                sa.select(Driver)
                .where(Driver.package_id == package.id)
                .order_by(Driver.position, Driver.id)
            )
        )
        ideas = list(
            self.db.scalars(
                sa.select(ChangeIdea)
                .where(ChangeIdea.package_id == package.id)
                .order_by(ChangeIdea.position, ChangeIdea.id)
            )
        )
        by_driver: dict[int, list[IdeaView]] = {}
        for idea in ideas:
            by_driver.setdefault(idea.driver_id, []).append(
                IdeaView(
                    idea.id,
                    idea.code,
                    idea.title,
                    idea.description,
                    tuple(EvidenceView(e.title, e.url) for e in idea.evidence),
                )
            )
        secondaries: dict[int, list[DriverView]] = {}
        for d in drivers:
            if d.parent_id is not None:
                secondaries.setdefault(d.parent_id, []).append(
                    DriverView(d.id, d.title, d.description, ideas=tuple(by_driver.get(d.id, ())))
                )
        primaries = tuple(
            DriverView(d.id, d.title, d.description, children=tuple(secondaries.get(d.id, ())))
            for d in drivers
            if d.parent_id is None
        )
        return Diagram(package.aim, package.description, primaries, package.updated_at)
