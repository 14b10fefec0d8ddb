"""Find a program's arguments inside a shell script (static pods often start etcd via `sh -c`)."""

from __future__ import annotations

import shlex

_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}


def find_invocation(script: str, program: str) -> list[str] | None:
    """Arguments of the last command in `script` whose executable is named `program`, or None.

    Words are split as the shell would (quotes, backslash-newline), variables are left as written.
    Wrappers such as `exec nice -n -19 ionice -c2 -n0 etcd ...` are seen through: the search is for
    the word whose basename is `program`, followed by words that start with a dash.
    """
    lexer = shlex.shlex(script.replace("\\\n", " "), posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:
        return None
    found: list[str] | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word.rsplit("/", 1)[-1] == program and (i + 1 >= len(words) or words[i + 1].startswith("-")
                                                   or words[i + 1] in _SEPARATORS):
            args: list[str] = []
            j = i + 1
            while j < len(words) and words[j] not in _SEPARATORS:
                args.append(words[j])
                j += 1
            found = args
            i = j
        i += 1
    return found
