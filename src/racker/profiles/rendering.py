"""jinja2 templates with file/line errors (layer 1: pure once the files are read).

Every template is compiled with StrictUndefined, so a misspelt variable is an error, not an
empty string. An error carries the template's file and line: jinja2 rewrites tracebacks so
frames of template code have the template's file name and line, which ``locate`` reads back.
Templates written inline in a profile's YAML (kernel, args) are compiled under a private
name that maps back to the YAML file and the line of the value.
"""

from __future__ import annotations

import base64
import json
import shlex
import traceback
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.runtime

from racker.errors import Problem, RackerError


class TemplateError(RackerError):
    """A template failed to render (at load time these become a ConfigError)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem), problem.hint)
        self.problem = problem


def data_url(value: str | bytes) -> str:
    """An RFC 2397 data URL (base64), the form Ignition accepts for inline file contents."""
    raw = value.encode() if isinstance(value, str) else value
    return "data:;base64," + base64.b64encode(raw).decode("ascii")


def data_url_plain(value: str) -> str:
    """A percent-encoded RFC 2397 data URL: readable in the rendered JSON for short texts."""
    return "data:," + urllib.parse.quote(value, safe="")


def _json(value: object) -> str:
    """JSON text (also valid YAML): how templates insert values into Ignition YAML."""
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, sort_keys=True)


def _shquote(value: object) -> str:
    return shlex.quote(str(value))


@dataclass(frozen=True)
class Source:
    """Where a compiled template came from, to point errors at the right line."""

    file: str
    line_offset: int = 0  # added to jinja's line (inline templates start mid-file)


# Template nodes that write to the render's context (``{% set %}``, macros, imports...).
_CONTEXT_WRITERS = (
    jinja2.nodes.Assign,
    jinja2.nodes.AssignBlock,
    jinja2.nodes.Macro,
    jinja2.nodes.Import,
    jinja2.nodes.FromImport,
    jinja2.nodes.Block,
    jinja2.nodes.Extends,
)


class Templates:
    """One jinja2 environment per catalog: file templates plus inline ones from YAML."""

    def __init__(self, directory: Path | None) -> None:
        loader = jinja2.FileSystemLoader(str(directory)) if directory is not None else None
        self.env = jinja2.Environment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - we render iPXE/shell/YAML, not HTML
            keep_trailing_newline=True,
            trim_blocks=True,  # a line holding only {% if %} leaves no blank line behind
            lstrip_blocks=True,
        )
        self.env.filters["data_url"] = data_url
        self.env.filters["data_url_plain"] = data_url_plain
        self.env.filters["shquote"] = _shquote
        self.env.filters["json"] = _json
        self.sources: dict[str, Source] = {}
        self.directory = directory
        self._global_vars: dict[str, Any] | None = None
        # profile_ignition(variables, profile id): set by the Catalog these templates serve.
        self.profile_ignition: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None
        helpers = self._helpers()
        self.env.globals.update(helpers)
        self.helper_names = frozenset(helpers)  # what templates call to render other templates
        # Inline templates' source, by template: the values of one YAML flow list share a line,
        # so a name (file:line) can stand for several templates.
        self._inline_text: dict[jinja2.Template, str] = {}
        self._context_free: dict[jinja2.Template, bool] = {}  # _leaves_context_alone's answers

    def inline(self, text: str, file: str, line: int) -> jinja2.Template:
        """Compile a template written as a YAML value at ``file``:``line``."""
        name = f"{file}:{line}"
        self.sources[name] = Source(file, line - 1)
        try:
            code = self.env.compile(text, name=name, filename=name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                Problem(file, line + (exc.lineno or 1) - 1, f"template syntax: {exc.message}")
            ) from None
        template = self.env.template_class.from_code(self.env, code, dict(self._globals()))
        self._inline_text[template] = text
        return template

    def _helpers(self) -> dict[str, Any]:
        """Functions templates call. Each renders with the calling template's own variables,
        which jinja2 passes in (``pass_context``): no functions made per render, so no
        reference cycle per render between them and the variables that hold them (18 objects
        of cyclic garbage a render, left to the garbage collector, before)."""

        @jinja2.pass_context
        def render_file(context: jinja2.runtime.Context, name: str) -> str:
            """Render ``templates/<name>`` with the same variables."""
            template = self.file(name, "<template>", 0)
            return self.render(template, context.parent, f"template {name}")

        @jinja2.pass_context
        def file_data_url(context: jinja2.runtime.Context, name: str) -> str:
            """``render_file`` as a data URL."""
            return data_url(render_file(context, name))

        @jinja2.pass_context
        def profile_ignition(context: jinja2.runtime.Context, name: str) -> dict[str, Any]:
            """Another profile's Ignition, for the same machine."""
            if self.profile_ignition is None:
                raise KeyError("profile_ignition: no catalog")
            return self.profile_ignition(context.parent, name)

        return {
            "file_data_url": file_data_url,
            "render_file": render_file,
            "profile_ignition": profile_ignition,
        }

    def _globals(self) -> dict[str, Any]:
        # jinja2 hands every template a ChainMap of the environment's globals and copies it
        # into each render's context; iterating a ChainMap is slow (most of an /ipxe render's
        # time, docs/benchmarks.md). A plain dict of the same (never changed) globals is equal.
        if self._global_vars is None:
            self._global_vars = dict(self.env.make_globals(None))
        return self._global_vars

    def file(self, name: str, referenced_from: str, line: int) -> jinja2.Template:
        """Load ``templates/<name>``; a missing file is reported where it is referenced."""
        try:
            template = self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                Problem(exc.filename or name, exc.lineno, f"template syntax: {exc.message}")
            ) from None
        except jinja2.TemplateNotFound:
            raise TemplateError(
                Problem(
                    referenced_from,
                    line,
                    f"template {name!r} not found",
                    f"put it in {self.directory}" if self.directory else None,
                )
            ) from None
        if not isinstance(template.globals, dict):
            template.globals = dict(self._globals())  # see _globals (jinja caches the template)
        if template.filename:
            self.sources.setdefault(template.filename, Source(template.filename))
        return template

    def variables_read(self, template: jinja2.Template) -> frozenset[str] | None:
        """The variables ``template`` (and what it includes or imports) reads; None when that
        cannot be known from its text (a template named by a variable)."""
        text = self._inline_text.get(template)
        if text is None:
            return self._variables_read(template.name or "", set())
        return self._names_in(text, set())

    def _variables_read(self, name: str, seen: set[str]) -> frozenset[str] | None:
        """What the file template ``name`` reads."""
        if name in seen:
            return frozenset()
        seen.add(name)
        if self.env.loader is None:
            return None
        try:
            text = self.env.loader.get_source(self.env, name)[0]
        except jinja2.TemplateNotFound:
            return None
        return self._names_in(text, seen)

    def _names_in(self, text: str, seen: set[str]) -> frozenset[str] | None:
        ast = self.env.parse(text)
        names = set(jinja2.meta.find_undeclared_variables(ast))
        # jinja2.meta leaves out the environment's globals; the helpers among them count.
        names |= {
            node.name
            for node in ast.find_all(jinja2.nodes.Name)
            if node.ctx == "load" and node.name in self.helper_names
        }
        for other in jinja2.meta.find_referenced_templates(ast):
            found = None if other is None else self._variables_read(other, seen)
            if found is None:
                return None
            names |= found
        return frozenset(names)

    def render(self, template: jinja2.Template, variables: Mapping[str, Any], what: str) -> str:
        return self.render_all((template,), variables, what)[0]

    def render_all(
        self, templates: Sequence[jinja2.Template], variables: Mapping[str, Any], what: str
    ) -> list[str]:
        """Render templates with the same variables, sharing one copy of them.

        What ``Template.render`` does, minus its per-call copy of globals + variables (most of
        the cost of the short kernel/initrd/argument templates of a boot section). Errors
        become a ``TemplateError`` naming the failing template's file and line.
        """
        env = self.env
        parent = {**self._globals(), **variables}
        out: list[str] = []
        template: jinja2.Template | None = None
        shared: jinja2.runtime.Context | None = None
        try:
            for template in templates:
                # A jinja2 context is not free to make; a template that cannot write to it
                # (no set, macro, import, block) leaves it as it found it for the next one.
                ctx = shared
                if ctx is None or template.blocks:
                    ctx = env.context_class(
                        env, parent, template.name, template.blocks, globals=template.globals
                    )
                try:
                    out.append(env.concat(template.root_render_func(ctx)))
                except Exception:
                    env.handle_exception()  # re-raises with the template's own line numbers
                shared = ctx if self._leaves_context_alone(template) else None
        except TemplateError:
            raise
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
            # TypeError & co.: errors inside filters/functions (e.g. a failing nested render).
            assert template is not None  # only the loop raises
            raise TemplateError(self.locate(exc, template, what)) from None
        return out

    def _leaves_context_alone(self, template: jinja2.Template) -> bool:
        """True when rendering ``template`` cannot change its context's variables: its text
        has no assignment, macro, import, block or extends (what jinja2 exports to it)."""
        known = self._context_free.get(template)
        if known is None:
            text = self._inline_text.get(template)
            if text is None and self.env.loader is not None and template.name:
                try:
                    text = self.env.loader.get_source(self.env, template.name)[0]
                except jinja2.TemplateNotFound:
                    text = None
            known = text is not None and not any(
                True for _ in self.env.parse(text).find_all(_CONTEXT_WRITERS)
            )
            self._context_free[template] = known
        return known

    def locate(self, exc: BaseException, template: jinja2.Template, what: str) -> Problem:
        file, line = template.filename or "<template>", None
        source = self.sources.get(file)
        if source is not None:
            file = source.file
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            known = self.sources.get(frame.filename)
            if known is not None:
                file, line = known.file, (frame.lineno or 1) + known.line_offset
                break
        message = getattr(exc, "message", None) or str(exc)
        return Problem(
            file,
            line,
            f"{what}: {message}",
            "see docs/profiles.md for the variables templates can use",
        )
