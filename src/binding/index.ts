// Loads the compiled native addon (native/build/Release/vgpu_flip.node) and exports it typed
// as NativeAddon. Works from src/ (vitest) and from dist/ (tsc output): both sit two levels
// below the package root.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { NativeAddon } from './types.js';

export type * from './types.js';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of the addon this module loads (VGPU_FLIP_ADDON overrides, for debugging). */
export const addonPath =
  process.env['VGPU_FLIP_ADDON'] ?? path.join(packageRoot, 'native', 'build', 'Release', 'vgpu_flip.node');

function load(): NativeAddon {
  if (!existsSync(addonPath)) {
    throw new Error(
      `vgpu-flip: the native addon is not built (missing ${addonPath}). ` +
        'Run `npm install` in the package root (it compiles native/ with node-gyp; ' +
        'needs a C++ compiler, pkg-config and libdrm-dev: apt-get install build-essential pkg-config libdrm-dev).',
    );
  }
  const require = createRequire(import.meta.url);
  try {
    return require(addonPath) as NativeAddon;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(
      `vgpu-flip: cannot load the native addon ${addonPath}: ${msg}. ` +
        'Rebuild it with `npm install` (or `npx node-gyp rebuild --directory=native`); libdrm must be installed.',
      { cause: err },
    );
  }
}

let loaded: NativeAddon | undefined;

/** Load the addon now (throws the "run npm install" error if it is missing). */
export function loadNative(): NativeAddon {
  loaded ??= load();
  return loaded;
}

/**
 * The native addon: syscalls and struct marshalling only (see types.ts). Loaded on first use,
 * so importing modules that depend on it (e.g. for `--help` or host tests on recorded data)
 * works even where it is not built; the first call then throws the "run npm install" error.
 */
export const native: NativeAddon = new Proxy({} as NativeAddon, {
  get: (_t, key) => Reflect.get(loadNative(), key),
  has: (_t, key) => Reflect.has(loadNative(), key),
  ownKeys: () => Reflect.ownKeys(loadNative()),
  getOwnPropertyDescriptor: (_t, key) => {
    const d = Reflect.getOwnPropertyDescriptor(loadNative(), key);
    return d ? { ...d, configurable: true } : undefined;
  },
  set: () => false,
});
