"""The static half of a SQL source's guard: one lexer per dialect and the read-only rules.

A check that reads a quote differently from the server can be shown one harmless statement
while the server runs several, so each lexer follows its database's own tokenizer wherever a
string, quoted identifier or comment begins and ends:

- PostgreSQL (`scan.l`): `'…'` with `''` doubled; `E'…'` where a backslash escapes the next
  character; `B'…'` / `X'…'` (no doubling); a string continued over a newline by another `'…'`
  keeps its mode (so `E'a'` newline `'\\''` is one escape string); `$tag$…$tag$`; `"…"`
  identifiers; `--` up to `\\n` or `\\r`; nested `/* /* */ */`; identifiers take any non-ASCII
  character (so `éE'…'` is an identifier and a plain string). The runner pins
  `standard_conforming_strings = on`, which this lexer assumes.
- SQLite (`tokenize.c`): `'…'`, `"…"` and `` `…` `` with the quote doubled; `[…]`; `X'…'`;
  `--` up to `\\n`; `/* */` not nested; variables `:name`, `@name`, `$name`, `#name` with `::`
  and Tcl-style `(…)` suffixes.

The rules: exactly one statement (after a `;` only whitespace, comments or more `;`), starting
with SELECT, WITH or VALUES; no word that writes or changes the session; no row locks; no
function that acts on the server beyond reading rows; parameters only as `:name`.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import NamedTuple

from outreach_core.errors import InputError


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


DIALECTS = ("postgresql", "sqlite")
#: what a query may start with (after opening parentheses)
FIRST_WORDS = frozenset(["SELECT", "WITH", "VALUES"])
#: words that write, change the schema, the transaction or the session: refused anywhere
#: outside quotes, even where the database would treat them harmlessly
FORBIDDEN_WORDS = _names(
    """INSERT UPDATE DELETE MERGE UPSERT DROP CREATE ALTER TRUNCATE ATTACH DETACH
    PRAGMA GRANT REVOKE COPY VACUUM REINDEX ANALYZE CALL EXEC EXECUTE DO LOCK INTO LOAD
    COMMENT CLUSTER REFRESH COMMIT ROLLBACK SAVEPOINT PREPARE DEALLOCATE DISCARD LISTEN
    NOTIFY UNLISTEN CHECKPOINT SET RESET"""
)
#: after FOR, these make a row lock (FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE)
LOCK_WORDS = frozenset(["UPDATE", "SHARE", "NO", "KEY"])
#: PostgreSQL functions that act on the server even inside a READ ONLY transaction: signal or
#: stop backends, read its files, take locks, change settings, run SQL text of their own,
#: open other connections, touch large objects or replication
PG_FUNCTIONS = _names(
    """pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_promote
    pg_switch_wal pg_create_restore_point pg_log_backend_memory_contexts pg_stat_file
    pg_current_logfile set_config pg_notify pg_import_system_collations pg_start_backup
    pg_stop_backup query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml
    cursor_to_xmlschema ts_stat ts_rewrite lo_import lo_export lo_create lo_creat lo_unlink
    lo_from_bytea lo_put lo_get lo_open lo_close lo_truncate lo_truncate64 lo_lseek
    lo_lseek64 lo_tell lo_tell64 loread lowrite"""
)
PG_FUNCTION_PREFIXES = (
    "pg_advisory",
    "pg_try_advisory",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_stat_reset",
    "pg_replication_",
    "pg_logical_",
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_wal_",
    "pg_backup_",
    "dblink",
)
SQLITE_FUNCTIONS = _names(
    """load_extension readfile writefile edit fsdir fts3_tokenizer sqlite_dbpage"""
)

_PG_SPACE = " \t\n\r\f\v"
_SQLITE_SPACE = " \t\n\f\r\v\ufeff"  # a BOM counts as space where a token would start
_IDENT = r"A-Za-z_\x80-\U0010ffff"
_PG_DOLLAR = re.compile(rf"\$(?:[{_IDENT}][{_IDENT}0-9]*)?\$")
# PostgreSQL's `quotecontinue`: blanks or -- comments, a newline, then blanks, newlines or
# comments that end in a newline, then the quote that continues the string
_PG_CONTINUE = re.compile(r"(?:[ \t\f\v]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f\v]+|--[^\n\r]*[\n\r])*'")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Token(NamedTuple):
    """One lexeme: space, comment, string, ident (quoted identifier), uident (U&"…"), word,
    param (:name), variable (any other placeholder), semicolon or other (one character)."""

    kind: str
    text: str


def _ident_char(c: str, *, start: bool) -> bool:
    if not c.isascii():
        return True
    return c.isalpha() or c == "_" or (not start and (c.isdigit() or c == "$"))


def _run(sql: str, i: int, keep: str) -> int:
    while i < len(sql) and sql[i] in keep:
        i += 1
    return i


def _word_end(sql: str, i: int) -> int:
    while i < len(sql) and _ident_char(sql[i], start=False):
        i += 1
    return i


def _unterminated(what: str, at: int) -> InputError:
    return InputError(f"the query has an unterminated {what} at character {at}")


def _line_comment_end(sql: str, i: int, newlines: str) -> int:
    while i < len(sql) and sql[i] not in newlines:
        i += 1
    return i


def _quoted_end(sql: str, i: int, close: str, *, doubled: bool, what: str) -> int:
    """End of a quoted token opening at i (a doubled closing character stays inside)."""
    j = i + 1
    while True:
        j = sql.find(close, j)
        if j < 0:
            raise _unterminated(what, i)
        if doubled and sql.startswith(close, j + 1):
            j += 2
            continue
        return j + 1


def _pg_string_end(sql: str, i: int, mode: str) -> int:
    """End of a PostgreSQL string whose opening quote is at i; mode: standard, escape or bits."""
    j = i + 1
    while True:
        if j >= len(sql):
            raise _unterminated("string", i)
        c = sql[j]
        if c == "\\" and mode == "escape":
            j += 2
        elif c != "'":
            j += 1
        elif mode != "bits" and sql.startswith("'", j + 1):
            j += 2
        elif found := _PG_CONTINUE.match(sql, j + 1):
            j = found.end()  # the next segment is scanned in the same mode
        else:
            return j + 1


def _pg_comment_end(sql: str, i: int) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    raise _unterminated("/* comment", i)


def _pg_token(sql: str, i: int) -> tuple[str, int]:
    c, nxt = sql[i], sql[i + 1 : i + 2]
    if c in _PG_SPACE:
        return "space", _run(sql, i, _PG_SPACE)
    if sql.startswith("--", i):
        return "comment", _line_comment_end(sql, i, "\n\r")
    if sql.startswith("/*", i):
        return "comment", _pg_comment_end(sql, i)
    if c in "eE" and nxt == "'":
        return "string", _pg_string_end(sql, i + 1, "escape")
    if c in "bBxX" and nxt == "'":
        return "string", _pg_string_end(sql, i + 1, "bits")
    if c in "uU" and sql.startswith('&"', i + 1):
        return "uident", _quoted_end(sql, i + 2, '"', doubled=True, what="quoted identifier")
    if c == "'":
        return "string", _pg_string_end(sql, i, "standard")
    if c == '"':
        return "ident", _quoted_end(sql, i, '"', doubled=True, what="quoted identifier")
    if c == "$":
        if delimiter := _PG_DOLLAR.match(sql, i):
            end = sql.find(delimiter.group(), delimiter.end())
            if end < 0:
                raise _unterminated(f"dollar quote {delimiter.group()}", i)
            return "string", end + len(delimiter.group())
        if nxt.isascii() and nxt.isdigit():
            return "variable", _run(sql, i + 1, "0123456789")
        return "other", i + 1
    if c == ":":
        if nxt == ":":
            return "other", i + 2
        if nxt and _ident_char(nxt, start=True):
            return "param", _word_end(sql, i + 1)
        return "other", i + 1
    if c == ";":
        return "semicolon", i + 1
    if _ident_char(c, start=True):
        return "word", _word_end(sql, i)
    return "other", i + 1


def _sqlite_variable_end(sql: str, i: int) -> tuple[int, int]:
    """SQLite's variable token from i (`:`, `@`, `#`, `$`), Tcl suffixes included: its end
    and how many name characters it has (none: an illegal token)."""
    j, named = i + 1, 0
    while j < len(sql):
        c = sql[j]
        if _ident_char(c, start=False):
            j, named = j + 1, named + 1
        elif c == "(" and named:
            while j < len(sql) and sql[j] not in " \t\n\f\r\v" and sql[j] != ")":
                j += 1
            return (j + 1 if sql.startswith(")", j) else j), named
        elif sql.startswith("::", j):
            j += 2
        else:
            break
    return j, named


def _sqlite_token(sql: str, i: int) -> tuple[str, int]:
    c, nxt = sql[i], sql[i + 1 : i + 2]
    if c in _SQLITE_SPACE:
        return "space", _run(sql, i, _SQLITE_SPACE)
    if sql.startswith("--", i):
        return "comment", _line_comment_end(sql, i, "\n")
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        if end < 0:
            raise _unterminated("/* comment", i)
        return "comment", end + 2
    if c in "xX" and nxt == "'":
        return "string", _quoted_end(sql, i + 1, "'", doubled=False, what="string")
    if c in "'\"`":
        kind = "string" if c == "'" else "ident"
        return kind, _quoted_end(sql, i, c, doubled=True, what="quote")
    if c == "[":
        return "ident", _quoted_end(sql, i, "]", doubled=False, what="[identifier]")
    if c in ":@#$":
        end, named = _sqlite_variable_end(sql, i)
        if not named:
            return "other", end  # SQLite refuses it as an illegal token
        return ("param" if c == ":" else "variable"), end
    if c == "?":
        return "variable", _run(sql, i + 1, "0123456789")
    if c == ";":
        return "semicolon", i + 1
    if c.isascii() and c.isdigit():
        return "other", _word_end(sql, i)  # SQLite reads 1abc as one (illegal) token
    if _ident_char(c, start=True):
        return "word", _word_end(sql, i)
    return "other", i + 1


def tokens(sql: str, dialect: str) -> list[Token]:
    """Every character of `sql` in one token; an unterminated quote or comment is an error."""
    if "\x00" in sql:
        raise InputError("the query contains a NUL character; remove it")
    step = _pg_token if dialect == "postgresql" else _sqlite_token
    found, i = [], 0
    while i < len(sql):
        kind, end = step(sql, i)
        found.append(Token(kind, sql[i:end]))
        i = end
    return found


def _fold(word: str) -> str:
    """Keywords fold ASCII letters only, as both databases do."""
    return word.upper() if word.isascii() else word


def _name(token: Token) -> str:
    """A function or column name as the database resolves it (quoted ones unquoted)."""
    if token.kind == "ident":
        quote = token.text[0]
        inner = token.text[1:-1]
        return (inner if quote == "[" else inner.replace(quote * 2, quote)).lower()
    return token.text.lower()


def _denied(name: str, dialect: str) -> bool:
    if dialect == "sqlite":
        return name in SQLITE_FUNCTIONS
    return name in PG_FUNCTIONS or name.startswith(PG_FUNCTION_PREFIXES)


def _statement(found: list[Token]) -> list[Token]:
    """The one statement's tokens (spaces and comments left out); more than one is refused."""
    statements: list[list[Token]] = [[]]
    for token in found:
        if token.kind == "semicolon":
            statements.append([])
        elif token.kind not in ("space", "comment"):
            statements[-1].append(token)
    filled = [s for s in statements if s]
    if not filled:
        raise InputError("the query is empty")
    if len(filled) > 1:
        raise InputError(
            f"only one statement is allowed; this query has {len(filled)} (separated by ;)"
        )
    if not statements[0]:
        raise InputError("only one statement is allowed; remove the ; before the query")
    return statements[0]


def _check(sql: str, dialect: str) -> list[str]:
    statement = _statement(tokens(sql, dialect))
    opening = next((t for t in statement if t.text != "("), statement[0])
    first = _fold(opening.text)
    if opening.kind != "word" or first not in FIRST_WORDS:
        raise InputError(f"only SELECT or WITH … SELECT is allowed; this query starts with {first}")
    words = [_fold(t.text) for t in statement if t.kind == "word"]
    forbidden = sorted(set(words) & FORBIDDEN_WORDS)
    if forbidden:
        raise InputError(f"only reading is allowed; the query contains {', '.join(forbidden)}")
    if any(a == "FOR" and b in LOCK_WORDS for a, b in pairwise(words)):
        raise InputError("only reading is allowed; the query locks rows (FOR SHARE / FOR KEY)")
    if first == "WITH" and "SELECT" not in words:
        raise InputError("only reading is allowed; a WITH query must end in a SELECT")
    denied = sorted(
        {_name(t) for t in statement if t.kind in ("word", "ident") and _denied(_name(t), dialect)}
    )
    if denied:
        raise InputError(
            f"only reading is allowed; the query uses {', '.join(denied)}, which acts on the "
            "database server beyond reading rows"
        )
    if any(t.kind == "uident" for t in statement):
        raise InputError('only plain identifiers are allowed; write "name" instead of U&"…"')
    odd = [t.text for t in statement if t.kind == "variable"]
    names = {t.text[1:] for t in statement if t.kind == "param"}
    odd += [f":{n}" for n in names if not _PARAM_NAME.match(n)]
    if odd:
        raise InputError(
            f"parameters are written :name (letters, digits, _); the query has {', '.join(odd)}"
        )
    return sorted(names)


def check_read_only(sql: str, dialect: str | None = None) -> list[str]:
    """Refuse anything but one SELECT, WITH … SELECT or VALUES; return its named parameters.

    Without a dialect the query must pass both lexers, and its parameters are the names both
    read as parameters (`x::date` is a cast, not `:date`). Deliberately strict: a word that writes anywhere outside quotes is refused, even
    where the database would treat it harmlessly.
    """
    if dialect is not None:
        return _check(sql, dialect)
    postgresql, sqlite = (_check(sql, d) for d in DIALECTS)
    return sorted(set(postgresql) & set(sqlite))


def driver_text(sql: str, dialect: str) -> str:
    """The text handed to the driver: the query as the subquery of `SELECT * FROM (…)`, so the
    server's own parser refuses anything but a query (COPY, DO, SET, COMMIT, a data-modifying
    WITH) even if the check missed it; trailing empty statements cut off (`SELECT 1;`); on
    PostgreSQL `:name` made psycopg's `%(name)s` and every other `%` doubled. Anything after a
    `;` that is not empty is left in, for the driver to refuse."""
    found = tokens(sql, dialect)
    first = next((n for n, t in enumerate(found) if t.kind == "semicolon"), len(found))
    if all(t.kind in ("space", "comment", "semicolon") for t in found[first:]):
        found = found[:first]
    if dialect == "postgresql":
        text = "".join(
            f"%({t.text[1:]})s" if t.kind == "param" else t.text.replace("%", "%%") for t in found
        )
    else:
        text = "".join(t.text for t in found)
    # the newline ends a -- comment on the query's last line
    return f"SELECT * FROM (\n{text}\n) AS source"
