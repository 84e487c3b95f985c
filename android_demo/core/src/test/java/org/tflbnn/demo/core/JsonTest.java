package org.tflbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
    @Test
    public void parsesEveryScalar() throws JsonException {
        assertEquals(Boolean.TRUE, Json.parse("true"));
        assertEquals(Boolean.FALSE, Json.parse("false"));
        assertNull(Json.parse("null"));
        assertEquals("text", Json.parse("\"text\""));
        assertEquals("", Json.parse("\"\""));
    }

    @Test
    public void integersAreLongsLikePythonsInts() throws JsonException {
        assertEquals(Long.valueOf(0), Json.parse("0"));
        assertEquals(Long.valueOf(0), Json.parse("-0"));
        assertEquals(Long.valueOf(42), Json.parse("42"));
        assertEquals(Long.valueOf(-7), Json.parse("-7"));
        assertEquals(Long.valueOf(Long.MAX_VALUE), Json.parse("9223372036854775807"));
        assertEquals(Long.valueOf(Long.MIN_VALUE), Json.parse("-9223372036854775808"));
        // Beyond a long: a double, like any other number that is not a plain integer.
        assertEquals(Double.valueOf(9.223372036854775808e18), Json.parse("9223372036854775808"));
    }

    @Test
    public void numbersWithFractionOrExponentAreDoublesLikePythonsFloats() throws JsonException {
        assertEquals(Double.valueOf(1), Json.parse("1.0"));
        assertEquals(Double.valueOf(100), Json.parse("1e2"));
        assertEquals(Double.valueOf(-0.0), Json.parse("-0.0"));
        assertEquals(Double.valueOf(-7.25), Json.parse("-7.25"));
        assertEquals(Double.valueOf(1500), Json.parse("1.5e3"));
        assertEquals(Double.valueOf(1500), Json.parse("1.5E+3"));
        assertEquals(Double.valueOf(-0.0125), Json.parse("-1.25e-2"));
        assertEquals(Double.valueOf(0.28604059698879547), Json.parse("0.28604059698879547"));
        assertEquals(Double.valueOf(1e-300), Json.parse("1e-300"));
    }

    @Test
    public void surroundingWhitespaceIsAllowed() throws JsonException {
        assertEquals(Long.valueOf(1), Json.parse(" \t\r\n1\n "));
    }

    @Test
    public void parsesNestedDocumentsIntoPlainCollections() throws JsonException {
        Object parsed = Json.parse(
                "{\"b\": [1, {\"c\": null, \"d\": [true, false, []]}, \"x\"], \"a\": {}}");
        Map<String, Object> inner = new LinkedHashMap<String, Object>();
        inner.put("c", null);
        inner.put("d", Arrays.<Object>asList(Boolean.TRUE, Boolean.FALSE,
                new ArrayList<Object>()));
        Map<String, Object> expected = new LinkedHashMap<String, Object>();
        expected.put("b", Arrays.<Object>asList(1L, inner, "x"));
        expected.put("a", new LinkedHashMap<String, Object>());
        assertEquals(expected, parsed);
        assertTrue(parsed instanceof LinkedHashMap);
        assertTrue(((Map<?, ?>) parsed).get("b") instanceof ArrayList);
        // Member order is the document's, not sorted.
        assertEquals(Arrays.asList("b", "a"), new ArrayList<Object>(((Map<?, ?>) parsed).keySet()));
    }

    @Test
    public void repeatedNameKeepsTheLastValueLikePython() throws JsonException {
        Map<?, ?> parsed = (Map<?, ?>) Json.parse("{\"k\": 1, \"k\": 2}");
        assertEquals(1, parsed.size());
        assertEquals(2L, parsed.get("k"));
    }

    @Test
    public void decodesEveryEscape() throws JsonException {
        assertEquals("\" \\ / \b \f \n \r \t",
                Json.parse("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""));
        assertEquals("\u00e9\u20ac", Json.parse("\"\\u00e9\\u20AC\""));
        assertEquals("caf\u00e9 raw", Json.parse("\"caf\u00e9 raw\""));
    }

    @Test
    public void surrogatePairEscapesFormOneCodePoint() throws JsonException {
        String smiley = (String) Json.parse("\"\\uD83D\\uDE00\"");
        assertEquals(2, smiley.length());
        assertEquals(0x1F600, smiley.codePointAt(0));
        assertEquals(1, smiley.codePointCount(0, smiley.length()));
    }

    @Test
    public void trailingCommasAreRejected() {
        assertInvalid("[1, 2,]", 6, "expected a value");
        assertInvalid("{\"a\": 1,}", 8, "member name");
    }

    @Test
    public void unterminatedStringNamesWhereItStarted() {
        assertInvalid("[\"abc", 1, "unterminated string");
        assertInvalid("\"abc\\", 0, "unterminated string");
    }

    @Test
    public void badEscapesAreRejected() {
        assertInvalid("\"a\\x\"", 2, "invalid escape");
        assertInvalid("\"\\u12\"", 1, "four hex digits");
        assertInvalid("\"\\u12G4\"", 1, "four hex digits");
        // A non-ASCII digit is not a hex digit (U+0663 ARABIC-INDIC DIGIT THREE).
        assertInvalid("\"\\u\u0663000\"", 1, "four hex digits");
    }

    @Test
    public void malformedNumbersAreRejected() {
        assertInvalid("01", 0, "leading zeros");
        assertInvalid("[-012]", 1, "leading zeros");
        assertInvalid("1.", 2, "decimal point");
        assertInvalid(".5", 0, "expected a value");
        assertInvalid("+1", 0, "expected a value");
        assertInvalid("1e", 2, "exponent");
        assertInvalid("-", 1, "expected a digit");
        assertInvalid("1e400", 0, "out of the range");
        assertInvalid("-1e400", 0, "not a finite number");
    }

    @Test
    public void nanAndInfinityAreNotJson() {
        // Python's json.dumps writes these for non-finite floats unless allow_nan=False.
        assertInvalid("NaN", 0, "NaN is not JSON; a value here must be a finite number");
        assertInvalid("Infinity", 0, "Infinity is not JSON");
        assertInvalid("-Infinity", 1, "Infinity is not JSON");
        assertInvalid("[0.5, NaN]", 6, "NaN is not JSON");
    }

    @Test
    public void errorsNameThePathOfTheValue() {
        assertInvalid("{\"preprocessing\": {\"std\": [0.25, NaN]}}", 33,
                "(in preprocessing.std[1]): NaN is not JSON");
        assertInvalid("{\"extra\": {\"accuracy\": -Infinity}}", 24,
                "(in extra.accuracy): Infinity is not JSON");
        assertInvalid("[[1], [2, 3, 01]]", 13, "(in [1][2]): leading zeros");
        assertInvalid("{\"a\": [\"x\", \"\\q\"]}", 13, "(in a[1]): invalid escape");
        // A broken member name is inside the object, not inside a member.
        assertInvalid("{\"a\": {\"b\": 1, c: 2}}", 15, "(in a): expected a member name");
        // After a complete member the path is the object's again.
        assertInvalid("{\"a\": 1, \"b\": [true] x}", 21, "offset 21: expected ',' or '}'");
        try {
            Json.parse("{\"a\": [1, {\"b\": tru}]}");
            fail("parsed an invalid literal");
        } catch (JsonException error) {
            assertEquals("a[1].b", error.path());
        }
        try {
            Json.parse("[1 2]");
            fail("parsed a missing comma");
        } catch (JsonException error) {
            assertEquals("", error.path());
            assertEquals("invalid JSON at offset 3: expected ',' or ']' after an array element, "
                    + "found '2'", error.getMessage());
        }
    }

    @Test
    public void trailingGarbageIsRejected() {
        assertInvalid("{} x", 3, "after the JSON value");
        assertInvalid("1 2", 2, "after the JSON value");
        assertInvalid("truex", 4, "after the JSON value");
    }

    @Test
    public void otherStructuralErrorsNameTheOffset() {
        assertInvalid("", 0, "end of the text");
        assertInvalid("   ", 3, "end of the text");
        assertInvalid("[1 2]", 3, "expected ',' or ']'");
        assertInvalid("{\"a\" 1}", 5, "expected ':'");
        assertInvalid("{a: 1}", 1, "member name");
        assertInvalid("{'a': 1}", 1, "member name");
        assertInvalid("[1", 2, "expected ',' or ']'");
        assertInvalid("{\"a\": 1", 7, "expected ',' or '}'");
        assertInvalid("tru", 0, "expected a value");
        assertInvalid("[1] // comment", 4, "after the JSON value");
        assertInvalid("\"tab\there\"", 4, "control character U+0009");
        assertInvalid("\ufeff{}", 0, "U+FEFF");
    }

    @Test
    public void nestingIsLimitedInsteadOfOverflowingTheStack() throws JsonException {
        StringBuilder deep = new StringBuilder();
        for (int i = 0; i < Json.MAX_DEPTH; i++) {
            deep.append('[');
        }
        for (int i = 0; i < Json.MAX_DEPTH; i++) {
            deep.append(']');
        }
        Object parsed = Json.parse(deep.toString());
        assertTrue(parsed instanceof List);
        assertInvalid("[" + deep + "]", Json.MAX_DEPTH, "nesting deeper");
    }

    private static void assertInvalid(String text, int offset, String problem) {
        try {
            Object value = Json.parse(text);
            fail("parsed invalid JSON " + text + " as " + value);
        } catch (JsonException error) {
            assertEquals("offset of the error in " + text + ": " + error.getMessage(), offset,
                    error.offset());
            assertTrue(error.getMessage(), error.getMessage().contains("offset " + offset));
            assertTrue(error.getMessage(), error.getMessage().contains(problem));
        }
    }
}
