import { defineConfig, loadEnv } from "vite";

// The controller serves dist/ at / (embedded into the icos binary at build
// time); `npm run dev` proxies the API to a running `icos up`.
export default defineConfig(({ mode }) => ({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets", sourcemap: false },
  server: {
    // ICOS_SERVER=http://host:port npm run dev
    proxy: { "/api": loadEnv(mode, ".", "ICOS_").ICOS_SERVER ?? "http://127.0.0.1:7070" },
  },
}));
