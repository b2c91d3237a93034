// Prints the plain closing line CI reads ("<label>: N passed, N failed, N skipped") from
// vitest's JSON report, names every skipped test, and exits non-zero when anything failed,
// nothing ran, or a test was skipped that is not an opt-in build (a test that cannot run must
// fail CI and say why, never vanish into a "skipped" count).
import { readFileSync } from 'node:fs';

/**
 * Skips that are allowed, by test name: opt-in heavy builds (the Node single executable,
 * ATTEST_TEST_SEA=1), and the one tool Debian does not package (terraform, HashiCorp's binary;
 * the test runs wherever it is installed, as on the project's machines).
 */
const OPT_IN = [/\(ATTEST_TEST_SEA=1\)$/, /terraform apply renders/, /\(needs terraform[^)]*\)$/];

const [file, label = 'tests'] = process.argv.slice(2);
const r = JSON.parse(readFileSync(file, 'utf8'));
const passed = r.numPassedTests ?? 0;
const failed = (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0);
const skippedTests = [];
for (const f of r.testResults ?? []) {
  for (const t of f.assertionResults ?? []) {
    if (t.status === 'skipped' || t.status === 'pending' || t.status === 'todo') skippedTests.push(`${f.name.replace(process.cwd() + '/', '')} › ${t.fullName}`);
  }
}
const optIn = skippedTests.filter((n) => OPT_IN.some((re) => re.test(n)));
const unexpected = skippedTests.filter((n) => !optIn.includes(n));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`${label}: ${passed} passed, ${failed} failed, ${skipped} skipped${optIn.length ? ` (${optIn.length} opt-in)` : ''}`);
for (const n of optIn) console.log(`  opt-in, skipped: ${n}`);
for (const n of unexpected) console.log(`  SKIPPED (not allowed: make it run or fail): ${n}`);
process.exit(failed > 0 || passed === 0 || unexpected.length > 0 ? 1 : 0);
