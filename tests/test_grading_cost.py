"""Answers whose grading would be expensive are refused by inspection, not by the deadline
(serve/expression_cost.py on the parsed tree, serve/parse_cost.py on the text before parsing),
and the real answers beside them still grade. Times are BENCHMARKS' business, not asserted here:
a refusal that names what it saw, rather than the deadline, is the check."""

import math

import pytest
from math_verify import parse

from serve.expression_cost import MAX_SERIES_TERMS, MAX_SLOW_TERMS, why_too_costly
from serve.grading import grade
from serve.parse_cost import MAX_DETERMINANT_SIZE, argument_bits, parse_cost_problem

# Each ran into (or near) the 3 s deadline before, or would with a gold that makes sympy try harder.
EXPENSIVE = [
    ("\\prod_{k=1}^{1000000} k", "5"),  # 10^6 factors, multiplied one by one
    ("\\prod_{k=1}^{10^6}(1+\\frac{1}{k})", "\\frac{1}{2}"),
    ("\\sum_{i=1}^{1000000} i", "5"),
    ("\\sum_{n=1}^{10^6} n^2", "5"),
    ("\\sum_{n=1}^{10^6} \\frac{1}{n}", "5"),
    ("\\sum_{i=1}^{100}\\sum_{j=1}^{100}\\sum_{k=1}^{100} ijk", "5"),  # 10^6 terms in all
    ("\\left(\\prod_{k=1}^{1000} k\\right)^{2}", "5"),  # a product inside a power
    ("\\prod_{k=1}^{1000}(x+k)", "x^2+1"),
    ("\\sum_{k=1}^{n} k^{300}", "5"),  # Faulhaber: a closed form of 302 terms
    ("\\sin^{200}(x)", "x^2+1"),
    ("\\sin(x)^{1000}", "\\frac{1}{2}"),
    ("\\cos^{100}(x)+\\sin^{100}(x)", "1"),
    ("\\sin(x+y+z+w)^{8}", "1"),
    ("\\sinh(x+y+z+w)", "1"),
    ("\\cos(2x)^{24}", "1"),
    ("".join(f"(x+{i})" for i in range(1, 31)), "x^2+1"),  # 2^30 terms once expanded
    ("(x+1)^{50}(y+1)^{50}", "x^2+1"),
    ("1000!", "5"),
    ("\\int_0^1 x^{1000}\\sin(x)dx", "5"),
]


@pytest.mark.parametrize(("answer", "gold"), EXPENSIVE)
def test_an_expensive_answer_is_refused_by_inspection(answer, gold):
    result = grade(f"\\boxed{{{answer}}}", gold)
    assert result.score == 0.0 and result.refused is not None
    assert "deadline" not in result.refused


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("\\sum_{i=1}^{10} i", "55"),
        ("\\sum_{n=1}^{100} n", "5050"),
        ("\\prod_{k=1}^{5} k", "120"),
        ("\\sum_{k=1}^{10}\\sum_{j=1}^{k} 1", "55"),  # 55 terms: the inner range depends on k
        ("\\sum_{k=1}^{n} k", "\\frac{n(n+1)}{2}"),  # a symbolic range: a closed form of 3 terms
        ("\\sin^2(x)+\\cos^2(x)", "1"),
        ("\\sin^{4}(x)+\\cos^{4}(x)", "1-2\\sin^2(x)\\cos^2(x)"),
        ("2\\sin(x)\\cos(x)", "\\sin(2x)"),
        ("\\tan^2(y)+1", "\\sec^2(y)"),
        ("(x+1)^3", "x^3+3x^2+3x+1"),
        ("\\binom{10}{3}", "120"),
        ("\\Gamma(5)", "24"),
        ("\\gcd(12, 18)", "6"),
    ],
)
def test_a_real_answer_beside_them_still_grades(answer, gold):
    assert grade(f"\\boxed{{{answer}}}", gold).score == 1.0


def _reason(answer: str) -> str | None:
    (expression,) = [e for e in parse(f"${answer}$", parsing_timeout=None) if not isinstance(e, str)]
    return why_too_costly(expression)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        # The range is counted from its ends: 1 to 10^6 holds 10^6 values.
        ("\\sum_{n=1}^{10^6} \\frac{1}{n}", f"a sum of 1000000 terms (limit {MAX_SERIES_TERMS})"),
        # Nested: 100 * 100 = 10^4 before the innermost range is even read.
        ("\\sum_{i=1}^{100}\\sum_{j=1}^{100}\\sum_{k=1}^{100} ijk", "a sum of 10000 terms"),
        # -50 to 60: 60 - (-50) + 1 = 111 values.
        ("\\prod_{k=-50}^{60} k", "a product of 111 terms"),
        # Power reduction: sin(x) counts 2 terms, so sin(x)^200 counts C(201, 1) = 201.
        ("\\sin^{200}(x)", f"about 201 terms through trigonometric rewriting or summation (limit {MAX_SLOW_TERMS})"),
        # The addition formula: a sum of four terms makes 2^4 = 16.
        ("\\sinh(x+y+z+w)", "about 16 terms through"),
        # The multiple angle: cos(2x) counts 2 + 1 = 3 terms, so cos(2x)^24 counts C(26, 2) = 325.
        ("\\cos(2x)^{24}", "about 325 terms through"),
        # Over a symbolic range the index counts as two terms: k^300 counts 301 (Faulhaber's 302).
        ("\\sum_{k=1}^{n} k^{300}", "about 301 terms through"),
        # Polynomials keep the larger budget: 51 * 51 = 2601 terms.
        ("(x+1)^{50}(y+1)^{50}", "about 2601 terms once expanded (limit 1000)"),
        ("\\int_0^1 x^{1000}\\sin(x)dx", "an integral"),
        # 10^(9^9) is past any bound: the range cannot be counted.
        ("\\sum_{k=1}^{10^{9^{9}}} k", "a sum of unboundedly many terms"),
    ],
)
def test_the_tree_walk_says_what_it_refused(answer, reason):
    assert reason in _reason(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "\\sum_{n=1}^{100} n",  # 100 terms: the limit itself
        "\\sum_{k=1}^{10}\\sum_{j=1}^{k} j",  # at most 10 * 10 = 100 (in fact 55)
        "\\sum_{k=1}^{n} k^{13}",  # 14 terms over a symbolic range
        "\\sin^{14}(x)",  # 15 terms: the limit itself
        "\\sin(x+y+z)",  # 2^3 = 8
        "\\sin(10x)",  # 10 + 1 = 11
        "\\sin(100\\pi)",  # no variable: nothing to rewrite
        "\\sum_{n=1}^{100} \\sin(n)",  # 100 numbers, no variable inside the sine
        "\\sum_{k=0}^{n-1} F_k F_{n-k-1}",  # Math-Verify's own case: a symbolic range, no powers
        "\\binom{n+1000000}{3}",  # C(n+10^6, 3) < (n+10^6)^3: small, and cubic once expanded
    ],
)
def test_the_tree_walk_leaves_what_is_cheap(answer):
    assert _reason(answer) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # C(10^6, 5*10^5) < 2^(10^6): about a million bits, against the 4096 the tree walk allows.
        (
            "\\binom{1000000}{500000}",
            "\\binom of these numbers is computed while parsing: about 1000001 bits (limit 4096)",
        ),
        ("{1000000 \\choose 500000}", "\\choose of these numbers"),
        # A power in an argument: no bound can be read off the text.
        ("\\binom{10^{6}}{2}", "unboundedly many bits"),
        ("\\gcd(9^{9^{9}}, 6)", "\\gcd of these numbers"),
        # Gamma(10^5) = (10^5 - 1)! < (10^5 + 1)^(10^5 + 1): log2 is 100001 * log2(100001).
        ("\\Gamma(100000)", "\\Gamma of these numbers is computed while parsing: about 1660982 bits"),
        (
            "\\begin{vmatrix}a&b&c&d&e\\\\f&g&h&i&j\\\\k&l&m&n&o\\\\p&q&r&s&t\\\\u&v&w&y&z\\end{vmatrix}",
            f"a 5x5 determinant is computed while parsing (limit {MAX_DETERMINANT_SIZE}x{MAX_DETERMINANT_SIZE})",
        ),
        ("\\det\\begin{pmatrix}1&2&3&4&5\\\\1&2&3&4&5\\end{pmatrix}", "a 2x5 determinant"),
        (
            "\\operatorname{eigenvals}\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}",
            "\\operatorname{eigenvals} is computed while parsing",
        ),
        ("\\operatorname{zeros}(100000, 100000)", "\\operatorname{zeros}"),
    ],
)
def test_what_the_parser_would_compute_is_refused_from_the_text(text, reason):
    assert reason in parse_cost_problem(text)


@pytest.mark.parametrize(
    "text",
    [
        "\\binom{100}{50}",  # C(100, 50) < 2^100
        "\\binom{1000000}{2}",  # C(10^6, 2) < (10^6 + 1)^3: 60 bits
        "{100 \\choose 50}",
        "\\binom{2\\cdot 500}{500}",  # at most 3 * 501 = 1503 on top: C(1000, 500) < 2^1503
        "\\binom{n^2}{2}",  # a variable: the parser leaves it unevaluated
        "\\Gamma(100)",  # 99! < 101^101: 673 bits
        "\\gcd(12, 18)",
        "\\det\\begin{pmatrix}a&b&c&d\\\\e&f&g&h\\\\i&j&k&l\\\\m&n&o&p\\end{pmatrix}",  # 4x4: the limit
        "\\det(A)",
        "\\frac{1}{2}",
    ],
)
def test_what_the_parser_computes_cheaply_is_left_to_it(text):
    assert parse_cost_problem(text) is None


def test_an_arguments_bound_is_read_from_its_numbers():
    # 2 * 500: at most (2 + 1) * (500 + 1), so log2(3 * 501) bits.
    assert argument_bits("2\\cdot 500") == pytest.approx(math.log2(3 * 501))
    assert argument_bits("n+1") is None  # a variable
    assert argument_bits("10^{6}") == float("inf")  # a power
    assert argument_bits("5\\!") == pytest.approx(math.log2(6))  # \! is a space, not a factorial


def test_an_answer_the_parser_would_compute_is_refused_by_grade():
    result = grade("\\boxed{\\binom{1000000}{500000}}", "5", timeout_s=1.0)
    assert result.refused is not None and "deadline" not in result.refused
