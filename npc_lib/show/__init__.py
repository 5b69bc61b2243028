"""Figures, widgets and the notebooks' report helpers (banners, tables, glue).

The matplotlib backend is chosen here, once, before any figure module imports pyplot: figures are
drawn off-screen (Agg) and shown as images by :func:`npc_lib.show.report.show`, in a batch run and in
JupyterLab alike.
"""
import matplotlib

matplotlib.use("Agg")
