"""Sphinx extension: a figure glued from another document, with a caption, a label and alt text.

myst-nb's ``glue:figure`` takes its output from the page's own notebook only; the chapters glue the
figures from the executed notebooks. ``glued-figure`` does what ``glue:figure`` does, across documents:

    ```{glued-figure} fig3_roc_image
    :doc: executed/04_evaluate.ipynb
    :name: fig-3-image
    :alt: Eight panels of ROC curves ...

    **Fig. 3a** ... caption.
    ```

The output is pasted when the glue references are resolved; the alt text then goes onto its image.
"""
from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

ALT = "glued_alt"


class GluedFigure(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = False
    has_content = True
    option_spec = {"doc": directives.unchanged_required, "name": directives.unchanged,
                   "alt": directives.unchanged, "figclass": directives.class_option}

    def run(self):
        from myst_nb.ext.glue.utils import PendingGlueReferenceError, create_pending_glue_ref
        try:
            ref = create_pending_glue_ref(self.state.document, self.get_source_info()[0], self.lineno,
                                          self.options["doc"], self.arguments[0])
        except (PendingGlueReferenceError, KeyError) as exc:
            return [self.state.document.reporter.warning(f"glued-figure: {exc}", line=self.lineno)]
        figure = nodes.figure("", ref, classes=["glued-figure", *self.options.get("figclass", [])])
        figure[ALT] = self.options.get("alt", "")
        self.set_source_info(figure)
        self.add_name(figure)
        if self.content:
            holder = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, holder)
            first = holder[0]
            if isinstance(first, nodes.paragraph):
                caption = nodes.caption(first.rawsource, "", *first.children)
                caption.source, caption.line = first.source, first.line
                figure += caption
            if len(holder) > 1:
                figure += nodes.legend("", *holder[1:])
        return [figure]


class GluedFigureAlt(SphinxPostTransform):
    """After the glue references are pasted (priority 5), give each glued figure's image its alt text."""

    default_priority = 6

    def apply(self, **kwargs):
        for figure in self.document.findall(nodes.figure):
            alt = figure.get(ALT)
            if alt:
                for image in figure.findall(nodes.image):
                    image["alt"] = alt


def _paper_numbers(app, config) -> None:
    """The book's figures carry the paper's own numbers in their captions (Fig. 3a ... Fig. 8), so Sphinx's
    automatic figure numbers stay off (sphinx-jupyterbook-latex switches them on whatever _config.yml says)."""
    config.numfig = False


def setup(app):
    app.connect("config-inited", _paper_numbers, priority=900)
    app.add_directive("glued-figure", GluedFigure)
    app.add_post_transform(GluedFigureAlt)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
