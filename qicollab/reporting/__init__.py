"""Reporting: dashboards, SVG charts, PDF reports, blinding and small-cell suppression."""
