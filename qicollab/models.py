"""Import every domain's models so the metadata is complete (Alembic, tests, scripts)."""

from qicollab.accounts import models as accounts
from qicollab.audit import models as audit
from qicollab.benchmarking import models as benchmarking
from qicollab.cycles import models as cycles
from qicollab.db import Base
from qicollab.improvement import models as improvement
from qicollab.jobs import models as jobs
from qicollab.measures import models as measures
from qicollab.members import models as members
from qicollab.notifications import models as notifications
from qicollab.reporting import models as reporting
from qicollab.schedule import calendar as schedule_calendar
from qicollab.schedule import periods as schedule_periods
from qicollab.storage import models as storage
from qicollab.submissions import models as submissions

__all__ = [
    "Base",
    "accounts",
    "audit",
    "benchmarking",
    "cycles",
    "improvement",
    "jobs",
    "measures",
    "members",
    "notifications",
    "reporting",
    "schedule_calendar",
    "schedule_periods",
    "storage",
    "submissions",
]
