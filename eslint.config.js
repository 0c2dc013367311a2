// @ts-check
// `npm run lint`: ESLint with typescript-eslint's recommended rules over the whole tree, and
// Prettier's check of its formatting (.prettierrc.json). Run by .ci/run before the tests.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config({ ignores: ['node_modules/', 'dist*/', 'bench/results/', '.wrangler/'] }, js.configs.recommended, ...tseslint.configs.recommended, {
  rules: {
    // Leaving fields out of an object by destructuring them away is how the stand-ins drop keys.
    '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
  },
  languageOptions: {
    ecmaVersion: 2024,
    sourceType: 'module',
    globals: {
      // Node (scripts, bench, sandbox) and workerd (src, test): the runtime globals both have.
      console: 'readonly',
      process: 'readonly',
      fetch: 'readonly',
      Request: 'readonly',
      Response: 'readonly',
      Headers: 'readonly',
      URL: 'readonly',
      URLSearchParams: 'readonly',
      setTimeout: 'readonly',
      clearTimeout: 'readonly',
      setInterval: 'readonly',
      clearInterval: 'readonly',
      AbortSignal: 'readonly',
      AbortController: 'readonly',
      TextEncoder: 'readonly',
      TextDecoder: 'readonly',
      crypto: 'readonly',
      btoa: 'readonly',
      atob: 'readonly',
      Buffer: 'readonly',
      structuredClone: 'readonly',
      queueMicrotask: 'readonly',
      performance: 'readonly',
      WebSocket: 'readonly',
      FormData: 'readonly',
      Blob: 'readonly',
    },
  },
})
