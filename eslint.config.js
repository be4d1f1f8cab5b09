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
    },
  },
];
