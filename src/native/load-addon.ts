import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {EnvironmentError} from '../errors.js'

/**
 * The ONLY place that loads the native addon (build/Release/hpd_native.node). Surfaces
 * (transport, kernels) wrap what this returns in their own typed declarations.
 *
 * Node 20 cannot `import` a .node file, so it is loaded through createRequire.
 * UCX installs crash-signal handlers on load unless UCX_HANDLE_ERRORS is set first
 * (ucx-notes.md), so it is pinned here before the first load.
 */
let cached: Record<string, unknown> | undefined

export function packageRoot(): string {
  // src/native/load-addon.ts and dist/native/load-addon.js both sit two levels below the root.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..')
}

export function addonPath(): string {
  return join(packageRoot(), 'build', 'Release', 'hpd_native.node')
}

/**
 * UCX reads these at library load, so they must be set before the first load in the process,
 * whichever surface (transport or kernels) loads the addon first:
 * - UCX_HANDLE_ERRORS=none keeps Node's own crash-signal handlers (V8's wasm trap handler);
 * - the memory hooks (malloc/mmap interposition) are turned off: they patch libc while V8 and
 *   libuv threads call it, the suspected cause of rare worker crashes at start-up, and hpd never
 *   registers memory that is later freed behind UCX's back (regions are freed through the agent).
 * A user's own setting always wins.
 */
export function pinUcxEnvironment(): void {
  process.env.UCX_HANDLE_ERRORS ??= 'none'
  process.env.UCX_MEM_EVENTS ??= 'n'
  process.env.UCX_MEM_MALLOC_HOOKS ??= 'n'
  process.env.UCX_MEM_MMAP_HOOK_MODE ??= 'none'
}

export function loadNativeAddon(): Record<string, unknown> {
  if (cached) return cached
  const path = addonPath()
  if (!existsSync(path)) {
    throw new EnvironmentError('HPD_NATIVE_ADDON_MISSING', `the native addon is not built (${path} does not exist)`, {
      hint: 'Run `bash scripts/setup.sh` (installs libucx-dev and libopenblas-dev, then `npm ci` builds the addon).',
    })
  }
  pinUcxEnvironment()
  try {
    cached = createRequire(import.meta.url)(path) as Record<string, unknown>
  } catch (error) {
    throw new EnvironmentError('HPD_NATIVE_ADDON_LOAD', `the native addon failed to load: ${(error as Error).message}`, {
      hint: 'Rebuild it with `npm run build:native`; `hpd doctor` checks UCX and OpenBLAS.',
      cause: error,
    })
  }
  return cached
}
