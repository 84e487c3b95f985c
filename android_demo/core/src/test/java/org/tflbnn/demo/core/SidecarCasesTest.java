package org.tflbnn.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The app's metadata validation against the schema cases shared with Python
 * ({@code tests/data/sidecar_cases/cases.json} at the repository root, which Python's
 * {@code tests/test_sidecar.py} runs too): every valid file parses, every invalid one is refused
 * with a message that names its field and contains its problem words. So the two validators
 * apply the same rules to the same files. Where the folder is missing the tests fail (they are
 * not skipped).
 */
public class SidecarCasesTest {
    /** Set by tools/run_jvm_tests.sh and core/build.gradle. */
    static final String CASES_DIR_PROPERTY = "tflbnn.sidecar.cases.dir";

    private static File casesDir;
    private static List<Map<String, Object>> cases;

    @BeforeClass
    public static void readManifest() throws IOException, JsonException {
        String property = System.getProperty(CASES_DIR_PROPERTY);
        casesDir = new File(property == null ? "tests/data/sidecar_cases" : property);
        File manifest = new File(casesDir, "cases.json");
        if (!manifest.isFile()) {
            fail("sidecar schema cases not found (" + manifest.getAbsolutePath() + "; system "
                    + "property " + CASES_DIR_PROPERTY + " is " + property + "). Run "
                    + "android_demo/tools/run_jvm_tests.sh, which passes the repository's "
                    + "tests/data/sidecar_cases.");
        }
        cases = new ArrayList<Map<String, Object>>();
        for (Object item : (List<?>) Json.parse(text(manifest))) {
            @SuppressWarnings("unchecked")
            Map<String, Object> testCase = (Map<String, Object>) item;
            cases.add(testCase);
        }
    }

    @Test
    public void everyFileInTheFolderIsACaseAndBothVerdictsOccur() {
        TreeSet<String> listed = new TreeSet<String>();
        int valid = 0;
        for (Map<String, Object> testCase : cases) {
            assertTrue("listed twice: " + testCase.get("file"),
                    listed.add((String) testCase.get("file")));
            if (Boolean.TRUE.equals(testCase.get("valid"))) {
                valid++;
            }
        }
        TreeSet<String> files = new TreeSet<String>();
        for (String name : casesDir.list()) {
            if (name.endsWith(".json") && !name.equals("cases.json")) {
                files.add(name);
            }
        }
        assertEquals("files in " + casesDir + " vs the manifest", files, listed);
        assertTrue("no valid case", valid > 0);
        assertTrue("no invalid case", valid < cases.size());
    }

    @Test
    public void validCasesParseAndInvalidOnesNameTheirFieldAndProblem() throws IOException {
        List<String> failures = new ArrayList<String>();
        for (Map<String, Object> testCase : cases) {
            String file = (String) testCase.get("file");
            String json = text(new File(casesDir, file));
            boolean valid = Boolean.TRUE.equals(testCase.get("valid"));
            try {
                ModelMetadata metadata = ModelMetadata.parse(json);
                if (!valid) {
                    failures.add(file + ": accepted, expected an error naming "
                            + testCase.get("field") + " (" + testCase.get("problem") + ")");
                } else if (metadata.modelSha256() == null) {
                    failures.add(file + ": model_sha256 not read");
                }
            } catch (MetadataException error) {
                String message = error.getMessage();
                String field = (String) testCase.get("field");
                String problem = (String) testCase.get("problem");
                if (valid) {
                    failures.add(file + ": refused a valid file: " + message);
                } else if (!message.contains(field) || !message.contains(problem)) {
                    failures.add(file + ": '" + message + "' should name '" + field
                            + "' and contain '" + problem + "'");
                }
            }
        }
        assertTrue(failures.size() + " of " + cases.size() + " cases disagree with Python's "
                + "schema:\n  " + join(failures), failures.isEmpty());
    }

    private static String join(List<String> lines) {
        StringBuilder out = new StringBuilder();
        for (String line : lines) {
            out.append(out.length() == 0 ? "" : "\n  ").append(line);
        }
        return out.toString();
    }

    private static String text(File file) throws IOException {
        InputStream in = new FileInputStream(file);
        try {
            return new String(TestResources.readAll(in), TestResources.UTF_8);
        } finally {
            in.close();
        }
    }
}
