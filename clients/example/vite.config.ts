import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// A plain Vite app: the two Oddstream packages are ordinary dependencies (see .npmrc).
export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: the built page works from any folder a static server puts it in.
  base: "./",
});
