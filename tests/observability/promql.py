"""Just enough PromQL scanning for the observability tests: the vector
selectors an expression reads (`name{matchers}`, with any range or offset
left off), so each can be checked against a real Prometheus on its own. An
expression can return data while one of its parts matches nothing (`a or b`,
`x unless y`); checking every selector catches a misspelt metric or label
there too."""

import re

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)[a-zA-Z0-9_]*")

# Words that are never metric names: operators, modifiers, aggregations.
_LABEL_LIST_MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LIST_MODIFIERS | {
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}


def _skip_string(expr, i):
    """Index just past the string literal starting at expr[i]."""
    quote, j = expr[i], i + 1
    while j < len(expr) and expr[j] != quote:
        j += 2 if expr[j] == "\\" and quote != "`" else 1
    if j >= len(expr):
        raise ValueError(f"unterminated string in {expr!r}")
    return j + 1


def _close(expr, i, opening, closing):
    """Index just past the bracket matching expr[i] (strings skipped)."""
    depth, j = 0, i
    while j < len(expr):
        c = expr[j]
        if c in "\"'`":
            j = _skip_string(expr, j)
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ValueError(f"unbalanced {opening}{closing} in {expr!r}")


def selectors(expr):
    """The vector selectors of `expr`, in order, as PromQL text."""
    out, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "#":
            nl = expr.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif c == "[":
            i = _close(expr, i, "[", "]")
        elif c == "{":
            end = _close(expr, i, "{", "}")
            out.append(expr[i:end])
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            i += _NUMBER.match(expr, i).end() - i or 1
        elif _IDENT.match(expr, i):
            word = _IDENT.match(expr, i).group(0)
            j = i + len(word)
            k = j
            while k < n and expr[k].isspace():
                k += 1
            if word in _LABEL_LIST_MODIFIERS:
                i = _close(expr, k, "(", ")") if k < n and expr[k] == "(" else j
            elif word in _KEYWORDS or (k < n and expr[k] == "("):
                i = j  # an operator, an aggregation or a function call
            elif k < n and expr[k] == "{":
                end = _close(expr, k, "{", "}")
                out.append(word + expr[k:end])
                i = end
            else:
                out.append(word)
                i = j
        else:
            i += 1
    return out
