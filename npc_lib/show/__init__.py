"""Figures, widgets and the notebooks' report helpers (banners, tables, glue)."""
