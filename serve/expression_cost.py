"""Cheap upper bounds on what comparing a parsed answer would cost, before sympy evaluates it.

math-verify parses lazily (`9^{9^{9}}` stays an unevaluated Pow) and evaluates during
`verify`, where a 13-character answer can run for minutes: `9^{9^{9}}` (a 1.2-billion-bit
integer), `10^{-1000000000}`, `(x+y+z)^{200}` (20301 terms after expansion), `1000000!`.
Its own guard is a SIGALRM timeout, which we must disable off the main thread (Ray Serve
replicas) and which could not interrupt a long C-level bignum operation anyway. So the grader
walks the parsed tree once and refuses anything whose numbers or expansions are too large to
be a plausible answer. No real answer is a 1,300-digit number or a 1000-term polynomial.
"""

from __future__ import annotations

import math

import sympy

# log2 of the largest magnitude we let sympy build: 4096 bits (~1200 decimal digits) is past
# any plausible answer. sympy may run primality tests on such numbers (`993!` did), and one
# modular power is a single uninterruptible C call: ~0.3 s at 4096 bits, ~1.2 s at 8192.
MAX_BITS = 2.0**12
# Number of terms after full expansion: (x+1)^{100} (101 terms) verifies in ~0.1 s,
# (x+y+z)^{20} (231 terms) in ~0.4 s, (x+y+z)^{200} (20301 terms) does not finish.
MAX_EXPANDED_TERMS = 1000

# Functions whose value has about n*log2(n) bits for argument n.
_FACTORIAL_LIKE = frozenset(
    {
        "factorial", "factorial2", "subfactorial", "binomial", "gamma", "RisingFactorial",
        "FallingFactorial", "fibonacci", "lucas", "catalan", "bell", "primorial", "tribonacci",
    }
)
# Past 2^62 an exponent or factorial argument is absurd; it also keeps 2.0**bits finite.
_MAX_ARGUMENT_BITS = 62.0


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


def _cost(expr) -> tuple[float, float]:
    """(bits, log_terms): log2 bound of any number built, ln of terms after expansion."""
    if isinstance(expr, sympy.Basic) and expr.is_Number:
        return _number_bits(expr), 0.0
    # Matrices (mutable ones are not sympy.Basic) are costed element by element.
    args = tuple(expr) if isinstance(expr, sympy.MatrixBase) else getattr(expr, "args", ())
    if not isinstance(args, tuple) or not args:
        return 1.0, 0.0  # symbols, constants, and anything without sub-expressions
    costs = [_cost(a) for a in args]
    bits = [c[0] for c in costs]
    terms = [c[1] for c in costs]
    if isinstance(expr, sympy.Pow):
        return _pow_cost(expr, costs[0], costs[1])
    if isinstance(expr, sympy.Mul):
        return _mul_bits(args, bits), sum(terms)
    if isinstance(expr, sympy.Add):
        return max(bits) + math.log2(len(bits)), _logsumexp(terms)
    if type(expr).__name__ in _FACTORIAL_LIKE:
        n = max(_value_bound(a, b) for a, b in zip(args, bits))
        return n * math.log2(n + 2.0), sum(terms)  # n! < n^n
    return max(bits), _logsumexp(terms)  # functions, relations, sets, tuples, matrices


def _mul_bits(factors: tuple, bits: list[float]) -> float:
    """Bits of a product, and of what `simplify` may turn it into.

    `logcombine` rewrites c*log(x) as log(x^c): `8!*99*log(6)` becomes log(6^3991680), a
    10-million-bit power that takes seconds of uninterruptible C. So a log factor costs
    |rest of the product| times the bits of its argument.
    """
    total = sum(bits)
    for i, factor in enumerate(factors):
        if isinstance(factor, sympy.log):
            coefficient = _value_bound(None, total - bits[i])
            total = max(total, coefficient * max(_cost(factor.args[0])[0], 1.0))
    return total


def _pow_cost(
    expr: sympy.Pow, base: tuple[float, float], exponent: tuple[float, float]
) -> tuple[float, float]:
    """|b^e| < 2^(|e| * bits(b)); an integer power of a k-term sum expands to C(n+k-1, k-1)."""
    base_bits, base_terms = base
    n = _value_bound(expr.exp, exponent[0])
    if math.isinf(n):
        return math.inf, math.inf
    bits = max(n, 1.0) * max(base_bits, 1.0)
    if base_terms > 0 and expr.exp.is_Integer:
        # Negative powers count too: comparing puts them over a common denominator.
        k = math.exp(base_terms)
        terms = math.lgamma(n + k) - math.lgamma(n + 1) - math.lgamma(k)
        return bits, terms
    return bits, base_terms


def _logsumexp(logs: list[float]) -> float:
    top = max(logs)
    if math.isinf(top):
        return top
    return top + math.log(sum(math.exp(x - top) for x in logs))


def is_too_costly(expr) -> bool:
    """True if evaluating / simplifying `expr` could take unbounded time (see module doc).

    Accepts sympy expressions (and matrices); deep nesting that would overflow the recursion
    also counts as too costly.
    """
    try:
        bits, log_terms = _cost(expr)
    except (RecursionError, OverflowError, ValueError, TypeError):
        return True
    return bits > MAX_BITS or log_terms > math.log(MAX_EXPANDED_TERMS)
