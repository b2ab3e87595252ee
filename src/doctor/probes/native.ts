import {RootFs} from '../root-fs.js'

/** Whether hpd's own native addon loads here, and what it offers. */
export type NativeFacts =
  | {readonly state: 'loaded'; readonly path: string; readonly surfaces: readonly string[]}
  | {readonly state: 'failed'; readonly path: string; readonly code: string; readonly message: string; readonly hint: string | undefined}
  | {readonly state: 'not-probed'; readonly reason: string}

export async function probeNative(fs: RootFs): Promise<NativeFacts> {
  if (!fs.isLive) {
    return {state: 'not-probed', reason: 'the addon on this machine says nothing about a --root tree of another machine'}
  }
  // Loaded lazily: it pulls in libucp and OpenBLAS, which only this check needs.
  const {addonPath, loadNativeAddon} = await import('../../native/load-addon.js')
  const path = addonPath()
  try {
    const addon = loadNativeAddon()
    const surfaces = Array.isArray(addon.surfaces) ? addon.surfaces.map(String) : []
    return {state: 'loaded', path, surfaces}
  } catch (error) {
    const e = error as {code?: string; message?: string; hint?: string}
    return {state: 'failed', path, code: e.code ?? 'HPD_NATIVE_ADDON_LOAD', message: e.message ?? String(error), hint: e.hint}
  }
}
