"""SVG charts for the portal and the printed reports: one drawing function per chart kind."""
