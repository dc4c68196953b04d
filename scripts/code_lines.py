"""Code lines of Python files, as the architecture notes count them:
docstrings, comments and blank lines left out; split into lines inside
functions (hand-written logic), imports, and the rest (declarations:
classes' fields, constants, annotated types).

    python scripts/code_lines.py dirigent/config.py
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize

SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


def counts(source: str) -> dict[str, int]:
    tree = ast.parse(source)
    docs: set[int] = set()
    functions: set[int] = set()
    imports: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if first and isinstance(value, ast.Constant) and isinstance(value.value, str):
                docs.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            functions.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in SKIPPED or tok.type == tokenize.ENDMARKER:
            continue
        code.update(line for line in range(tok.start[0], tok.end[0] + 1) if line not in docs)
    return {
        "code": len(code),
        "functions": len(code & functions),
        "imports": len(code & imports),
        "declarations": len(code - functions - imports),
    }


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as fh:
            figures = counts(fh.read())
        print(path, " ".join(f"{k} {v}" for k, v in figures.items()))
