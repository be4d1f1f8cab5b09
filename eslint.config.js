// ESLint for the browser JavaScript under static/ (run by bin/test: `npx eslint static/`).
// Every file is an ES module loaded with <script type="module">: files share names by
// import/export, never through window globals.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "data/", "test-artifacts/"] },
  js.configs.recommended,
  {
    files: ["static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "no-var": "error",
      "prefer-const": "error",
      // Files share names by import/export: no script sets a window property for another to read.
      "no-restricted-syntax": ["error", {
        selector: "AssignmentExpression > MemberExpression.left[object.name='window']",
        message: "Export it instead: modules do not talk through window globals.",
      }],
    },
  },
  {
    // The two entry points hand the browser tests and benchmarks a handle (window.RLMExplorer,
    // window.loadTrajectory) that no script reads.
    files: ["static/explorer/page.js", "static/explorer/harness.js"],
    rules: { "no-restricted-syntax": "off" },
  },
];
