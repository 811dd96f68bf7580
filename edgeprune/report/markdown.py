"""report.md: the summary table first, then one section per topic; plain GitHub-flavoured Markdown."""
from __future__ import annotations

from edgeprune.report.sections import LEGEND, Section, Table, headline, sections, summary


def md_table(t: Table) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in t.header) + " |",
             "|" + "|".join("---:" if i in t.right else ":---" for i in range(len(t.header))) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in t.rows]
    return "\n".join(lines)


def md_section(s: Section) -> str:
    parts = [f"## {s.title}"]
    if s.text:
        parts.append(s.text)
    parts += [md_table(t) for t in s.tables]
    if s.bullets:
        parts.append("\n".join(f"- {b}" for b in s.bullets))
    return "\n\n".join(parts)


def render_markdown(report: dict) -> str:
    out = [f"# edgeprune report: {report['run']['name']}", headline(report), md_table(summary(report)), LEGEND]
    out += [md_section(s) for s in sections(report)]
    return "\n\n".join(out) + "\n"
