"""The pure statistics core.

Nothing in this package imports Pyramid or SQLAlchemy: every function takes arrays or data frames
and returns small frozen dataclasses that name the method and settings that produced them, so the
numbers can be checked against published values in isolation and reused from a notebook.
"""
