"""What the LaTeX parser would compute while it reads an answer, judged from the text alone.

math-verify's LaTeX parser (latex2sympy2_extended) evaluates some constructs as it builds the
tree, before `expression_cost` has a tree to walk: `\\binom` of two numbers (sympy's binomial is
eager; `\\binom{1000000}{500000}` spent 53 s inside the parser), `\\Gamma` of a number (a
factorial), `\\gcd` and `\\lcm` (their arguments are `nsimplify`d, so `\\gcd(9^{9^{9}}, 6)` builds
a billion-bit integer in one C call), determinants (`\\det` of a matrix, and a `vmatrix`: a 5x5
symbolic one took 2.7 s, a 6x6 ran past 5 s), and the linear algebra of `\\operatorname{...}`
(eigenvalues of a symbolic 4x4 ran past 5 s; `\\operatorname{zeros}(10^5, 10^5)` would fill
memory). So the grader reads the text first and refuses, by these rules:
- `\\binom`, `\\choose`, `\\Gamma`, `\\gcd`, `\\lcm` of numbers: the result's size is bounded from
  the numbers written in the arguments, and must stay within `expression_cost.MAX_BITS` (what
  the tree walk allows any number); an argument holding a power, a factorial or another of these
  has no bound read off the text and is refused. An argument with a variable in it leaves the
  call unevaluated, for the tree walk to cost.
- a determinant of a matrix larger than MAX_DETERMINANT_SIZE square;
- the parser's matrix operations by name (`\\operatorname{eigenvals}`, `rref`, `svd`, `eye`, ...):
  always; no final answer asks the grader to do linear algebra.
"""

from __future__ import annotations

import math
import re

from serve.expression_cost import MAX_BITS

# A symbolic determinant's cost grows with the factorial of its size: 4x4 (24 terms) takes
# ~0.1 s to parse, 5x5 (120) 2.7 s. No real answer is the determinant of a larger matrix.
MAX_DETERMINANT_SIZE = 4

# latex2sympy2_extended's convert_func: matrix operations it performs on its argument.
_MATRIX_OPERATIONS = re.compile(
    r"\\operatorname\s*\{\s*(rank|trace|tr|rref|nullspace|norm|eig|eigen|diagonalize|eigenvals|eigenvalues|eigenvects"
    r"|eigenvectors|svd|SVD|eye|zeros|ones|diag|hstack|vstack|orth|ortho|orthogonal|orthogonalize)\s*\}"
)
_MATRIX = re.compile(r"\\begin\{(\w*matrix|array)\}(.*?)\\end\{\1\}", re.DOTALL)
_DETERMINANT = re.compile(r"\\det(?![A-Za-z])|\\begin\{vmatrix\}")
_BINOMIAL = re.compile(r"\\[dt]?binom(?![A-Za-z])")
_CHOOSE = re.compile(r"\\choose(?![A-Za-z])")
_GAMMA = re.compile(r"\\Gamma(?![A-Za-z])")
_GCD_LCM = re.compile(r"\\(?:gcd|lcm)(?![A-Za-z])|\\operatorname\s*\{\s*(?:gcd|lcm)\s*\}")
# Inside an argument, these build numbers no bound can be read off the text for.
_COMPUTING = re.compile(r"\\(?:[dt]?binom|choose|Gamma|gcd|lcm|operatorname|det|sum|prod)(?![A-Za-z])")
_UNBOUNDED = re.compile(r"\^|(?<!\\)!|" + _COMPUTING.pattern)
# Arithmetic that keeps a value within the product of (n + 1) over the numbers written.
_ARITHMETIC = re.compile(r"\\(?:cdot|times|div|[dt]?frac|sqrt|left|right|[,;:! ]|quad|qquad)(?![A-Za-z])")
_OPENERS = "({["
_CLOSERS = ")}]"


def _closing(text: str, opening: int) -> int:
    """Index of the bracket closing the one at `opening` (any kind, by depth); len(text) if none."""
    depth = 0
    for i in range(opening, len(text)):
        if text[i] in _OPENERS:
            depth += 1
        elif text[i] in _CLOSERS:
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _argument(text: str, start: int) -> tuple[str, int]:
    """The argument that begins at `start` (after spaces and `\\left`): a bracketed group's content,
    or one token; and where it ends."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    if text.startswith("\\left", i):
        i += len("\\left")
    if i < len(text) and text[i] in _OPENERS:
        end = _closing(text, i)
        return text[i + 1 : end], end + 1
    token = re.match(r"\\[A-Za-z]+|\d+|.", text[i:], re.DOTALL)
    return (token.group(0), i + token.end()) if token else ("", i)


def _enclosing(text: str, start: int, end: int) -> tuple[str, str]:
    """What stands left and right of text[start:end] inside its innermost enclosing group
    (`{n \\choose k}`), or in the whole text if none encloses it."""
    depth, left = 0, 0
    for i in range(start - 1, -1, -1):
        if text[i] in _CLOSERS:
            depth += 1
        elif text[i] in _OPENERS:
            if depth == 0:
                left = i + 1
                break
            depth -= 1
    depth, right = 0, len(text)
    for i in range(end, len(text)):
        if text[i] in _OPENERS:
            depth += 1
        elif text[i] in _CLOSERS:
            if depth == 0:
                right = i
                break
            depth -= 1
    return text[left:start], text[end:right]


def argument_bits(argument: str) -> float | None:
    """log2 bound on the value of a numeric argument; inf if no bound can be read off the text;
    None if it holds a variable (the parser then leaves the call unevaluated).

    Written with + - * / and fractions, |value| <= the product of (n + 1) over its numbers n
    (each operation at most multiplies the bound by one of them)."""
    plain = _ARITHMETIC.sub(" ", argument)
    if re.search(r"[A-Za-z]", _COMPUTING.sub(" ", plain)):
        return None  # a variable, or a command standing for one (\pi, \alpha)
    if _UNBOUNDED.search(plain):
        return math.inf
    return sum(math.log2(int(n) + 1) for n in re.findall(r"\d+", plain))


def _power(bits: float) -> float:
    """2^bits, inf past what a float holds."""
    return 2.0**bits if bits < 1000 else math.inf


def _binomial_bits(top: float, bottom: float) -> float:
    """log2 bound of C(n, k) with n < 2^top and k < 2^bottom: C(n, k) < 2^n, and < n^k."""
    return min(_power(top), _power(bottom) * max(top, 1.0))


def _eager_calls(text: str) -> list[tuple[str, list[str]]]:
    """Each call the parser evaluates on numbers (module doc): its command and argument texts."""
    calls = []
    for match in _BINOMIAL.finditer(text):
        top, after = _argument(text, match.end())
        calls.append(("\\binom", [top, _argument(text, after)[0]]))
    for match in _CHOOSE.finditer(text):
        calls.append(("\\choose", list(_enclosing(text, match.start(), match.end()))))
    for match in _GAMMA.finditer(text):
        calls.append(("\\Gamma", [_argument(text, match.end())[0]]))
    for match in _GCD_LCM.finditer(text):
        calls.append(("\\gcd" if "gcd" in match.group(0) else "\\lcm", _argument(text, match.end())[0].split(",")))
    return calls


def _call_bits(command: str, bits: list[float]) -> float:
    """log2 bound on the number the parser computes for `command` of arguments of these sizes."""
    if command in ("\\binom", "\\choose") and len(bits) == 2:
        return _binomial_bits(bits[0], bits[1])
    if command == "\\Gamma":
        return _power(bits[0]) * max(bits[0], 1.0)  # Gamma(n) = (n-1)! < n^n
    return sum(bits)  # gcd <= lcm <= the product of the arguments


def _eager_call_problem(text: str) -> str | None:
    for command, arguments in _eager_calls(text):
        bits = [argument_bits(a) for a in arguments]
        if any(b is None for b in bits) and not any(b == math.inf for b in bits if b is not None):
            continue  # a variable leaves the call unevaluated; nothing is computed while parsing
        size = _call_bits(command, [b if b is not None else math.inf for b in bits])
        if size > MAX_BITS:
            shown = "unboundedly many" if math.isinf(size) else f"about {size:.0f}"
            return f"{command} of these numbers is computed while parsing: {shown} bits (limit {MAX_BITS:.0f})"
    return None


def _determinant_problem(text: str) -> str | None:
    if not _DETERMINANT.search(text):
        return None
    for match in _MATRIX.finditer(text):
        rows = [row for row in match.group(2).split("\\\\") if row.strip()]
        columns = max((row.count("&") + 1 for row in rows), default=0)
        if max(len(rows), columns) > MAX_DETERMINANT_SIZE:
            limit = MAX_DETERMINANT_SIZE
            return f"a {len(rows)}x{columns} determinant is computed while parsing (limit {limit}x{limit})"
    return None


def parse_cost_problem(text: str) -> str | None:
    """Why parsing `text` as LaTeX would compute too much (module doc), or None."""
    operation = _MATRIX_OPERATIONS.search(text)
    if operation:
        return (
            f"\\operatorname{{{operation.group(1)}}} is computed while parsing "
            "(no final answer asks for linear algebra)"
        )
    return _determinant_problem(text) or _eager_call_problem(text)
