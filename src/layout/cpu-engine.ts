import type {LayoutOptions} from './types.js'

/**
 * The cache layout of hpd's own CPU engine (src/engine): its `cpu` attention kernel (blocks of
 * 16/32/64), DS conv state, and fp32 K/V, conv and SSM state whatever the checkpoint dtype (the CPU
 * kernels compute and cache in fp32; bf16 weights are widened as they are used).
 *
 * The one place this is decided. The engine lays its cache out with exactly these options, and
 * `auto` cache dtypes under the `cpu` attention backend resolve to these dtypes (`resolveDtypes`),
 * so `inspect-layout --attention-backend cpu` and `bench transfer` show the geometry the engine
 * really uses unless a dtype flag asks for another.
 */
export const CPU_ENGINE_LAYOUT = {
  attentionBackend: 'cpu',
  convLayout: 'DS',
  kvCacheDtype: 'fp32',
  mambaConvDtype: 'fp32',
  mambaSsmDtype: 'fp32',
} as const satisfies Omit<LayoutOptions, 'model' | 'blockSize' | 'kernelBlockSize'>
