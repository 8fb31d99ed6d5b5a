"""Cheap upper bounds on what comparing a parsed answer would cost, before sympy evaluates it.

math-verify parses lazily (`9^{9^{9}}` stays an unevaluated Pow) and evaluates during
`verify`, where a 13-character answer can run for minutes: `9^{9^{9}}` (a 1.2-billion-bit
integer), `10^{-1000000000}`, `(x+y+z)^{200}` (20301 terms after expansion), `1000000!`.
Its own guard is a SIGALRM timeout, which we must disable off the main thread (Ray Serve
replicas) and which could not interrupt a long C-level bignum operation anyway. So the grader
walks the parsed tree once and refuses anything whose numbers or expansions are too large to
be a plausible answer. No real answer is a 1,300-digit number or a 1000-term polynomial.

Size is not the only cost: sympy's slower algorithms run long on small trees.
- A sum or product over a range is evaluated term by term (`\\sum_{n=1}^{10^6} \\frac{1}{n}`
  and `\\prod_{k=1}^{10^6} k` ran into the 3 s grading deadline), so it costs the terms its range
  holds, and a range of more than MAX_SERIES_TERMS is refused. Over a symbolic or infinite range
  sympy looks for a closed form instead, whose size grows with the powers of the index
  (Faulhaber's formula for the sum of k^d has d+2 terms: k^{300} ran past 4 s).
- `simplify` rewrites trigonometric and hyperbolic functions of a variable by the power-reduction,
  addition and multiple-angle formulas: sin(x)^n becomes about n terms, f(a1+...+ak) 2^k, f(c*x)
  c+1, each far dearer than a polynomial's (`\\sin(x)^{1000}` against 1/2 ran into the deadline,
  `\\sinh(x+y+z+w)^2` against 1 took 2 s).
  These terms, and those of closed-form sums, count against the smaller MAX_SLOW_TERMS.
- An integral has no cost one can read off its integrand (x^{10}sin(x) from 0 to 1 ran past 3 s),
  and no final answer is one: it is refused outright.
What the LaTeX parser evaluates while it reads (`\\binom{1000000}{500000}`, determinants) happens
before there is a tree to walk: serve/parse_cost.py reads the text for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import sympy

# log2 of the largest magnitude we let sympy build: 4096 bits (~1200 decimal digits) is past
# any plausible answer. sympy may run primality tests on such numbers (`993!` did), and one
# modular power is a single uninterruptible C call: ~0.3 s at 4096 bits, ~1.2 s at 8192.
MAX_BITS = 2.0**12
# Number of terms after full expansion: (x+1)^{100} (101 terms) verifies in ~0.1 s,
# (x+y+z)^{20} (231 terms) in ~0.4 s, (x+y+z)^{200} (20301 terms) does not finish.
MAX_EXPANDED_TERMS = 1000
# Terms that go through trigonometric rewriting or a closed-form search for a sum (module doc).
# Against the gold 1 on a busy 2-core machine: a function of a sum of three terms (8 terms)
# ~0.25 s, of four (16) up to 1.4 s (sinh(x+y+z+w)); sin(x)^{16} (17) ~0.1 s but sin(x)^{40}
# (41) ~1 s; cos(2x)^{24} (325) ~1.5 s. So fewer than four terms' 16. Real answers
# (sin^2(x)+cos^2(x): 6, 2sin(a)cos(b): 4, sin^4(x)+cos^4(x): 10, the sum of k^2 to n: 3) stay below.
MAX_SLOW_TERMS = 15
# Terms of a sum or product over a range, which sympy evaluates one by one: 100 square roots
# take ~0.2 s, 300 ~0.4 s, 1000 sines ~1.7 s. No final answer is a sum of more than 100 terms.
MAX_SERIES_TERMS = 100

# Functions whose value has about n*log2(n) bits for argument n.
_FACTORIAL_LIKE = frozenset(
    {
        "factorial",
        "factorial2",
        "subfactorial",
        "binomial",
        "gamma",
        "RisingFactorial",
        "FallingFactorial",
        "fibonacci",
        "lucas",
        "catalan",
        "bell",
        "primorial",
        "tribonacci",
    }
)
# Functions `simplify` rewrites by the power-reduction, addition and multiple-angle formulas.
_TRIGONOMETRIC = frozenset({"sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "coth", "sech", "csch"})
# Past 2^62 an exponent or factorial argument is absurd; it also keeps 2.0**bits finite.
_MAX_ARGUMENT_BITS = 62.0
# Past e^50 terms the count is absurd; it also keeps math.exp finite.
_MAX_LOG_TERMS = 50.0


class Cost(NamedTuple):
    """Upper bounds on what evaluating and simplifying a sub-expression builds."""

    bits: float  # log2 of the largest magnitude of any number built
    log_terms: float  # ln of the number of terms after expansion
    slow: bool = False  # whether those terms go through trigonometric rewriting or summation


# Inside a sum or product, what its index stands for: a number as large as its range's ends, or,
# over a symbolic range, a variable whose powers sympy's closed forms expand like a two-term sum's.
Bounds = Mapping[sympy.Symbol, Cost]


class _Refused(Exception):
    """A shape refused whatever its size (an integral), or a range too long to walk."""


def _number_bits(expr: sympy.Basic) -> float:
    """log2 bound of |value| of a sympy number atom (at least 1)."""
    if expr.is_Rational:
        p, q = expr.as_numer_denom()
        return float(max(int(abs(p)).bit_length(), int(abs(q)).bit_length(), 1))
    if expr.is_Float:
        _sign, _mantissa, exponent, bitcount = expr._mpf_[:4]
        return float(max(exponent + bitcount, 1))
    return 2.0  # pi, E, I, oo, nan, ...


def _value_bound(expr, bits: float) -> float:
    """Bound on |value| of a sub-expression: exact for rationals, else 2^bits (inf if absurd)."""
    if isinstance(expr, sympy.Basic) and expr.is_Rational:
        return float(abs(expr.p)) / float(abs(expr.q)) if bits <= _MAX_ARGUMENT_BITS else math.inf
    return 2.0**bits if bits <= _MAX_ARGUMENT_BITS else math.inf


def _varies(expr, bounds: Bounds) -> bool:
    """Whether `expr` holds a variable: a free symbol that is no index over a numeric range."""
    symbols = getattr(expr, "free_symbols", set())
    return any(s not in bounds or bounds[s].slow for s in symbols)


def _cost(expr, bounds: Bounds) -> Cost:
    """Bounds on the numbers and terms `expr` builds; `bounds` costs the indices of enclosing sums."""
    if isinstance(expr, sympy.Basic) and expr.is_Number:
        return Cost(_number_bits(expr), 0.0)
    if isinstance(expr, sympy.Symbol) and expr in bounds:
        return bounds[expr]
    if isinstance(expr, sympy.Integral):
        raise _Refused("an integral: sympy's integration has no bound one can read off the integrand")
    if isinstance(expr, (sympy.Sum, sympy.Product)):
        return _series_cost(expr, bounds)
    # Matrices (mutable ones are not sympy.Basic) are costed element by element.
    args = tuple(expr) if isinstance(expr, sympy.MatrixBase) else getattr(expr, "args", ())
    if not isinstance(args, tuple) or not args:
        return Cost(1.0, 0.0)  # symbols, constants, and anything without sub-expressions
    name = type(expr).__name__
    if name in _TRIGONOMETRIC and _varies(args[0], bounds):
        return _trigonometric_cost(args, bounds)
    costs = [_cost(a, bounds) for a in args]
    bits = [c.bits for c in costs]
    terms = [c.log_terms for c in costs]
    slow = any(c.slow for c in costs)
    if isinstance(expr, sympy.Pow):
        return _pow_cost(expr, costs[0], costs[1], bounds)
    if isinstance(expr, sympy.Mul):
        return Cost(_mul_bits(args, bits), sum(terms), slow)
    if isinstance(expr, sympy.Add):
        return Cost(max(bits) + math.log2(len(bits)), _logsumexp(terms), slow)
    if name in _FACTORIAL_LIKE:
        return Cost(_factorial_bits(name, args, bits), sum(terms), slow)
    return Cost(max(bits), _logsumexp(terms), slow)  # functions, relations, sets, tuples, matrices


def _trigonometric_cost(args: tuple, bounds: Bounds) -> Cost:
    """f(angle) for a trigonometric f of a variable: ln of the terms the formulas make of it. The
    addition formula doubles them for each term of the angle (f(a+b+c) becomes 2^3), the
    multiple-angle formula makes c+1 of f(c*u); f(x) counts 2, so that f(x)^n counts n+1 as power
    reduction gives. Each term of the angle is walked once."""
    bits, log_terms = 1.0, 0.0
    for term in sympy.Add.make_args(args[0]):
        cost = _cost(term, bounds)
        # A term that is itself a sum (unevaluated, or a power of one) adds as its terms would.
        spread = math.exp(min(cost.log_terms, _MAX_LOG_TERMS))
        bits = max(bits, cost.bits)
        log_terms += spread * math.log(_multiple(term, bounds) + 1.0)
    return Cost(max([bits] + [_cost(a, bounds).bits for a in args[1:]]), log_terms, True)


def _multiple(term, bounds: Bounds) -> float:
    """c of a term c*u: its whole-number factors (integers, indices over numeric ranges); 1 if none."""
    factors = term.args if isinstance(term, sympy.Mul) else (term,)
    whole = [f for f in factors if f.is_Integer or (isinstance(f, sympy.Symbol) and not _varies(f, bounds))]
    if len(whole) == len(factors):
        return 1.0  # a constant term shifts the angle: f(x + 3) is one more term of the sum
    return max(1.0, math.prod(_value_bound(f, _cost(f, bounds).bits) for f in whole))


def _factorial_bits(name: str, args: tuple, bits: list[float]) -> float:
    """n! < n^n; and C(n, k) < n^k, which keeps C(n+1000000, 3) a small number."""
    n = max(_value_bound(a, b) for a, b in zip(args, bits))
    factorial_bits = n * math.log2(n + 2.0)
    if name == "binomial" and len(args) == 2:
        top, k = (_value_bound(a, b) for a, b in zip(args, bits))
        return min(factorial_bits, k * math.log2(top + 2.0))
    return factorial_bits


def _mul_bits(factors: tuple, bits: list[float]) -> float:
    """Bits of a product, and of what `simplify` may turn it into.

    `logcombine` rewrites c*log(x) as log(x^c): `8!*99*log(6)` becomes log(6^3991680), a
    10-million-bit power that takes seconds of uninterruptible C. So a log factor costs
    |rest of the product| times the bits of its argument (a log's own bits are its argument's:
    reading them from `bits` walks no sub-tree twice, which nesting would make exponential).
    """
    total = sum(bits)
    for i, factor in enumerate(factors):
        if isinstance(factor, sympy.log):
            coefficient = _value_bound(None, total - bits[i])
            total = max(total, coefficient * max(bits[i], 1.0))
    return total


def _pow_cost(expr: sympy.Pow, base: Cost, exponent: Cost, bounds: Bounds) -> Cost:
    """|b^e| < 2^(|e| * bits(b)); an integer power of a k-term sum expands to C(n+k-1, k-1)."""
    n = _value_bound(expr.exp, exponent.bits)
    slow = base.slow or exponent.slow
    if math.isinf(n):
        return Cost(math.inf, math.inf, slow)
    bits = max(n, 1.0) * max(base.bits, 1.0)
    # An index over a numeric range is an integer too: (x+1)^k for k up to 50 expands.
    integer = expr.exp.is_Integer or (isinstance(expr.exp, sympy.Symbol) and not _varies(expr.exp, bounds))
    if base.log_terms > 0 and integer:
        # Negative powers count too: comparing puts them over a common denominator.
        k = math.exp(base.log_terms)
        return Cost(bits, math.lgamma(n + k) - math.lgamma(n + 1) - math.lgamma(k), slow)
    return Cost(bits, base.log_terms, slow)


def _series_cost(expr: sympy.Sum | sympy.Product, bounds: Bounds) -> Cost:
    """A sum (product) over a numeric range costs as the sum (product) of its terms written out;
    over a symbolic or infinite range, its summand's cost with the index as a variable whose
    powers expand like a two-term sum's (k^d counts d+1, as Faulhaber's d+2), slowly."""
    inner = dict(bounds)
    count, symbolic = 1.0, False
    # Outermost range first: an inner range's ends may hold an outer index.
    for limit in reversed(expr.limits):
        index = limit[0]
        values = _range(limit[1], limit[2], inner) if len(limit) == 3 else None
        if values is None:
            symbolic = True
            inner[index] = Cost(1.0, math.log(2.0), True)
            continue
        length, magnitude = values
        count *= length
        if count > MAX_SERIES_TERMS:
            kind = "sum" if isinstance(expr, sympy.Sum) else "product"
            raise _Refused(f"a {kind} of {_shown(count)} terms (limit {MAX_SERIES_TERMS})")
        inner[index] = Cost(math.log2(max(magnitude, 2.0)), 0.0)  # a number as large as its range's ends
    term = _cost(expr.function, inner)
    slow = term.slow or symbolic
    written_out = max(count, 1.0)
    if isinstance(expr, sympy.Sum):
        return Cost(term.bits + math.log2(written_out), term.log_terms + math.log(written_out), slow)
    return Cost(term.bits * written_out, term.log_terms * written_out, slow)


def _range(low, high, bounds: Bounds) -> tuple[float, float] | None:
    """How many values an index takes from `low` to `high` (at most: an end may hold an outer
    index), and the largest magnitude among them; None for a symbolic or infinite range."""
    infinite = (sympy.S.Infinity, sympy.S.NegativeInfinity, sympy.S.ComplexInfinity)
    if any(not isinstance(e, sympy.Basic) or e.has(*infinite) or _varies(e, bounds) for e in (low, high)):
        return None
    (lowest, low_most), (high_least, highest) = _end_bounds(low, bounds), _end_bounds(high, bounds)
    magnitude = max(abs(lowest), abs(low_most), abs(high_least), abs(highest))
    if math.isinf(magnitude):
        return math.inf, math.inf
    # floor: 2^log2(10) is 10.000000000000002, and a range has a whole number of values.
    return float(max(math.floor(highest + 1e-9) - math.ceil(lowest - 1e-9) + 1, 0)), magnitude


def _end_bounds(end, bounds: Bounds) -> tuple[float, float]:
    """Least and greatest value a range's end can take: itself if it is a small integer, else
    within its magnitude's bound (an outer index, a fraction)."""
    exact = _small_integer(end)
    if exact is not None:
        return float(exact), float(exact)
    magnitude = _value_bound(end, _cost(end, bounds).bits)
    return -magnitude, magnitude


def _small_integer(expr) -> int | None:
    """The value of an integer written with +, * and powers (`10^6`, `2 \\cdot 10^3`), if it has at
    most 62 bits; None for anything else (a symbol, a fraction, a larger number)."""
    if expr.is_Integer:
        value = int(expr)
    elif isinstance(expr, (sympy.Add, sympy.Mul)):
        parts = [_small_integer(a) for a in expr.args]
        if any(p is None for p in parts):
            return None
        value = sum(parts) if isinstance(expr, sympy.Add) else math.prod(parts)
    elif isinstance(expr, sympy.Pow):
        base, exponent = _small_integer(expr.base), _small_integer(expr.exp)
        if base is None or exponent is None or exponent < 0 or abs(base).bit_length() * exponent > _MAX_ARGUMENT_BITS:
            return None
        value = base**exponent
    else:
        return None
    return value if value.bit_length() <= _MAX_ARGUMENT_BITS else None


def _logsumexp(logs: list[float]) -> float:
    top = max(logs)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(x - top) for x in logs))


def _shown(count: float) -> str:
    """A count for a message: 1000000, 1.2e+21 when large, "unboundedly many" past any float."""
    if math.isinf(count):
        return "unboundedly many"
    return f"{count:.0f}" if count < 1e9 else f"{count:.2g}"


def why_too_costly(expr) -> str | None:
    """Why evaluating / simplifying `expr` could take unbounded time (see module doc), or None.

    Accepts sympy expressions (and matrices); deep nesting that would overflow the recursion
    also counts as too costly.
    """
    try:
        cost = _cost(expr, {})
    except _Refused as refused:
        return str(refused)
    except (RecursionError, OverflowError, ValueError, TypeError):
        return "nested too deep or too large to cost"
    if cost.bits > MAX_BITS:
        size = f"about {_shown(cost.bits)}" if math.isfinite(cost.bits) else "unboundedly many"
        return f"a number of {size} bits (limit {MAX_BITS:.0f})"
    budget = MAX_SLOW_TERMS if cost.slow else MAX_EXPANDED_TERMS
    if cost.log_terms > math.log(budget):
        what = "terms through trigonometric rewriting or summation" if cost.slow else "terms once expanded"
        count = math.exp(cost.log_terms) if cost.log_terms < 700.0 else math.inf
        return f"{'about ' if math.isfinite(count) else ''}{_shown(count)} {what} (limit {budget})"
    return None


def is_too_costly(expr) -> bool:
    """True if evaluating / simplifying `expr` could take unbounded time (`why_too_costly`)."""
    return why_too_costly(expr) is not None
