/**
 * The layout options of hpd's CPU engine, as serving's read plans and up-front P/D checks use them:
 * the one definition is CPU_ENGINE_LAYOUT (src/layout/cpu-engine.ts), which the engine lays out its
 * cache with.
 */
export {CPU_ENGINE_LAYOUT as ENGINE_LAYOUT_OPTIONS} from '../../layout/cpu-engine.js'
