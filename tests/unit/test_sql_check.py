"""The SQL source check reads quotes and comments as each database does, and URLs are masked.

Each case is a query the old check (one regular expression for every dialect) read wrongly,
or a quoting form a lexer can get wrong; the server-side proof is in
tests/integration/test_sql_source_attacks.py.
"""

from __future__ import annotations

import pytest

from outreach_core.adapters.sql_check import check_read_only, driver_text, tokens
from outreach_core.adapters.sql_runner import masked, scrubbed, source_dialect
from outreach_core.errors import InputError

# each hides "; DROP TABLE victim" from a lexer that misreads one quoting form of PostgreSQL
PG_HIDDEN = {
    "escape string": "SELECT E'\\'' AS email; DROP TABLE victim; SELECT 1 --'",
    "lower-case escape string": "SELECT e'\\'' AS email; DROP TABLE victim; SELECT 1 --'",
    "escape string continued on a new line": (
        "SELECT E'a'\n'\\'' AS email; DROP TABLE victim; SELECT 1 --'"
    ),
    "continued after a comment line": (
        "SELECT E'a' -- note\n'\\'' AS email; DROP TABLE victim; SELECT 1 --'"
    ),
    "dollar quote holding a quote": "SELECT $$'$$ AS email; DROP TABLE victim; SELECT '$$'",
    "tagged dollar quote": "SELECT $q$ $$ ' $q$ AS email; DROP TABLE victim; SELECT '$$'",
    "nested comment": "SELECT 1 AS email /* /* */ ' */ ; DROP TABLE victim; SELECT ' --'",
    "backslash in a quoted identifier": 'SELECT 1 AS "e\\"; DROP TABLE victim; SELECT 1 --"',
    "comment ended by a carriage return": "SELECT 1 AS email --\r; DROP TABLE victim",
    "non-ASCII identifier before E": "SELECT 1 AS éE'\\' ; DROP TABLE victim; SELECT '' --'",
}
# the same for SQLite's forms
SQLITE_HIDDEN = {
    "no nested comments": "SELECT 1 AS email /* /* */ ; DROP TABLE victim; /* */",
    "no escape strings": "SELECT '\\' AS email; DROP TABLE victim; SELECT '' --'",
    "no dollar quotes": "SELECT $a$ AS email; DROP TABLE victim; SELECT $a$",
    "comment ends only at a newline": "SELECT 1 AS email --\n; DROP TABLE victim",
    "bracket identifier": "SELECT 1 AS [a'] ; DROP TABLE victim; SELECT [']",
    "backquote identifier": "SELECT 1 AS `a'` ; DROP TABLE victim; SELECT `'`",
}


@pytest.mark.parametrize("sql", PG_HIDDEN.values(), ids=PG_HIDDEN.keys())
def test_postgresql_quoting_forms_do_not_hide_a_second_statement(sql: str) -> None:
    """Verify every PostgreSQL quoting form is read as the server does: the ; is seen."""
    with pytest.raises(InputError, match="only one statement is allowed"):
        check_read_only(sql, "postgresql")


@pytest.mark.parametrize("sql", SQLITE_HIDDEN.values(), ids=SQLITE_HIDDEN.keys())
def test_sqlite_quoting_forms_do_not_hide_a_second_statement(sql: str) -> None:
    """Verify every SQLite quoting form is read as SQLite does: the ; is seen."""
    with pytest.raises(InputError, match="only one statement is allowed"):
        check_read_only(sql, "sqlite")


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT 'a;b', E'it\\'s;', $x$;$x$, \"c;d\" /* ; /* ; */ ; */ -- ;\n", "postgresql"),
        ("SELECT E'a'\n'\\';' AS continued", "postgresql"),
        ("SELECT 'a;b', \"c;d\", `e;f`, [g;h] /* ; */ -- ;\n;", "sqlite"),
        ("SELECT 1 --\r; still a comment in SQLite", "sqlite"),
    ],
)
def test_semicolons_inside_quotes_and_comments_are_not_statements(sql: str, dialect: str) -> None:
    """Verify a ; that the database reads as text is not taken for a second statement."""
    assert check_read_only(sql, dialect) == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_terminate_backend(1) AS email",
        "SELECT pg_catalog.pg_cancel_backend(1)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT \"pg_read_binary_file\"('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT pg_stat_file('postgresql.conf')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT * FROM dblink('dbname=x', 'DROP TABLE victim') AS t(x text)",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_xact_lock(1)",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT pg_reload_conf()",
        "SELECT pg_rotate_logfile()",
        "SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, true, '')",
    ],
)
def test_postgresql_functions_beyond_reading_are_refused(sql: str) -> None:
    """Verify functions that act on the server are refused, named, quoted or qualified."""
    with pytest.raises(InputError, match="acts on the database server beyond reading rows"):
        check_read_only(sql, "postgresql")


@pytest.mark.parametrize(
    "sql",
    ["SELECT load_extension('evil')", "SELECT writefile('x', 'y')", "SELECT readfile('/x')"],
)
def test_sqlite_functions_beyond_reading_are_refused(sql: str) -> None:
    """Verify SQLite's extension and file functions are refused."""
    with pytest.raises(InputError, match="beyond reading rows"):
        check_read_only(sql, "sqlite")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COMMIT", "starts with COMMIT"),
        ("SET statement_timeout = 0", "starts with SET"),
        ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'", "starts with COPY"),
        ("CALL p()", "starts with CALL"),
        ("DO $$ BEGIN DELETE FROM victim; END $$", "starts with DO"),
        ("WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d", "contains DELETE"),
        ("WITH d AS (INSERT INTO victim VALUES (1) RETURNING *) SELECT 1", "contains INSERT"),
        ("SELECT * INTO stolen FROM victim", "contains INTO"),
        ("SELECT * FROM victim FOR UPDATE", "contains UPDATE"),
        ("SELECT * FROM victim FOR SHARE", "locks rows"),
        ("SELECT * FROM victim FOR NO KEY UPDATE", "contains UPDATE"),
        ("SELECT * FROM victim FOR KEY SHARE", "locks rows"),
        ('SELECT U&"pg\\005fsleep"(1)', 'instead of U&"'),
        ("SELECT $1", "parameters are written :name"),
    ],
)
def test_what_is_not_one_read_is_refused(sql: str, message: str) -> None:
    """Verify statements that write, lock, change the session or hide names are refused."""
    with pytest.raises(InputError, match=message):
        check_read_only(sql, "postgresql")


def test_parameters_and_the_driver_text() -> None:
    """Verify :name becomes psycopg's placeholder (casts and quoted text left alone, % doubled),
    the query is wrapped as a subquery, and a trailing ; is dropped."""
    sql = "SELECT x::date, ':no' AS t, 5 % 2 FROM t WHERE d = :today; -- done"
    assert check_read_only(sql, "postgresql") == ["today"]
    assert driver_text(sql, "postgresql") == (
        "SELECT * FROM (\nSELECT x::date, ':no' AS t, 5 %% 2 FROM t WHERE d = %(today)s\n) AS source"
    )
    assert driver_text("SELECT :a -- c", "sqlite") == "SELECT * FROM (\nSELECT :a -- c\n) AS source"
    with pytest.raises(InputError, match="parameters are written :name"):
        check_read_only("SELECT @a, $b, ?1", "sqlite")


@pytest.mark.parametrize("sql", ["SELECT 'open", "SELECT E'\\'", "SELECT $a$ x", "/* /* */"])
def test_unterminated_quotes_and_comments_are_refused(sql: str) -> None:
    """Verify a quote or comment left open is an error, not the rest of the query."""
    with pytest.raises(InputError, match="unterminated"):
        tokens(sql, "postgresql")


def test_every_character_lands_in_one_token() -> None:
    """Verify the lexer neither drops nor repeats text (the driver text is built from it)."""
    sql = 'SELECT E\'a\\\'b\' || $t$x$t$, "q""r" /* c /* d */ */ -- e\n, :p::int'
    assert "".join(t.text for t in tokens(sql, "postgresql")) == sql
    sql = "SELECT 'a''b' || [x] || `y` /* c */ -- e\n, :p::int, $v(a;b), x'00'"
    assert "".join(t.text for t in tokens(sql, "sqlite")) == sql


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://reader:s3cret@db:5432/crm",
            "postgresql+psycopg://reader:***@db:5432/crm",
        ),
        (
            "postgresql://reader@db/crm?sslmode=require&password=s3cret&PWD=s3cret",
            "postgresql://reader@db/crm?sslmode=require&password=***&PWD=***",
        ),
        (
            "postgresql://r@db/crm?sslpassword=s3cret&token=s3cret&api_secret=s3cret",
            "postgresql://r@db/crm?sslpassword=***&token=***&api_secret=***",
        ),
        ("postgresql://r:p@ss/s3cret@db/crm", "postgresql://r:***@db/crm"),
        ("sqlite:////data/crm.db", "sqlite:////data/crm.db"),
        ("not a url s3cret", "(unreadable URL)"),
    ],
)
def test_masked_hides_passwords_everywhere_in_the_url(url: str, shown: str) -> None:
    """Verify the userinfo password and password-like query parameters are masked."""
    assert masked(url) == shown
    assert masked(masked(url)) == masked(url)


def test_error_text_is_scrubbed_of_url_secrets() -> None:
    """Verify a driver message quoting a secret (raw or decoded) loses it."""
    url = "postgresql://r:p%40w@db/crm?sslpassword=k%2Fey"
    message = "could not use p@w or p%40w or k/ey"
    assert scrubbed(message, url) == "could not use *** or *** or ***"


def test_ambiguous_and_other_urls_are_refused() -> None:
    """Verify a second @ (a password that could be read two ways) and other databases are
    refused with messages that show nothing of the URL."""
    with pytest.raises(InputError) as ambiguous:
        source_dialect("postgresql://r:p@ss@db/crm")
    assert "ss" not in str(ambiguous.value).replace("password", "")
    with pytest.raises(InputError, match="SQLite or PostgreSQL only"):
        source_dialect("mysql://r:pw@db/crm")
    assert source_dialect("postgresql://r@db/crm") == "postgresql"
