// configs/vgpu-flip-kiosk.schema.json: the JSON Schema generated from THE zod schema
// (src/kiosk/schema.ts), for editors (yaml-language-server: `# yaml-language-server:
// $schema=...` at the top of a config). `npm run schema` rewrites it; a host test fails when
// the committed file differs from what schemaFileText() generates.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { KioskConfigSchema } from './schema.js';

export const SCHEMA_FILE = 'configs/vgpu-flip-kiosk.schema.json';

export function kioskJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(KioskConfigSchema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'throw' });
  return { ...schema, title: 'vgpu-flip kiosk configuration' };
}

export function schemaFileText(): string {
  return JSON.stringify(kioskJsonSchema(), null, 2) + '\n';
}

/** `npm run schema` (node dist/kiosk/schema-file.js [ROOT]): write the file under the checkout */
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const out = path.join(root, SCHEMA_FILE);
  writeFileSync(out, schemaFileText());
  process.stdout.write(`wrote ${path.relative(process.cwd(), out) || out}\n`);
}
