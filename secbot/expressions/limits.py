"""Resource limits for rule expressions.

Expressions come from pull requests and run against attacker-controlled alert data, so every
dimension that could make one slow or memory-hungry is bounded. The numbers are far above what
a real triage expression needs (the DESIGN.md auto-close expression is ~200 characters, depth 8)
and far below what could hurt a bot replica.
"""

from __future__ import annotations

from typing import Final

#: Longest accepted expression source, in characters.
MAX_SOURCE_LENGTH: Final = 4_000
#: Deepest accepted syntax tree (counted in AST nodes, root = 1).
MAX_DEPTH: Final = 50
#: Most AST nodes in one expression.
MAX_NODES: Final = 1_000

#: Default time budget of one alert, in seconds: the evaluation time of every expression the
#: alert meets (match.when of each rule tried, I/O-call arguments, auto_close, routes) added up.
#: Time spent waiting for enrichers between evaluations does not count.
DEFAULT_TIMEOUT: Final = 0.25
#: Default work budget of one alert, in work units (see :mod:`.costs`): one unit is roughly one
#: item a builtin touches (~5-10 ns); a syntax node costs :data:`NODE_COST`. Real triage
#: expressions spend a few thousand units; 10 million is about 0.05-0.1 s of CPU.
DEFAULT_WORK: Final = 10_000_000
#: Work units charged for evaluating one syntax node (the tree walk costs ~0.5-1 µs a node).
NODE_COST: Final = 100
#: Deepest nesting of comprehension ``for`` clauses (``[.. for a in x for b in y]`` is 2); each
#: level multiplies the iterations.
MAX_COMPREHENSION_DEPTH: Final = 3

#: Largest string, list, tuple, set or mapping an operation may produce.
MAX_SIZE: Final = 100_000
#: Total characters/items all operations of one evaluation may allocate (bounds memory even when
#: a comprehension repeats an allowed operation thousands of times).
MAX_ALLOCATION: Final = 2_000_000
#: Largest integer an operation may produce, in bits (2**4096 has 1,234 digits).
MAX_INT_BITS: Final = 4_096
#: Most loop iterations all comprehensions of one evaluation may run, together.
MAX_ITERATIONS: Final = 10_000
#: Largest ``ndigits`` accepted by ``round`` (``round(1, -10**9)`` computes ``10**10**9``).
MAX_ROUND_DIGITS: Final = 100

#: Longest input ``matches()`` accepts; longer values make the expression error.
MAX_MATCH_INPUT: Final = 10_000
#: Longest regular expression accepted by ``matches()``.
MAX_PATTERN_LENGTH: Final = 1_000
#: Most instructions a compiled ``matches()`` pattern may expand to (``a{1000}`` is 1,001).
MAX_PATTERN_PROGRAM: Final = 2_000
