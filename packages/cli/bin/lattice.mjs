#!/usr/bin/env node
// Launcher for the `lattice` command. It exists before the build so pnpm can link it at install
// time; the command itself is compiled to dist/ by `pnpm build`.
try {
  await import('../dist/main.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/main.js')) {
    console.error(
      'lattice is not built yet: run `pnpm build` (or `pnpm start`) in the repository first.',
    );
    process.exit(1);
  }
  throw error;
}
