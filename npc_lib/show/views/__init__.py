"""Interactive views for the static book: Bokeh documents embedded in a notebook's HTML output.

Each view is the book face of an explorer (:mod:`npc_lib.show.widgets` keeps the JupyterLab face): the data
it can show are computed in Python ahead of time and the controls switch between them in the browser, so a
reader explores without a kernel. BokehJS comes from the bokeh wheel and is written into the built book's
``_static`` (``book/_ext/interactive_views.py``); no page loads anything from the network.
"""
from npc_lib.show.views.embed import View, bokeh_js_files

__all__ = ["View", "bokeh_js_files"]
