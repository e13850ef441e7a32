"""schedule domain: reporting periods, the cycles' calendar and submission windows.

The lowest layer of the workflow: ``submissions`` asks it whether a period takes data now and
``cycles`` drives the calendar it holds, so neither has to import the other.
"""
