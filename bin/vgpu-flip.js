#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  process.stderr.write(`vgpu-flip: ${err?.message ?? err}\n`);
  process.exit(1);
});
