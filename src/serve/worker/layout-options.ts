/**
 * The layout options of hpd's CPU engine: fp32 caches, hpd's `cpu` attention kernel (blocks of
 * 16/32/64), DS conv layout. The engine lays out its cache with them, so every read plan and every
 * up-front check of a P/D pair must use exactly these.
 */
export const ENGINE_LAYOUT_OPTIONS = {
  attentionBackend: 'cpu',
  convLayout: 'DS',
  kvCacheDtype: 'fp32',
  mambaConvDtype: 'fp32',
  mambaSsmDtype: 'fp32',
} as const
