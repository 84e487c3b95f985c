package org.tflbnn.demo.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict RFC 8259 JSON parser producing plain Java values.
 *
 * <p>Objects become {@link LinkedHashMap}{@code <String, Object>} (member order kept; a repeated
 * name keeps its last value, as Python's {@code json} does), arrays {@link ArrayList}{@code
 * <Object>}, strings {@link String}, {@code true}/{@code false} {@link Boolean} and {@code null}
 * Java {@code null}. A number written without fraction or exponent that fits a long becomes a
 * {@link Long}, every other number a {@link Double}: Python's {@code json} likewise reads
 * {@code 28} as an int and {@code 28.0} as a float, and tflbnn's metadata schema tells the two
 * apart (a {@code version} of {@code 1.0} is refused there). Extensions that some writers emit
 * ({@code NaN}, {@code Infinity}, comments, trailing commas, single quotes) are rejected, so a file
 * that parses here parses everywhere.
 *
 * <p>Errors name the character offset and, below the top level, the path of the value being read
 * (e.g. {@code preprocessing.std[0]}), so a NaN that Python wrote into a file is reported at the
 * field that holds it.
 */
public final class Json {
    /** Deeper nesting than this is rejected instead of risking a StackOverflowError. */
    static final int MAX_DEPTH = 512;

    private final String text;
    private int position;
    /** Where the parser is: member names (String) and array indices (Integer), outermost first. */
    private final List<Object> path = new ArrayList<Object>();

    private Json(String text) {
        this.text = text;
    }

    /**
     * Parses one JSON document.
     *
     * @param text the whole document; whitespace may surround the value, nothing else may
     * @return the value: a LinkedHashMap, ArrayList, Long, Double, String, Boolean or null
     * @throws JsonException if the text is not exactly one valid JSON value; the message names
     *     the character offset of the problem and the path of the value where it was found
     * @throws NullPointerException if {@code text} is null
     */
    public static Object parse(String text) throws JsonException {
        if (text == null) {
            throw new NullPointerException("text");
        }
        Json parser = new Json(text);
        parser.skipWhitespace();
        Object value = parser.readValue(0);
        parser.skipWhitespace();
        if (parser.position < text.length()) {
            throw parser.error("unexpected " + parser.describeCurrent() + " after the JSON value");
        }
        return value;
    }

    private Object readValue(int depth) throws JsonException {
        if (position >= text.length()) {
            throw error("expected a value, found the end of the text");
        }
        char c = text.charAt(position);
        switch (c) {
            case '{':
                return readObject(depth + 1);
            case '[':
                return readArray(depth + 1);
            case '"':
                return readString();
            case 't':
                readLiteral("true");
                return Boolean.TRUE;
            case 'f':
                readLiteral("false");
                return Boolean.FALSE;
            case 'n':
                readLiteral("null");
                return null;
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return readNumber();
                }
                rejectNonFiniteLiteral();
                throw error("expected a value, found " + describeCurrent());
        }
    }

    private Map<String, Object> readObject(int depth) throws JsonException {
        checkDepth(depth);
        position++; // '{'
        Map<String, Object> members = new LinkedHashMap<String, Object>();
        skipWhitespace();
        if (peek() == '}') {
            position++;
            return members;
        }
        while (true) {
            skipWhitespace();
            if (peek() != '"') {
                throw error("expected a member name in double quotes, found " + describeCurrent());
            }
            String name = readString();
            skipWhitespace();
            expect(':', "after the member name");
            skipWhitespace();
            path.add(name);
            members.put(name, readValue(depth));
            path.remove(path.size() - 1);
            skipWhitespace();
            char next = peek();
            if (next == ',') {
                position++;
                continue;
            }
            if (next == '}') {
                position++;
                return members;
            }
            throw error("expected ',' or '}' after an object member, found " + describeCurrent());
        }
    }

    private List<Object> readArray(int depth) throws JsonException {
        checkDepth(depth);
        position++; // '['
        List<Object> elements = new ArrayList<Object>();
        skipWhitespace();
        if (peek() == ']') {
            position++;
            return elements;
        }
        while (true) {
            skipWhitespace();
            path.add(Integer.valueOf(elements.size()));
            elements.add(readValue(depth));
            path.remove(path.size() - 1);
            skipWhitespace();
            char next = peek();
            if (next == ',') {
                position++;
                continue;
            }
            if (next == ']') {
                position++;
                return elements;
            }
            throw error("expected ',' or ']' after an array element, found " + describeCurrent());
        }
    }

    private String readString() throws JsonException {
        int start = position;
        position++; // opening quote
        StringBuilder out = new StringBuilder();
        while (true) {
            if (position >= text.length()) {
                throw new JsonException("unterminated string", start, pathText());
            }
            char c = text.charAt(position);
            if (c == '"') {
                position++;
                return out.toString();
            }
            if (c < 0x20) {
                throw error("control character U+" + hex4(c) + " in a string (must be escaped)");
            }
            if (c == '\\') {
                if (position + 1 >= text.length()) {
                    throw new JsonException("unterminated string", start, pathText());
                }
                out.append(readEscape());
            } else {
                out.append(c);
                position++;
            }
        }
    }

    /** Reads one escape sequence starting at the backslash; returns the char it stands for. */
    private char readEscape() throws JsonException {
        int start = position;
        position++; // backslash
        char c = text.charAt(position);
        position++;
        switch (c) {
            case '"':
                return '"';
            case '\\':
                return '\\';
            case '/':
                return '/';
            case 'b':
                return '\b';
            case 'f':
                return '\f';
            case 'n':
                return '\n';
            case 'r':
                return '\r';
            case 't':
                return '\t';
            case 'u':
                return readHexCodeUnit(start);
            default:
                throw new JsonException("invalid escape '\\" + printable(c) + "' in a string",
                        start, pathText());
        }
    }

    /**
     * Reads the four hex digits of a {@code \}{@code uXXXX} escape. A surrogate pair arrives as
     * two escapes, each giving one UTF-16 code unit, which together form the Java string's pair.
     */
    private char readHexCodeUnit(int escapeStart) throws JsonException {
        if (position + 4 > text.length()) {
            throw new JsonException("\\u escape needs four hex digits", escapeStart,
                    pathText());
        }
        int value = 0;
        for (int i = 0; i < 4; i++) {
            int digit = hexValue(text.charAt(position + i));
            if (digit < 0) {
                throw new JsonException("\\u escape needs four hex digits", escapeStart,
                        pathText());
            }
            value = value * 16 + digit;
        }
        position += 4;
        return (char) value;
    }

    /** Reads a number: a Long when written as an integer that fits one, else a Double. */
    private Object readNumber() throws JsonException {
        int start = position;
        boolean integer = true;
        if (peek() == '-') {
            position++;
            rejectNonFiniteLiteral();
        }
        if (peek() == '0') {
            position++;
            if (isDigit(peek())) {
                throw new JsonException("leading zeros are not allowed in a number", start,
                        pathText());
            }
        } else if (isDigit(peek())) {
            skipDigits();
        } else {
            throw error("expected a digit in a number, found " + describeCurrent());
        }
        if (peek() == '.') {
            integer = false;
            position++;
            if (!isDigit(peek())) {
                throw error("expected a digit after the decimal point, found "
                        + describeCurrent());
            }
            skipDigits();
        }
        if (peek() == 'e' || peek() == 'E') {
            integer = false;
            position++;
            if (peek() == '+' || peek() == '-') {
                position++;
            }
            if (!isDigit(peek())) {
                throw error("expected a digit in the exponent, found " + describeCurrent());
            }
            skipDigits();
        }
        String token = text.substring(start, position);
        if (integer) {
            try {
                return Long.valueOf(Long.parseLong(token));
            } catch (NumberFormatException beyondLong) {
                // Too many digits for a long: kept as a double, like any other large number.
            }
        }
        double value = Double.parseDouble(token);
        if (Double.isInfinite(value)) {
            throw new JsonException("number " + token + " is out of the range of a double "
                    + "(not a finite number)", start, pathText());
        }
        return Double.valueOf(value);
    }

    /**
     * Fails with a clear message at a {@code NaN} or {@code Infinity} token (after an optional
     * minus sign): Python's {@code json} writes them for non-finite floats, but they are not JSON.
     */
    private void rejectNonFiniteLiteral() throws JsonException {
        for (String literal : new String[] {"NaN", "Infinity"}) {
            if (text.startsWith(literal, position)) {
                throw error(literal + " is not JSON; a value here must be a finite number "
                        + "(JSON has no NaN or Infinity)");
            }
        }
    }

    private void readLiteral(String literal) throws JsonException {
        if (!text.startsWith(literal, position)) {
            throw error("expected a value, found " + describeCurrent());
        }
        position += literal.length();
    }

    private void expect(char wanted, String where) throws JsonException {
        if (peek() != wanted) {
            throw error("expected '" + wanted + "' " + where + ", found " + describeCurrent());
        }
        position++;
    }

    private void checkDepth(int depth) throws JsonException {
        if (depth > MAX_DEPTH) {
            throw error("nesting deeper than " + MAX_DEPTH + " levels");
        }
    }

    private void skipWhitespace() {
        while (position < text.length()) {
            char c = text.charAt(position);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            position++;
        }
    }

    private void skipDigits() {
        while (isDigit(peek())) {
            position++;
        }
    }

    /** The current character, or U+0000 at the end (never valid where a token is peeked). */
    private char peek() {
        return position < text.length() ? text.charAt(position) : '\0';
    }

    /** The value of an ASCII hex digit, or -1 (Character.digit would accept non-ASCII digits). */
    private static int hexValue(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private String describeCurrent() {
        if (position >= text.length()) {
            return "the end of the text";
        }
        return "'" + printable(text.charAt(position)) + "'";
    }

    private static String printable(char c) {
        return c < 0x20 || c > 0x7e ? "U+" + hex4(c) : String.valueOf(c);
    }

    private static String hex4(char c) {
        String hex = Integer.toHexString(c).toUpperCase(java.util.Locale.ROOT);
        return "0000".substring(hex.length()) + hex;
    }

    private JsonException error(String problem) {
        return new JsonException(problem, position, pathText());
    }

    /** The current path as tflbnn's messages write it, e.g. "preprocessing.std[0]"; "" at top. */
    private String pathText() {
        StringBuilder out = new StringBuilder();
        for (Object segment : path) {
            if (segment instanceof Integer) {
                out.append('[').append(segment).append(']');
            } else {
                if (out.length() > 0) {
                    out.append('.');
                }
                out.append(segment);
            }
        }
        return out.toString();
    }
}
