/* SQL through the public API, one statement kind, type and function family at a time:
 * the parser's positioned errors, types with Flink's casting and NULL rules, the
 * built-in scalar functions, DDL (CREATE TABLE with computed, metadata and watermark
 * columns and a primary key, CREATE VIEW, DROP, SET, RESET), INSERT into the
 * filesystem connector and back, statement sets, datagen, and that a script with an error
 * changes nothing. Windows, OVER, joins and Top-N are in test_sql_windows.c; tables from
 * DataStreams and user functions in test_sql_api.c. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fl_test_util.h"
#include "sql_test_util.h"

static int setup(void **state) {
  sql_tmp_init("basic");
  return 0;
}

static int teardown(void **state) {
  sql_tmp_cleanup();
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Parser                                                                             */

static void syntax_errors_name_line_column_and_token(void **state) {
  sql_fails("SELECT 1;\nSELEC 2", FL_EPARSE, "line 2, column 1", "'SELEC'");
  sql_fails("SELECT a FROM t WHERE", FL_EPARSE, "line 1, column 22", "end of input");
  sql_fails("SELECT (1 + 2", FL_EPARSE, "line 1, column 14", "expected ')'");
  sql_fails("CREATE TABLE t (a INT) WITH ('connector' = 'print'", FL_EPARSE, "line 1", "')'");
  sql_fails("SELECT 'abc", FL_EPARSE, "line 1, column 8", "unterminated string");
  sql_fails("SELECT `a", FL_EPARSE, "unterminated quoted identifier", NULL);
  sql_fails("SELECT 1 FROM t\n  WHERE x = #", FL_EPARSE, "line 2, column 13", "'#'");
  sql_fails("SELECT 12abc", FL_EPARSE, "number runs into a name", NULL);
  sql_fails("CREATE TABLE t (a INT, a STRING) WITH ('connector'='print')", FL_EPARSE,
            "'a' is declared twice", NULL);
  sql_fails("CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ('connector'='print')", FL_EPARSE,
            "NOT ENFORCED", NULL);
  sql_fails("CREATE TABLE t (a ARRAY<INT>) WITH ('connector'='print')", FL_EPARSE,
            "ARRAY is not supported", NULL);
  sql_fails("CREATE TABLE t (a DECIMAL(40, 2)) WITH ('connector'='print')", FL_EPARSE,
            "between 1 and 38", NULL);
  sql_fails("SELECT 1 /* never closed", FL_EPARSE, "unterminated comment", NULL);
}

static void comments_quoting_and_case(void **state) {
  SQL_EXPECT("-- a comment\nSELECT /* inline */ 1 AS `the value`, 'it''s' AS `select`;",
             "{\"the value\":1,\"select\":\"it's\"}");
  SQL_EXPECT("select 1 as a, 'x' As b", "{\"a\":1,\"b\":\"x\"}");
  /* column names are case-sensitive */
  sql_fails("SELECT A FROM (VALUES (1)) AS t(a)", FL_EINVAL, "column 'A' not found",
            "did you mean 'a'?");
}

/* ---------------------------------------------------------------------------------- */
/* Types, casts, NULLs                                                                */

static void literals_and_their_types(void **state) {
  SQL_EXPECT(
      "SELECT TYPEOF(1) a, TYPEOF(3000000000) b, TYPEOF(1.50) c, TYPEOF(1e3) d, TYPEOF('ab') e, "
      "TYPEOF(TRUE) f, TYPEOF(DATE '2024-01-02') g, TYPEOF(TIMESTAMP '2024-01-02 03:04:05.678') h, "
      "TYPEOF(NULL) i, TYPEOF(INTERVAL '5' SECOND) j",
      "{\"a\":\"INT NOT NULL\",\"b\":\"BIGINT NOT NULL\",\"c\":\"DECIMAL(3, 2) NOT NULL\","
      "\"d\":\"DOUBLE NOT NULL\",\"e\":\"CHAR(2) NOT NULL\",\"f\":\"BOOLEAN NOT NULL\","
      "\"g\":\"DATE NOT NULL\",\"h\":\"TIMESTAMP(3) NOT NULL\",\"i\":\"NULL\","
      "\"j\":\"INTERVAL SECOND NOT NULL\"}");
  SQL_EXPECT(
      "SELECT DATE '2024-02-29' AS d, TIME '12:34:56' AS t, TIMESTAMP '2024-01-02 03:04:05.5' AS ts, "
      "INTERVAL '1:30' HOUR TO MINUTE AS i",
      "{\"d\":\"2024-02-29\",\"t\":\"12:34:56\",\"ts\":\"2024-01-02 03:04:05.5\",\"i\":\"+0 01:30:00.000\"}");
  sql_fails("SELECT DATE '2024-02-30'", FL_EINVAL, "not a date", NULL);
}

static void arithmetic_follows_flinks_types(void **state) {
  SQL_EXPECT(
      "SELECT 7 / 2 AS a, 7 % 3 AS b, -7 / 2 AS c, 7.0 / 2 AS d, 1.5 + 1 AS e, 2 * 0.25 AS f, "
      "CAST(7 AS DOUBLE) / 2 AS g, TYPEOF(0.908 * CAST(1 AS BIGINT)) AS h, 2147483647 + 1 AS i",
      "{\"a\":3,\"b\":1,\"c\":-3,\"d\":3.500000000000,\"e\":2.5,\"f\":0.50,\"g\":3.5,"
      "\"h\":\"DECIMAL(23, 3) NOT NULL\",\"i\":-2147483648}");
  SQL_EXPECT(
      "SELECT 0.1 + 0.2 AS a, 1.0 / 3 AS b, CAST(2.5 AS DECIMAL(5, 0)) AS c, CAST(-2.5 AS DECIMAL(5, 0)) AS d",
      "{\"a\":0.3,\"b\":0.333333333333,\"c\":3,\"d\":-3}");
  sql_fails("SELECT x / 0 FROM (VALUES (1)) AS t(x)", FL_EUSER, "division by zero", "x / 0");
  sql_fails("SELECT 'a' + 1", FL_EINVAL, "cannot apply '+'", "CHAR(1)");
}

static void casts_follow_flinks_rules(void **state) {
  SQL_EXPECT(
      "SELECT CAST('42' AS INT) a, CAST(' 42 ' AS BIGINT) b, CAST('1.25' AS DECIMAL(5, 1)) c, "
      "CAST(3.99 AS INT) d, CAST(-3.99e0 AS INT) e, CAST(300 AS TINYINT) f, CAST(TRUE AS INT) g, "
      "CAST('yes' AS BOOLEAN) h, CAST(12.5 AS STRING) i, CAST(1e20 AS STRING) j, CAST(0.001 AS DOUBLE) k",
      "{\"a\":42,\"b\":42,\"c\":1.3,\"d\":3,\"e\":-3,\"f\":44,\"g\":1,\"h\":true,\"i\":\"12.5\","
      "\"j\":\"1.0E20\",\"k\":0.001}");
  SQL_EXPECT(
      "SELECT CAST('2024-01-02 03:04:05' AS TIMESTAMP(3)) a, CAST('2024-01-02T03:04:05.123' AS TIMESTAMP(3)) b, "
      "CAST(TIMESTAMP '2024-01-02 03:04:05' AS DATE) c, CAST(DATE '2024-01-02' AS TIMESTAMP(3)) d, "
      "CAST(TIMESTAMP '2024-01-02 03:04:05.678' AS STRING) e, CAST(CAST(86400 AS TIMESTAMP_LTZ(3)) AS STRING) f",
      "{\"a\":\"2024-01-02 03:04:05\",\"b\":\"2024-01-02 03:04:05.123\",\"c\":\"2024-01-02\","
      "\"d\":\"2024-01-02 00:00:00\",\"e\":\"2024-01-02 03:04:05.678\",\"f\":\"1970-01-02 00:00:00.000\"}");
  SQL_EXPECT(
      "SELECT TRY_CAST('abc' AS INT) a, TRY_CAST('2024-13-01' AS DATE) b, CAST(CAST(12345.678 AS DECIMAL(8, 3)) AS DECIMAL(4, 1)) c",
      "{\"a\":null,\"b\":null,\"c\":null}");
  sql_fails("SELECT CAST(s AS INT) FROM (VALUES ('x1')) AS t(s)", FL_EUSER,
            "cannot cast 'x1' to INT", "TRY_CAST");
  sql_fails("SELECT CAST(DATE '2024-01-01' AS INT)", FL_EINVAL, "cannot cast", "DATE");
}

static void null_rules(void **state) {
  SQL_EXPECT(
      "SELECT 1 + CAST(NULL AS INT) a, NULL = NULL b, NULL IS NULL c, 1 IS NOT NULL d, "
      "(NULL AND FALSE) e, (NULL OR TRUE) f, (NULL AND TRUE) g, NOT CAST(NULL AS BOOLEAN) h, "
      "CAST(NULL AS STRING) || 'x' i, NULL IS DISTINCT FROM NULL j, 1 IS DISTINCT FROM NULL k, "
      "COALESCE(NULL, 2, 3) l, NULLIF(1, 1) m, IFNULL(CAST(NULL AS INT), 5) n",
      "{\"a\":null,\"b\":null,\"c\":true,\"d\":true,\"e\":false,\"f\":true,\"g\":null,\"h\":null,"
      "\"i\":null,\"j\":false,\"k\":true,\"l\":2,\"m\":null,\"n\":5}");
  /* WHERE keeps only TRUE; CASE treats NULL as not true; IN with NULLs */
  SQL_EXPECT(
      "SELECT x, CASE WHEN x > 1 THEN 'big' WHEN x IS NULL THEN 'none' ELSE 'small' END AS k, "
      "x IN (1, NULL) AS i FROM (VALUES (1), (2), (CAST(NULL AS INT))) AS t(x) WHERE x IS NULL OR x >= 1",
      "{\"x\":1,\"k\":\"small\",\"i\":true}", "{\"x\":2,\"k\":\"big\",\"i\":null}",
      "{\"x\":null,\"k\":\"none\",\"i\":null}");
}

static void comparisons_and_predicates(void **state) {
  SQL_EXPECT(
      "SELECT 2 BETWEEN 1 AND 3 a, 5 NOT BETWEEN 1 AND 3 b, 'abc' LIKE 'a%' c, 'abc' LIKE '_b_' d, "
      "'a%c' LIKE 'a!%c' ESCAPE '!' e, 'abc' NOT LIKE '%d' f, 3 IN (1, 2, 3) g, 'b' > 'a' h, "
      "1 = 1.0 i, TIMESTAMP '2024-01-01 00:00:00' < TIMESTAMP '2024-01-01 00:00:01' j, 1 <> 2 k, "
      "CASE 2 WHEN 1 THEN 'one' WHEN 2 THEN 'two' END l, x = '5' m FROM (VALUES (5)) AS t(x)",
      "{\"a\":true,\"b\":true,\"c\":true,\"d\":true,\"e\":true,\"f\":true,\"g\":true,\"h\":true,"
      "\"i\":true,\"j\":true,\"k\":true,\"l\":\"two\",\"m\":true}");
}

/* ---------------------------------------------------------------------------------- */
/* Functions                                                                          */

static void string_functions(void **state) {
  SQL_EXPECT(
      "SELECT CHAR_LENGTH('héllo') a, UPPER('abC') b, LOWER('AbC') c, INITCAP('hello world') d, "
      "TRIM('  x  ') e, LTRIM('  x') f, RTRIM('x  ') g, TRIM(BOTH 'x' FROM 'xxaxx') h, "
      "POSITION('b' IN 'abc') i, LOCATE('c', 'abcabc', 4) j, SUBSTRING('abcdef', 2, 3) k, "
      "SUBSTRING('abcdef' FROM 4) l, SUBSTR('abc', -2) m, REPLACE('a-b-c', '-', '+') n, "
      "CONCAT('a', 'b', 'c') o, CONCAT_WS('-', 'a', CAST(NULL AS STRING), 'c') p, LPAD('5', 3, '0') q, "
      "RPAD('ab', 4, 'xy') r, LEFT('abcd', 2) s, RIGHT('abcd', 2) t, REPEAT('ab', 3) u, REVERSE('abc') v",
      "{\"a\":5,\"b\":\"ABC\",\"c\":\"abc\",\"d\":\"Hello World\",\"e\":\"x\",\"f\":\"x\",\"g\":\"x\","
      "\"h\":\"a\",\"i\":2,\"j\":6,\"k\":\"bcd\",\"l\":\"def\",\"m\":\"bc\",\"n\":\"a+b+c\",\"o\":\"abc\","
      "\"p\":\"a-c\",\"q\":\"005\",\"r\":\"abxy\",\"s\":\"ab\",\"t\":\"cd\",\"u\":\"ababab\",\"v\":\"cba\"}");
  SQL_EXPECT(
      "SELECT SPLIT_INDEX('a,b,c', ',', 1) a, SPLIT_INDEX('a,b', ',', 5) b, REGEXP('abc123', '[0-9]+') c, "
      "REGEXP_EXTRACT('user=bob;id=7', 'id=([0-9]+)', 1) d, REGEXP_REPLACE('a1b22c', '[0-9]+', '#') e, "
      "ASCII('A') f, CHR(66) g, TO_BASE64('hi') h, FROM_BASE64('aGk=') i, CHAR_LENGTH(UUID()) j, "
      "JSON_VALUE('{\"a\":{\"b\":[1,\"x\"]}}', '$.a.b[1]') k, JSON_VALUE('{\"a\":1}', '$.z') l, 'a' || 'b' m, "
      "INSTR('abc', 'c') n",
      "{\"a\":\"b\",\"b\":null,\"c\":true,\"d\":\"7\",\"e\":\"a#b#c\",\"f\":65,\"g\":\"B\",\"h\":\"aGk=\","
      "\"i\":\"hi\",\"j\":36,\"k\":\"x\",\"l\":null,\"m\":\"ab\",\"n\":3}");
  sql_fails("SELECT UPPER(1)", FL_EINVAL, "UPPER: argument 1 must be a string", NULL);
  sql_fails("SELECT SUBSTRING('abc')", FL_EINVAL, "SUBSTRING takes 2 to 3 arguments, not 1", NULL);
}

static void math_functions(void **state) {
  SQL_EXPECT(
      "SELECT ABS(-3) a, ABS(-2.5) b, MOD(10, 3) c, POWER(2, 10) d, SQRT(16) e, LN(1) f, LOG10(1000) g, "
      "LOG2(8) h, LOG(2, 8) i, EXP(0) j, CEIL(1.2) k, FLOOR(-1.2) l, ROUND(2.345, 2) m, ROUND(-2.5) n, "
      "TRUNCATE(2.789, 1) o, SIGN(-5) p, ROUND(1234, -2) q, CEIL(2.0E0) r, DEGREES(PI()) s, "
      "GREATEST(1, 5, 3) t, LEAST(2.5, 1) u, IF(1 > 2, 'y', 'n') v",
      "{\"a\":3,\"b\":2.5,\"c\":1,\"d\":1024.0,\"e\":4.0,\"f\":0.0,\"g\":3.0,\"h\":3.0,\"i\":3.0,"
      "\"j\":1.0,\"k\":2,\"l\":-2,\"m\":2.35,\"n\":-3,\"o\":2.7,\"p\":-1,\"q\":1200,\"r\":2.0,"
      "\"s\":180.0,\"t\":5,\"u\":1.0,\"v\":\"n\"}");
  SQL_EXPECT("SELECT RAND() < 1 AS a, RAND_INTEGER(10) < 10 AS b", "{\"a\":true,\"b\":true}");
  sql_fails("SELECT LN(x) FROM (VALUES (0)) AS t(x)", FL_EUSER, "LN must be positive", NULL);
}

static void date_time_functions(void **state) {
  SQL_EXPECT(
      "SELECT EXTRACT(YEAR FROM ts) a, EXTRACT(MONTH FROM ts) b, DAYOFMONTH(ts) c, HOUR(ts) d, "
      "MINUTE(ts) e, SECOND(ts) f, QUARTER(ts) g, DAYOFWEEK(ts) h, DAYOFYEAR(ts) i, WEEK(ts) j, "
      "DATE_FORMAT(ts, 'yyyy/MM/dd HH:mm:ss.SSS') k, FLOOR(ts TO HOUR) l, CEIL(ts TO DAY) m, "
      "ts + INTERVAL '1' DAY n, ts - INTERVAL '90' MINUTE o, ts + INTERVAL '1' MONTH p, "
      "TIMESTAMPADD(HOUR, 2, ts) q, TIMESTAMPDIFF(MINUTE, ts, ts + INTERVAL '2' HOUR) r, "
      "FLOOR(ts TO MONTH) s "
      "FROM (VALUES (TIMESTAMP '2024-01-31 10:20:30.456')) AS t(ts)",
      "{\"a\":2024,\"b\":1,\"c\":31,\"d\":10,\"e\":20,\"f\":30,\"g\":1,\"h\":4,\"i\":31,\"j\":5,"
      "\"k\":\"2024/01/31 10:20:30.456\",\"l\":\"2024-01-31 10:00:00\",\"m\":\"2024-02-01 00:00:00\","
      "\"n\":\"2024-02-01 10:20:30.456\",\"o\":\"2024-01-31 08:50:30.456\",\"p\":\"2024-02-29 10:20:30.456\","
      "\"q\":\"2024-01-31 12:20:30.456\",\"r\":120,\"s\":\"2024-01-01 00:00:00\"}");
  SQL_EXPECT(
      "SELECT TO_TIMESTAMP('2024-01-02 03:04:05') a, TO_TIMESTAMP('02/01/2024', 'dd/MM/yyyy') b, "
      "TO_DATE('2024-03-04') c, UNIX_TIMESTAMP('1970-01-02 00:00:00') d, FROM_UNIXTIME(86400) e, "
      "TO_TIMESTAMP_LTZ(1704067200000, 3) f, TO_TIMESTAMP_LTZ(1704067200, 0) g, TO_TIMESTAMP('junk') h, "
      "CURRENT_TIMESTAMP IS NOT NULL i, TYPEOF(PROCTIME()) j, TYPEOF(LOCALTIMESTAMP) k",
      "{\"a\":\"2024-01-02 03:04:05\",\"b\":\"2024-01-02 00:00:00\",\"c\":\"2024-03-04\",\"d\":86400,"
      "\"e\":\"1970-01-02 00:00:00\",\"f\":\"2024-01-01 00:00:00Z\",\"g\":\"2024-01-01 00:00:00Z\",\"h\":null,"
      "\"i\":true,\"j\":\"TIMESTAMP_LTZ(3) NOT NULL\",\"k\":\"TIMESTAMP(3) NOT NULL\"}");
}

static void time_zone_setting(void **state) {
  SQL_EXPECT(
      "SET 'table.local-time-zone' = '+08:00';\n"
      "SELECT CAST(TO_TIMESTAMP_LTZ(0, 3) AS STRING) a, CAST(TO_TIMESTAMP_LTZ(0, 3) AS TIMESTAMP(3)) b, "
      "HOUR(TO_TIMESTAMP_LTZ(0, 3)) c",
      "{\"a\":\"1970-01-01 08:00:00.000\",\"b\":\"1970-01-01 08:00:00\",\"c\":8}");
  sql_fails("SET 'table.local-time-zone' = 'Mars/Olympus'", FL_ECONFIG, "line 1, column 1",
            "fixed offset");
}

/* Asserts that the script printf makes of fmt fails with code and the fragments. */
static void script_fails(int code, const char *frag1, const char *frag2, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void script_fails(int code, const char *frag1, const char *frag2, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *script = NULL;
  assert_true(vasprintf(&script, fmt, ap) >= 0);
  va_end(ap);
  sql_fails(script, code, frag1, frag2);
  free(script);
}

static void nested_rows_and_field_access(void **state) {
  char path[512];
  sql_write_file("nested.json",
                 "{\"id\":1,\"p\":{\"name\":\"ann\",\"addr\":{\"city\":\"Oslo\"}}}\n"
                 "{\"id\":2,\"p\":null}\n"
                 "{\"id\":3,\"p\":{\"name\":\"bo\"}}\n",
                 path, sizeof path);
  char *script = sql_fmt(
      "CREATE TABLE t (id INT, p ROW<name STRING, addr ROW<city STRING>>) "
      "WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "SELECT id, t.p.name AS name, p.addr.city AS city, (p).name AS n2, ROW(id, 'x') AS r FROM t",
      path);
  SQL_EXPECT(
      script,
      "{\"id\":1,\"name\":\"ann\",\"city\":\"Oslo\",\"n2\":\"ann\",\"r\":{\"EXPR$0\":1,\"EXPR$1\":\"x\"}}",
      "{\"id\":2,\"name\":null,\"city\":null,\"n2\":null,\"r\":{\"EXPR$0\":2,\"EXPR$1\":\"x\"}}",
      "{\"id\":3,\"name\":\"bo\",\"city\":null,\"n2\":\"bo\",\"r\":{\"EXPR$0\":3,\"EXPR$1\":\"x\"}}");
  free(script);
  script_fails(
      FL_EINVAL, "no field 'nam'", "did you mean 'name'?",
      "CREATE TABLE t (id INT, p ROW<name STRING>) WITH ('connector' = 'filesystem', 'path' = '%s', "
      "'format' = 'json');\nSELECT p.nam FROM t",
      path);
}

/* ---------------------------------------------------------------------------------- */
/* Statements                                                                         */

static void unknown_names_suggest_the_nearest(void **state) {
  sql_fails(
      "CREATE TABLE orders (amount DOUBLE) WITH ('connector' = 'datagen');\nSELECT amount FROM ordrs",
      FL_EINVAL, "line 2, column 20", "table 'ordrs' not found; did you mean 'orders'?");
  sql_fails(
      "CREATE TABLE orders (amount DOUBLE) WITH ('connector' = 'datagen');\nSELECT amout FROM orders",
      FL_EINVAL, "line 2, column 8", "column 'amout' not found; did you mean 'amount'?");
  sql_fails("SELECT UPPPER('a')", FL_EINVAL, "no function named 'UPPPER'", "did you mean 'UPPER'?");
  sql_fails("CREATE TABLE t (a INT) WITH ('connector' = 'kafak')", FL_EINVAL,
            "unknown connector 'kafak'", "did you mean 'kafka'?");
  sql_fails("CREATE TABLE t (a INT) WITH ('connector' = 'datagen', 'rows-per-secnd' = '1')",
            FL_EINVAL, "unsupported option 'rows-per-secnd'", "did you mean 'rows-per-second'?");
  sql_fails("SELECT 1 FROM (VALUES (1, 2)) AS x(a, b) JOIN (VALUES (3)) AS y(a) ON a = 1",
            FL_EINVAL, "column 'a' is ambiguous: it could be x.a, y.a", NULL);
}

static void type_errors_name_expression_and_types(void **state) {
  sql_fails("SELECT x + s FROM (VALUES (1, 'a')) AS t(x, s)", FL_EINVAL,
            "cannot apply '+' to 'x' (INT", "'s' (CHAR(1)");
  sql_fails("SELECT x FROM (VALUES (1)) AS t(x) WHERE x", FL_EINVAL, "WHERE needs a BOOLEAN", NULL);
  sql_fails("SELECT CASE WHEN TRUE THEN 1 ELSE 'a' END", FL_EINVAL, "no common type", NULL);
  sql_fails(
      "CREATE TABLE s (a INT) WITH ('connector' = 'blackhole');\n"
      "INSERT INTO s SELECT 'x'",
      FL_EINVAL, "column 'a' of table 's' is INT", "CHAR(1)");
}

static void create_table_columns_watermark_and_key(void **state) {
  char path[512];
  sql_write_file("tx.json",
                 "{\"id\":\"a\",\"amount\":2.5,\"ts\":\"2024-01-01 00:00:01\"}\n"
                 "{\"id\":\"b\",\"amount\":4,\"ts\":\"2024-01-01T00:00:02.250\"}\n",
                 path, sizeof path);
  char *script = sql_fmt(
      "CREATE TABLE tx (id STRING, amount DOUBLE, ts TIMESTAMP(3), doubled AS amount * 2, "
      "day AS CAST(ts AS DATE), pt AS PROCTIME(), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND, "
      "PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "SELECT id, doubled, day, pt IS NOT NULL AS has_pt FROM tx",
      path);
  SQL_EXPECT(script, "{\"id\":\"a\",\"doubled\":5.0,\"day\":\"2024-01-01\",\"has_pt\":true}",
             "{\"id\":\"b\",\"doubled\":8.0,\"day\":\"2024-01-01\",\"has_pt\":true}");
  free(script);
  sql_fails("CREATE TABLE t (a INT, WATERMARK FOR a AS a) WITH ('connector' = 'datagen')",
            FL_EINVAL, "must be TIMESTAMP(3) or TIMESTAMP_LTZ(3)", NULL);
  sql_fails(
      "CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR tz AS tz) WITH ('connector' = 'datagen')",
      FL_EINVAL, "WATERMARK FOR 'tz': no such column", NULL);
  sql_fails(
      "CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR ts AS ts * 2) WITH ('connector' = 'datagen')",
      FL_EINVAL, "unsupported WATERMARK expression", NULL);
  sql_fails("CREATE TABLE t (a INT, PRIMARY KEY (b) NOT ENFORCED) WITH ('connector' = 'datagen')",
            FL_EINVAL, "PRIMARY KEY column 'b' does not exist", NULL);
  sql_fails(
      "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nCREATE TABLE t (b INT) WITH ('connector' = "
      "'datagen')",
      FL_EINVAL, "line 2", "'t' already exists");
  SQL_EXPECT(
      "CREATE TABLE t (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '0');\n"
      "CREATE TABLE IF NOT EXISTS t (b INT) WITH ('connector' = 'datagen');\nSELECT 1 AS one",
      "{\"one\":1}");
}

static void views_drop_set_reset(void **state) {
  SQL_EXPECT(
      "CREATE VIEW v AS SELECT x * 2 AS y FROM (VALUES (1), (2)) AS t(x);\n"
      "CREATE VIEW w (z) AS SELECT y + 1 FROM v WHERE y > 2;\n"
      "SELECT z FROM w",
      "{\"z\":5}");
  sql_fails("CREATE VIEW v AS SELECT 1 AS a;\nDROP VIEW v;\nSELECT a FROM v", FL_EINVAL, "line 3",
            "table 'v' not found");
  sql_fails("DROP TABLE nothere", FL_EINVAL, "'nothere' does not exist", NULL);
  SQL_EXPECT("DROP TABLE IF EXISTS nothere; SELECT 1 AS a", "{\"a\":1}");
  sql_fails("CREATE VIEW v AS SELECT 1 AS a;\nDROP TABLE v", FL_EINVAL, "'v' is a view", NULL);
  SQL_EXPECT(
      "SET 'parallelism.default' = '2';\nSET 'pipeline.name' = 'job';\nRESET 'pipeline.name';\n"
      "SELECT 1 AS a",
      "{\"a\":1}");
  sql_fails("SET 'parallelism.default' = 'many'", FL_ECONFIG, "parallelism", NULL);
  sql_fails("SET 'no.such.key' = '1'", FL_ECONFIG, "no.such.key", NULL);
  /* configuration keys apply to the job being built: not after its environment exists */
  fl_sql_env_t *s;
  char err[1024];
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  assert_int_equal(fl_sql_execute(s, "SET 'parallelism' = '2';\nSELECT 1 AS a", err, sizeof err),
                   0);
  assert_string_equal(fl_sql_get(s, "parallelism.default"), "2");
  assert_int_equal(fl_sql_execute(s, "SET 'parallelism' = '3'", err, sizeof err), FL_ECONFIG);
  assert_non_null(strstr(err, "must be set before"));
  assert_int_equal(fl_sql_set(s, "table.exec.source.idle-timeout", "5s", err, sizeof err), 0);
  fl_sql_env_destroy(s);
}

static void a_failed_script_changes_nothing(void **state) {
  fl_sql_env_t *s;
  char err[1024];
  assert_int_equal(fl_sql_env_new(&s, err, sizeof err), 0);
  /* the CREATE TABLE before the error is not kept, and no job is built */
  int rc = fl_sql_execute(
      s,
      "CREATE TABLE keep (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');\n"
      "INSERT INTO nowhere SELECT a FROM keep",
      err, sizeof err);
  assert_int_equal(rc, FL_EINVAL);
  assert_non_null(strstr(err, "table 'nowhere' not found"));
  assert_int_equal(fl_sql_has_job(s), 0);
  rc = fl_sql_execute(s, "SELECT a FROM keep", err, sizeof err);
  assert_int_equal(rc, FL_EINVAL);
  assert_non_null(strstr(err, "table 'keep' not found"));
  /* a good script afterwards works */
  assert_int_equal(
      fl_sql_execute(
          s,
          "CREATE TABLE keep (a INT) WITH ('connector' = 'datagen', "
          "'number-of-rows' = '3', 'fields.a.kind' = 'sequence', 'fields.a.start' = '1', "
          "'fields.a.end' = '3')",
          err, sizeof err),
      0);
  assert_int_equal(fl_sql_has_job(s), 0);
  fl_sql_env_destroy(s);
}

static void insert_into_files_and_read_back(void **state) {
  char out[512];
  snprintf(out, sizeof out, "%s/out", sql_tmp);
  char *script = sql_fmt(
      "CREATE TABLE src (n BIGINT, s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '5', "
      "'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '5', 'fields.s.length' = '3');\n"
      "CREATE TABLE dst (n BIGINT, twice BIGINT, note STRING) WITH ('connector' = 'filesystem', 'path' = '%s', "
      "'format' = 'json');\n"
      "EXECUTE STATEMENT SET BEGIN\n"
      "  INSERT INTO dst SELECT n, n * 2, CAST(NULL AS STRING) FROM src WHERE n <= 3;\n"
      "  INSERT INTO dst (n, note) SELECT n + 100, 'extra' FROM src WHERE n = 5;\n"
      "END;",
      out);
  sql_rows_t r;
  sql_ok(script, &r);
  assert_int_equal(r.n, 0);
  sql_rows_free(&r);
  free(script);
  script = sql_fmt(
      "CREATE TABLE back (n BIGINT, twice BIGINT, note STRING) WITH ('connector' = 'filesystem', "
      "'path' = '%s', 'format' = 'json');\nSELECT * FROM back",
      out);
  SQL_EXPECT(script, "{\"n\":1,\"twice\":2,\"note\":null}",
             "{\"n\":105,\"twice\":null,\"note\":\"extra\"}", "{\"n\":2,\"twice\":4,\"note\":null}",
             "{\"n\":3,\"twice\":6,\"note\":null}");
  free(script);
}

static void json_format_options(void **state) {
  char path[512];
  sql_write_file("j.json",
                 "{\"a\":\"7\",\"b\":true,\"c\":{\"x\":1},\"d\":1704067200000}\n"
                 "\n"
                 "{\"a\":8}\n",
                 path, sizeof path);
  char *script = sql_fmt(
      "CREATE TABLE j (a INT, b BOOLEAN, c STRING, d TIMESTAMP(3)) WITH ("
      "'connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\nSELECT * FROM j",
      path);
  SQL_EXPECT(script, "{\"a\":7,\"b\":true,\"c\":\"{\\\"x\\\":1}\",\"d\":\"2024-01-01 00:00:00\"}",
             "{\"a\":8,\"b\":null,\"c\":null,\"d\":null}");
  free(script);
  script_fails(FL_EUSER, "field 'b' is missing", "line 3",
               "CREATE TABLE j (a INT, b BOOLEAN) WITH ('connector' = 'filesystem', 'path' = '%s', "
               "'format' = 'json', 'json.fail-on-missing-field' = 'true');\nSELECT * FROM j",
               path);
  sql_write_file("bad.json", "{\"a\":1}\n{\"a\":\"x\"}\nnot json\n{\"a\":3}\n", path, sizeof path);
  script_fails(
      FL_EUSER, "line 2", "'x' is not a valid INT",
      "CREATE TABLE j (a INT) WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "SELECT * FROM j",
      path);
  script = sql_fmt(
      "CREATE TABLE j (a INT) WITH ('connector' = 'filesystem', 'path' = '%s', 'format' = 'json', "
      "'json.ignore-parse-errors' = 'true');\nSELECT * FROM j",
      path);
  SQL_EXPECT(script, "{\"a\":1}", "{\"a\":3}");
  free(script);
  sql_fails(
      "CREATE TABLE j (a INT) WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'csv')",
      FL_ENOTSUP, "unsupported format 'csv'", NULL);
}

static void datagen_sequences_and_bounds(void **state) {
  SQL_EXPECT(
      "CREATE TABLE g (id INT, v DOUBLE, s STRING) WITH ('connector' = 'datagen', "
      "'fields.id.kind' = 'sequence', 'fields.id.start' = '10', 'fields.id.end' = '12', "
      "'fields.v.min' = '1', 'fields.v.max' = '2', 'fields.s.length' = '4');\n"
      "SELECT id, v >= 1 AND v <= 2 AS in_range, CHAR_LENGTH(s) AS len FROM g",
      "{\"id\":10,\"in_range\":true,\"len\":4}", "{\"id\":11,\"in_range\":true,\"len\":4}",
      "{\"id\":12,\"in_range\":true,\"len\":4}");
}

static void unsupported_statements_say_so(void **state) {
  sql_fails("SELECT x FROM (VALUES (1)) AS t(x) ORDER BY x", FL_ENOTSUP,
            "ORDER BY is not supported", NULL);
  sql_fails("SELECT DISTINCT x FROM (VALUES (1)) AS t(x)", FL_ENOTSUP, "updating result", NULL);
  sql_fails("SELECT x FROM (VALUES (1)) AS t(x) UNION SELECT 2", FL_ENOTSUP, "UNION ALL", NULL);
  SQL_EXPECT("SELECT x FROM (VALUES (1)) AS t(x) UNION ALL SELECT 2.5", "{\"x\":1.0}",
             "{\"x\":2.5}");
  sql_fails("CREATE FUNCTION f AS 'x'", FL_EPARSE, "fl_sql_create_function", NULL);
}

static void remaining_types_round_trip(void **state) {
  char path[512];
  sql_write_file(
      "types.json",
      "{\"ti\":127,\"si\":-300,\"f\":1.5,\"vc\":\"abcdef\",\"ch\":\"ab\",\"bt\":\"hi\","
      "\"tm\":\"12:30:15\",\"ltz\":\"2024-01-01T10:00:00Z\",\"dc\":\"123.456\",\"bo\":\"false\"}\n",
      path, sizeof path);
  char *script = sql_fmt(
      "CREATE TABLE t (ti TINYINT, si SMALLINT, f FLOAT, vc VARCHAR(3), ch CHAR(4), bt BYTES, "
      "tm TIME, ltz TIMESTAMP_LTZ(3), dc DECIMAL(6, 2), bo BOOLEAN) WITH ('connector' = "
      "'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "SELECT ti + 1 AS a, si * 2 AS b, f * 2 AS c, vc, CAST(vc AS CHAR(5)) || '|' AS d, "
      "CHAR_LENGTH(CAST(bt AS STRING)) AS e, tm, HOUR(tm) AS h, ltz, CAST(ltz AS TIMESTAMP(3)) AS lt, dc, "
      "NOT bo AS nb, TYPEOF(dc + 1) AS tdc FROM t",
      path);
  SQL_EXPECT(
      script,
      "{\"a\":128,\"b\":-600,\"c\":3.0,\"vc\":\"abc\",\"d\":\"abc  |\",\"e\":2,"
      "\"tm\":\"12:30:15\",\"h\":12,\"ltz\":\"2024-01-01 10:00:00Z\",\"lt\":\"2024-01-01 10:00:00\","
      "\"dc\":123.46,\"nb\":true,\"tdc\":\"DECIMAL(13, 2)\"}");
  free(script);
}

static void remaining_functions(void **state) {
  SQL_EXPECT(
      "SELECT CEILING(1.1) a, ROUND(COT(PI() / 4), 6) b, ROUND(ASIN(1), 6) c, ROUND(ACOS(1), 6) d, "
      "ROUND(ATAN(1), 6) e, ROUND(ATAN2(1, 1), 6) f, SINH(0) g, COSH(0) h, TANH(0) i, RADIANS(180) = PI() j, "
      "ROUND(SIN(0), 6) k, ROUND(COS(0), 6) l, ROUND(TAN(0), 6) m, E() > 2.7 n, POW(3, 2) o",
      "{\"a\":2,\"b\":1.0,\"c\":1.570796,\"d\":0.0,\"e\":0.785398,\"f\":0.785398,\"g\":0.0,"
      "\"h\":1.0,\"i\":0.0,\"j\":true,\"k\":0.0,\"l\":1.0,\"m\":0.0,\"n\":true,\"o\":9.0}");
  SQL_EXPECT(
      "SELECT CURRENT_DATE IS NOT NULL a, CURRENT_TIME IS NOT NULL b, LOCALTIME IS NOT NULL c, "
      "NOW() IS NOT NULL d, UNIX_TIMESTAMP() > 0 e, CURRENT_ROW_TIMESTAMP() IS NOT NULL f, "
      "EXTRACT(DOW FROM DATE '2024-01-07') g, EXTRACT(EPOCH FROM TIMESTAMP '1970-01-01 00:01:00') h, "
      "EXTRACT(DAY FROM INTERVAL '3' DAY) i, FROM_UNIXTIME(0, 'yyyy') j, TO_DATE('07/01/2024', 'dd/MM/yyyy') k",
      "{\"a\":true,\"b\":true,\"c\":true,\"d\":true,\"e\":true,\"f\":true,\"g\":1,\"h\":60,"
      "\"i\":3,\"j\":\"1970\",\"k\":\"2024-01-07\"}");
  char path[512];
  sql_write_file(
      "agg.json",
      "{\"g\":1,\"x\":2,\"ts\":0}\n{\"g\":1,\"x\":4,\"ts\":1}\n{\"g\":1,\"x\":null,\"ts\":2}\n"
      "{\"g\":1,\"x\":4,\"ts\":3}\n",
      path, sizeof path);
  char *script = sql_fmt(
      "CREATE TABLE a (g INT, x INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = "
      "'filesystem', 'path' = '%s', 'format' = 'json');\n"
      "SELECT SUM0(x) AS s0, SUM0(x) FILTER (WHERE x > 10) AS s00, VAR_SAMP(x) AS vs, VAR_POP(x) AS vp, "
      "STDDEV_SAMP(x) AS ss, LAST_VALUE(x) AS lv, COUNT(DISTINCT x) AS cd, SUM(DISTINCT x) AS sd, "
      "AVG(CAST(x AS DOUBLE)) AS ad, MIN(CAST(x AS STRING)) AS ms, SUM(CAST(x AS DECIMAL(5, 1))) AS dsum, "
      "AVG(CAST(x AS DECIMAL(5, 1))) AS davg FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' SECOND)) "
      "GROUP BY window_start, window_end",
      path);
  SQL_EXPECT(
      script,
      "{\"s0\":10,\"s00\":0,\"vs\":1.3333333333333333,\"vp\":0.8888888888888888,"
      "\"ss\":1.1547005383792515,\"lv\":4,\"cd\":2,\"sd\":6,\"ad\":3.3333333333333335,\"ms\":\"2\","
      "\"dsum\":10.0,\"davg\":3.333333}");
  free(script);
  sql_fails("SELECT LISTAGG(x) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND))", 0,
            NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(syntax_errors_name_line_column_and_token),
      cmocka_unit_test(comments_quoting_and_case),
      cmocka_unit_test(literals_and_their_types),
      cmocka_unit_test(arithmetic_follows_flinks_types),
      cmocka_unit_test(casts_follow_flinks_rules),
      cmocka_unit_test(null_rules),
      cmocka_unit_test(comparisons_and_predicates),
      cmocka_unit_test(string_functions),
      cmocka_unit_test(math_functions),
      cmocka_unit_test(date_time_functions),
      cmocka_unit_test(time_zone_setting),
      cmocka_unit_test(nested_rows_and_field_access),
      cmocka_unit_test(unknown_names_suggest_the_nearest),
      cmocka_unit_test(type_errors_name_expression_and_types),
      cmocka_unit_test(create_table_columns_watermark_and_key),
      cmocka_unit_test(views_drop_set_reset),
      cmocka_unit_test(a_failed_script_changes_nothing),
      cmocka_unit_test(insert_into_files_and_read_back),
      cmocka_unit_test(json_format_options),
      cmocka_unit_test(datagen_sequences_and_bounds),
      cmocka_unit_test(unsupported_statements_say_so),
      cmocka_unit_test(remaining_types_round_trip),
      cmocka_unit_test(remaining_functions),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
