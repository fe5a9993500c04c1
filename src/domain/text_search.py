"""Full-text search as plain values: the four query syntaxes of PostgREST's fts operators, parsed
once (the parser refuses what PostgreSQL would refuse, so no syntax error reaches the database), and
a small model of `to_tsvector`/`@@` that the memory adapter answers with.

This model is an approximation, written down here so that nobody mistakes it for PostgreSQL:
- Tokens: runs of letters and digits, lower-cased; a hyphenated word gives the whole word and then
  each part, at consecutive positions, as PostgreSQL's parser does; a decimal number (3.5) is one
  token. Underscores, apostrophes and other punctuation separate words. PostgreSQL's other token
  types (e-mail addresses, URLs, host names such as u.s.a, file paths) are not recognised.
- `simple`: nothing more. On words and hyphenated words it gives PostgreSQL's lexemes and positions.
- `english`: the stop words are dropped (their positions still count), and a word is stemmed by
  Porter's first step only (sses→ss, ies→i, a final s dropped unless ss). PostgreSQL's Snowball
  stemmer goes much further (running→run, quickly→quick, foxes→fox): the two agree on plurals like
  dogs or friends, not in general. No other configuration is offered, so the two adapters never
  silently answer differently for a configuration the model does not know.
- Inside a phrase (`<->`, `<N>`) only words, phrases and `|` of words are accepted; `!` and `&`
  inside a phrase are refused with a 400 rather than emulated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from domain.errors import BadRequest

CONFIGS = ("simple", "english")
DEFAULT_CONFIG = "simple"  # not the server's default_text_search_config: answers must not depend on it
KINDS = ("fts", "plfts", "phfts", "wfts")
MAX_QUERY = 1000  # characters: the query is parsed recursively

_TOKEN = re.compile(r"\d+(?:\.\d+)+|[^\W_]+(?:-[^\W_]+)*")
_ENGLISH_STOP = frozenset(
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers "
    "herself it its itself they them their theirs themselves what which who whom this that these those am is "
    "are was were be been being have has had having do does did doing a an the and but if or because as until "
    "while of at by for with about against between into through during before after above below to from up "
    "down in out on off over under again further then once here there when where why how all any both each few "
    "more most other some such no nor not only own same so than too very s t can will just don should now".split()
)


def _stem(word: str) -> str:
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ies"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        return word[:-1]
    return word


def lexemes(text: str, config: str) -> list[tuple[str, int]]:
    """(lexeme, position) pairs of a text, positions from 1, stop words leaving gaps."""
    out: list[tuple[str, int]] = []
    position = 0
    for match in _TOKEN.finditer(text):
        token = match.group().lower()
        parts = [token, *token.split("-")] if "-" in token else [token]
        for part in parts:
            position += 1
            if config == "english":
                if part in _ENGLISH_STOP:
                    continue
                part = _stem(part)
            out.append((part, position))
    return out


@lru_cache(maxsize=4096)
def vector(text: str, config: str) -> dict[str, frozenset[int]]:
    """`to_tsvector(config, text)`: each lexeme with its positions."""
    found: dict[str, set[int]] = {}
    for lexeme, position in lexemes(text, config):
        found.setdefault(lexeme, set()).add(position)
    return {k: frozenset(v) for k, v in found.items()}


# --- queries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    lexeme: str
    prefix: bool = False


@dataclass(frozen=True)
class Not:
    term: Node


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Phrase:
    left: Node
    right: Node
    distance: int = 1


Node = Word | Not | And | Or | Phrase


def _refuse(message: str, text: str, **kwargs: str) -> BadRequest:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return BadRequest(message, details=f"in the search {shown!r}", code=kwargs.get("code", "PGRST100"),
                      hint=kwargs.get("hint"))


def _and(left: Node | None, right: Node | None) -> Node | None:
    return right if left is None else left if right is None else And(left, right)


def _or(left: Node | None, right: Node | None) -> Node | None:
    return right if left is None else left if right is None else Or(left, right)


def _phrase_of(items: list[tuple[str, int]], prefix: bool = False) -> Node | None:
    """Lexemes at positions as a chain of phrases whose distances are the gaps (stop words widen them)."""
    node: Node | None = None
    last = 0
    for lexeme, position in items:
        word = Word(lexeme, prefix)
        node = word if node is None else Phrase(node, word, position - last)
        last = position
    return node


_TSQUERY_TOKEN = re.compile(r"\s*(?:(<->|<\d{1,4}>)|([&|!()])|([^\s&|!()<>:]+)(?::([*A-Da-d]+))?|(\S))")


def _parse_tsquery(text: str, config: str) -> Node | None:
    """to_tsquery's syntax: operands, ! & | <-> <N> and parentheses, with its precedence."""
    tokens: list[tuple[str, str]] = []
    for match in _TSQUERY_TOKEN.finditer(text):
        phrase, operator, word, suffix, other = match.groups()
        if other is not None:
            raise _refuse(f"Syntax error in the search at {other!r}", text, code="42601",
                          hint="fts takes to_tsquery's syntax: words with & | ! <-> and parentheses.")
        if phrase is not None:
            tokens.append(("phrase", phrase))
        elif operator is not None:
            tokens.append((operator, operator))
        elif word is not None:
            tokens.append(("word", word + (":" + suffix if suffix else "")))
    position = 0

    def peek() -> str | None:
        return tokens[position][0] if position < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise _refuse("The search ends where an operand is expected", text, code="42601")
        position += 1
        return tokens[position - 1]

    def disjunction(depth: int) -> Node | None:
        node = conjunction(depth)
        while peek() == "|":
            take()
            node = _or(node, conjunction(depth))
        return node

    def conjunction(depth: int) -> Node | None:
        node = phrase_chain(depth)
        while peek() == "&":
            take()
            node = _and(node, phrase_chain(depth))
        return node

    def phrase_chain(depth: int) -> Node | None:
        node = unary(depth)
        while peek() == "phrase":
            _, written = take()
            distance = 1 if written == "<->" else int(written[1:-1])
            right = unary(depth)
            for part in (node, right):
                if part is not None and not _phrase_safe(part):
                    raise _refuse("! and & inside a phrase are not supported", text,
                                  hint="Put ! and & outside the phrase: (a <-> b) & !c")
            node = right if node is None else node if right is None else Phrase(node, right, distance)
        return node

    def unary(depth: int) -> Node | None:
        if depth > 32:
            raise _refuse("The search nests deeper than 32 levels", text)
        kind, written = take()
        if kind == "!":
            term = unary(depth + 1)
            return None if term is None else Not(term)
        if kind == "(":
            node = disjunction(depth + 1)
            if take()[0] != ")":
                raise _refuse("Unbalanced parentheses in the search", text, code="42601")
            return node
        if kind != "word":
            raise _refuse(f"Syntax error in the search at {written!r}", text, code="42601",
                          hint="fts takes to_tsquery's syntax: words with & | ! <-> and parentheses.")
        word, _, suffix = written.partition(":")
        items = lexemes(word, config)
        return _phrase_of(items, prefix="*" in suffix)

    if not tokens:
        return None  # PostgreSQL: an empty query, which matches nothing
    node = disjunction(0)
    if position != len(tokens):
        raise _refuse(f"Syntax error in the search at {tokens[position][1]!r}", text, code="42601",
                      hint="Join words with & | or <->; a space alone is not an operator in fts.")
    return node


def _phrase_safe(node: Node) -> bool:
    if isinstance(node, Word):
        return True
    if isinstance(node, Phrase):
        return _phrase_safe(node.left) and _phrase_safe(node.right)
    if isinstance(node, Or):
        return isinstance(node.left, Word) and isinstance(node.right, Word)
    return False


def _websearch(text: str, config: str) -> Node | None:
    """websearch_to_tsquery: words are and'ed, "quoted text" is a phrase, -word negates, or between
    two operands is a disjunction (elsewhere the word "or")."""
    items = re.findall(r'-?"[^"]*"?|\S+', text)
    groups: list[Node | None] = []
    current: Node | None = None
    seen_operand = False
    for n, item in enumerate(items):
        if item.lower() == "or" and seen_operand and n + 1 < len(items):
            groups.append(current)
            current, seen_operand = None, False
            continue
        negated = item.startswith("-")
        body = item[1:] if negated else item
        if body.startswith('"'):
            term = _phrase_of(lexemes(body.strip('"'), config))
        else:
            term = _phrase_of(lexemes(body, config))
        if term is None:
            continue
        current = _and(current, Not(term) if negated else term)
        seen_operand = True
    groups.append(current)
    node: Node | None = None
    for group in groups:
        node = _or(node, group)
    return node


@lru_cache(maxsize=1024)
def parse_search(kind: str, config: str, text: str) -> Node | None:
    """The query of `fts` (to_tsquery), `plfts` (plainto_), `phfts` (phraseto_) or `wfts`
    (websearch_to_tsquery); None when only stop words are left, which matches nothing."""
    if len(text) > MAX_QUERY:
        raise _refuse(f"A search takes at most {MAX_QUERY} characters", text)
    if "\x00" in text:
        raise _refuse("A search cannot contain the NUL character", text, code="22P05")
    if kind == "fts":
        return _parse_tsquery(text, config)
    if kind == "plfts":
        node: Node | None = None
        for lexeme, _ in lexemes(text, config):
            node = _and(node, Word(lexeme))
        return node
    if kind == "phfts":
        return _phrase_of(lexemes(text, config))
    return _websearch(text, config)


def _positions(node: Node, found: dict[str, frozenset[int]]) -> set[int]:
    """Where a phrase-safe node ends in the text."""
    if isinstance(node, Word):
        if node.prefix:
            return {p for lexeme, ps in found.items() if lexeme.startswith(node.lexeme) for p in ps}
        return set(found.get(node.lexeme, ()))
    if isinstance(node, Or):
        return _positions(node.left, found) | _positions(node.right, found)
    assert isinstance(node, Phrase)
    ends = _positions(node.left, found)
    width = _width(node.right)
    return {p for p in _positions(node.right, found) if p - width - node.distance in ends}


def _width(node: Node) -> int:
    return _width(node.left) + node.distance + _width(node.right) if isinstance(node, Phrase) else 0


def search_matches(node: Node | None, found: dict[str, frozenset[int]]) -> bool:
    """`tsvector @@ tsquery`."""
    if node is None:
        return False
    if isinstance(node, Not):
        return not search_matches(node.term, found)
    if isinstance(node, And):
        return search_matches(node.left, found) and search_matches(node.right, found)
    if isinstance(node, Or):
        return search_matches(node.left, found) or search_matches(node.right, found)
    return bool(_positions(node, found))
