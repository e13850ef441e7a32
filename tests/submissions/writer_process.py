"""A writer process for the kill test: commits a patient-level file, optionally pausing midway.

    python -m tests.submissions.writer_process URL MEMBER_ID MEASURE_ID ROWS [pause]

With ``pause`` it inserts half of the rows inside the open transaction, prints ``MIDWAY`` and
waits to be killed; otherwise it commits and prints ``DONE``.
"""

from __future__ import annotations

import sys
import time

from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.submissions import services
from qicollab.submissions.services import SubmissionService
from tests.submissions.conftest import NOW, patient_csv, patient_rows


def main() -> None:
    url, member_id, measure_id, rows = sys.argv[1:5]
    pause = len(sys.argv) > 5 and sys.argv[5] == "pause"
    if pause:
        original = services.insert_patient_table

        def halfway(connection, table):
            original(connection, table.slice(0, table.num_rows // 2))
            print("MIDWAY", flush=True)  # noqa: T201 - the parent test reads it
            time.sleep(600)

        services.insert_patient_table = halfway
    engine = create_engine_from_settings({"sqlalchemy.url": url})
    session = get_session_factory(engine)()
    service = SubmissionService(session, clock=lambda: NOW)
    member = session.get(Member, int(member_id))
    measure = session.get(Measure, int(measure_id))
    print("STARTED", flush=True)  # noqa: T201
    service.commit(
        member=member,
        measure=measure,
        data=patient_csv(*patient_rows(int(rows))),
        filename="kill.csv",
        actor="writer",
    )
    session.commit()
    print("DONE", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
