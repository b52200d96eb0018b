#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""md2man: the man pages from docs/vmcgd.8.md and docs/vmcgctl.1.md.

Exactly the subset of pandoc's man-page Markdown that those two files use,
so that the build needs python3 and no pandoc:

- the title line `% NAME(SECTION) SOURCE | MANUAL` -> .TH;
- `# HEADING` -> .SH, `## HEADING` -> .SS;
- paragraphs -> .PP;
- definition lists, a term and `:   definition` (more paragraphs of the
  same definition indented four spaces) -> .TP (and .IP). A term may wrap
  over several lines (vmcgctl.1.md's KNOBS does; pandoc would make all but
  the last line a paragraph of their own);
- bullet lists (`- ` or `* `, continuation lines indented) -> .IP \\(bu;
- fenced code blocks -> .nf/.fi, indented;
- two-column pipe tables (header and separator row, then rows) -> .TP, the
  first cell as the tag: no tbl preprocessor, so `groff -man` alone and
  `man -l` render them the same;
- inline **bold**, *italic* and `code` (bold, as man-pages(7) shows
  literals).

Anything else (ordered lists, links, block quotes, level-3 headings, HTML)
is an error naming the line, never passed through wrongly. Escaping: a
backslash becomes \\e, a line that would start with . or ' gets \\&, and
characters outside ASCII become \\[uXXXX] (groff reads its input as Latin-1
without preconv). A hyphen becomes \\- (ASCII on a terminal, copyable) in
code, bold and italic text and where it starts a word (options, the NAME
line's dash, negative numbers); inside a word ("cgroup-v2") it stays a
hyphen.

Usage: md2man.py [--source-version V] INPUT.md [-o OUTPUT]
"""

import argparse
import os
import re
import sys


class Error(Exception):
    """Input outside the supported subset, with the line it is on."""

    def __init__(self, lineno, msg):
        super().__init__("line %d: %s" % (lineno, msg))
        self.lineno = lineno


TITLE = re.compile(r"^% *([^ ()]+)\(([0-9][A-Za-z0-9]*)\)(.*)$")
FENCE = re.compile(r"^```[A-Za-z0-9_+-]*\s*$")
BULLET = re.compile(r"^[-*] +(.*)$")
DEFINITION = re.compile(r"^: +(.*)$")
TABLE_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
# Tried in this order at each position: a code span, then bold, then italic.
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*(\S(?:[^*]*?\S)?)\*")
UNSUPPORTED = [
    (re.compile(r"^#{3,} "), "headings below level 2"),
    (re.compile(r"^ {0,3}> ?"), "block quotes"),
    (re.compile(r"^ {0,3}[0-9]+[.)] "), "ordered lists"),
    (re.compile(r"\]\(|\]\["), "links"),
    (re.compile(r"^ {0,3}<[A-Za-z/!]"), "HTML"),
]

# In code, these would come out typographic (curly quotes, a minus sign)
# or as accents on a UTF-8 terminal; man-pages(7) names the escapes.
CODE_CHARS = {"-": r"\-", "'": r"\(aq", "`": r"\(ga", "~": r"\(ti", "^": r"\(ha"}


def escape(text, literal):
    """Text for a roff text line; literal: code, bold or italic."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append(r"\e")
        elif ord(ch) > 126:
            out.append(r"\[u%04X]" % ord(ch))
        elif literal and ch in CODE_CHARS:
            out.append(CODE_CHARS[ch])
        elif ch == "-" and (i == 0 or not text[i - 1].isalnum() or text[i + 1:i + 2] == "-"):
            out.append(r"\-")
        else:
            out.append(ch)
    return "".join(out)


def inline(text):
    """One line of Markdown text with inline markup, as roff."""
    out = []
    pos = 0
    for m in INLINE.finditer(text):
        out.append(escape(text[pos:m.start()], False))
        code, bold, italic = m.groups()
        if italic is not None:
            out.append(r"\fI" + escape(italic, True) + r"\fR")
        else:
            out.append(r"\fB" + escape(code if code is not None else bold, True) + r"\fR")
        pos = m.end()
    out.append(escape(text[pos:], False))
    return "".join(out)


def text_line(roff):
    """A roff text line that no formatter takes for a request."""
    return r"\&" + roff if roff[:1] in (".", "'") else roff


def quote_arg(arg):
    """A macro argument: quoted, its own double quotes doubled (groff)."""
    return '"' + escape(arg, False).replace('"', '""') + '"'


def title(line, source_version):
    m = TITLE.match(line)
    if not m:
        raise Error(1, "the first line must be the title, '% NAME(SECTION) SOURCE | MANUAL'")
    name, section, rest = m.groups()
    source, _, manual = rest.partition("|")
    source = source.strip()
    if source_version:
        source = (source + " " + source_version).strip()
    return ".TH %s %s %s %s %s" % (quote_arg(name), quote_arg(section), '""', quote_arg(source),
                                   quote_arg(manual.strip()))


class Converter:
    def __init__(self, lines):
        self.lines = lines
        self.i = 1  # after the title
        self.out = []
        self.after_heading = False

    def peek(self, k=0):
        j = self.i + k
        return self.lines[j] if j < len(self.lines) else None

    def fail(self, msg, k=0):
        raise Error(self.i + k + 1, msg)

    def emit_text(self, md_lines):
        for line in md_lines:
            line = line.strip()
            if line:
                self.out.append(text_line(inline(line)))

    def paragraph_macro(self):
        # .PP right after .SH/.SS only adds nothing; leave it out.
        if not self.after_heading:
            self.out.append(".PP")
        self.after_heading = False

    def check_supported(self, line):
        for pattern, what in UNSUPPORTED:
            if pattern.search(line):
                self.fail("%s are not supported by md2man.py" % what)

    def starts_block(self, line):
        return (line.startswith("#") or FENCE.match(line) or line.startswith("|")
                or BULLET.match(line) or DEFINITION.match(line))

    def run(self):
        while self.peek() is not None:
            line = self.peek()
            if not line.strip():
                self.i += 1
                continue
            self.check_supported(line)
            if line.startswith("## "):
                self.out.append(".SS " + quote_arg(line[3:].strip()))
                self.after_heading = True
                self.i += 1
            elif line.startswith("# "):
                self.out.append(".SH " + quote_arg(line[2:].strip()))
                self.after_heading = True
                self.i += 1
            elif line.startswith("#"):
                self.fail("a heading needs a space after its '#'")
            elif FENCE.match(line):
                self.code_block(indent=0)
            elif line.startswith("|"):
                self.table()
            elif BULLET.match(line):
                self.bullets()
            elif line.startswith(" "):
                self.fail("an indented block outside a list (indented code is not supported; "
                          "use a fence)")
            elif DEFINITION.match(line):
                self.fail("a definition without a term line before it")
            else:
                self.paragraph()
        return "\n".join(self.out) + "\n"

    def paragraph(self):
        lines = []
        while self.peek() is not None and self.peek().strip():
            if lines and self.starts_block(self.peek()):
                break
            self.check_supported(self.peek())
            lines.append(self.peek())
            self.i += 1
        if self.peek() is not None and DEFINITION.match(self.peek()):
            self.definition(lines)
            return
        self.paragraph_macro()
        self.emit_text(lines)

    def code_block(self, indent):
        start = self.i
        self.i += 1
        body = []
        while True:
            line = self.peek()
            if line is None:
                raise Error(start + 1, "a code block that is never closed")
            if line[:indent].strip():
                self.fail("a line of a code block inside a list must be indented %d spaces" % indent)
            line = line[indent:]
            self.i += 1
            if line.rstrip() == "```":
                break
            body.append(line.rstrip())
        # .IP: indented and set off by vertical space, also inside a list.
        self.out.append(".IP" if indent == 0 else ".IP \"\" %d" % 4)
        self.after_heading = False
        self.out.append(".nf")
        for line in body:
            # A blank line in no-fill mode is a blank output line, but some
            # linters flag it; \& says so explicitly.
            self.out.append(text_line(escape(line, True)) if line else r"\&")
        self.out.append(".fi")

    def definition(self, term):
        self.out.append(".TP")
        self.after_heading = False
        # .TP takes one line as its tag: a term that wraps is joined.
        self.out.append(text_line(inline(" ".join(t.strip() for t in term))))
        first = DEFINITION.match(self.peek()).group(1)
        self.i += 1
        lines = [first]
        while self.peek() is not None and self.peek().strip() and not self.starts_block(self.peek()):
            self.check_supported(self.peek())
            lines.append(self.peek())
            self.i += 1
        self.emit_text(lines)
        # More paragraphs of the same definition, indented four spaces.
        while (self.peek() is not None and not self.peek().strip() and self.peek(1) is not None
               and self.peek(1).startswith("    ") and self.peek(1).strip()):
            self.i += 1
            if FENCE.match(self.peek().strip()):
                self.code_block(indent=4)
                continue
            self.out.append(".IP")
            lines = []
            while self.peek() is not None and self.peek().startswith("    "):
                self.check_supported(self.peek()[4:])
                lines.append(self.peek())
                self.i += 1
            self.emit_text(lines)

    def bullets(self):
        self.after_heading = False
        while self.peek() is not None:
            m = BULLET.match(self.peek())
            if not m:
                break
            self.out.append(r".IP \(bu 2")
            lines = [m.group(1)]
            self.i += 1
            while (self.peek() is not None and self.peek().strip() and not BULLET.match(self.peek())
                   and not self.peek().startswith("#") and not FENCE.match(self.peek())):
                self.check_supported(self.peek())
                lines.append(self.peek())
                self.i += 1
            self.emit_text(lines)
            # A blank line between items keeps the list; before anything else it ends it.
            if (self.peek() is not None and not self.peek().strip() and self.peek(1) is not None
                    and BULLET.match(self.peek(1))):
                self.i += 1

    def table(self):
        rows = []
        start = self.i
        while self.peek() is not None and self.peek().startswith("|"):
            rows.append(self.peek())
            self.i += 1
        if len(rows) < 2 or not TABLE_SEPARATOR.match(rows[1]):
            raise Error(start + 2, "a table needs a header row and a separator row (| --- |)")
        self.after_heading = False
        for k, row in enumerate(rows[2:], start + 3):
            if not row.rstrip().endswith("|"):
                raise Error(k, "a table row must end with '|'")
            cells = [c.strip() for c in row.strip()[1:-1].split("|")]
            if len(cells) != 2:
                raise Error(k, "only two-column tables are supported (%d cells)" % len(cells))
            self.out.append(".TP")
            self.out.append(text_line(inline(cells[0])))
            self.out.append(text_line(inline(cells[1])))


def convert(text, source_name="", source_version=""):
    """The man page (roff, ASCII only) for the Markdown text; raises Error."""
    lines = text.split("\n")
    head = [title(lines[0], source_version)]
    if source_name:
        head.insert(0, r'.\" Generated by md2man.py from %s: edit that, not this.' % source_name)
    # Left-justified and unhyphenated: options and paths must not be split.
    head += [".ad l", ".nh"]
    return "\n".join(head) + "\n" + Converter(lines).run()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("-o", "--output", help="default: standard output")
    ap.add_argument("--source-version", default="",
                    help="appended to the title line's SOURCE (the footer), e.g. 0.1.0")
    args = ap.parse_args(argv)
    with open(args.input, encoding="utf-8") as f:
        text = f.read()
    try:
        roff = convert(text, os.path.basename(args.input), args.source_version)
    except Error as e:
        print("md2man.py: %s: %s" % (args.input, e), file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", encoding="ascii") as f:
            f.write(roff)
    else:
        sys.stdout.write(roff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
